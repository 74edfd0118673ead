// Package clock lets code that depends on time take it as a dependency, so tests and the
// simulated estates can run on a clock they control.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Manual is a clock that moves only when told to. Safe for concurrent use.
type Manual struct {
	mu  sync.Mutex
	now time.Time
}

// NewManual returns a Manual clock set to t.
func NewManual(t time.Time) *Manual { return &Manual{now: t} }

// Now returns the clock's current time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Set moves the clock to t.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	m.now = t
	m.mu.Unlock()
}

// Advance moves the clock forward by d and returns the new time.
func (m *Manual) Advance(d time.Duration) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
	return m.now
}

// Ticking is a clock that moves on by a step at every reading, as the wall clock does between two
// readings: a test of it tells code that reads the time once from code that reads it twice.
type Ticking struct {
	m    Manual
	step time.Duration
}

// NewTicking returns a Ticking clock whose first reading is t + step.
func NewTicking(t time.Time, step time.Duration) *Ticking {
	return &Ticking{m: Manual{now: t}, step: step}
}

// Now moves the clock on by its step and returns the new time.
func (c *Ticking) Now() time.Time { return c.m.Advance(c.step) }

package state

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLeaseHeld(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, holder, current string
		now                   time.Time
		held                  bool
	}{
		{"free", "a", "", t0, false},
		{"own", "a", "a", t0, false},
		{"other's, running", "b", "a", t0.Add(-time.Nanosecond), true},
		{"other's, at expiry", "b", "a", t0, false},
		{"other's, expired", "b", "a", t0.Add(time.Hour), false},
	}
	for _, tc := range tests {
		err := LeaseHeld(tc.holder, tc.now, tc.current, t0)
		var held *LeaseHeldError
		if got := errors.As(err, &held); got != tc.held {
			t.Errorf("%s: LeaseHeld = %v, want held %v", tc.name, err, tc.held)
			continue
		}
		if tc.held && (held.Holder != tc.current || !held.Expires.Equal(t0) || !errors.Is(err, ErrLeaseHeld)) {
			t.Errorf("%s: %#v", tc.name, held)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"argo/prod", true},
		{strings.Repeat("x", MaxNameBytes), true},
		{"", false},
		{strings.Repeat("x", MaxNameBytes+1), false},
		{"bad\xff", false},
	} {
		if err := CheckName("source", tc.name); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("CheckName(%.20q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestCheckRunsAndRecord(t *testing.T) {
	if err := CheckRuns([]*Run{{Key: "a"}, {Key: "b"}}); err != nil {
		t.Errorf("CheckRuns(valid) = %v", err)
	}
	for name, runs := range map[string][]*Run{"nil": {nil}, "no key": {{}}, "twice": {{Key: "a"}, {Key: "a"}}} {
		if err := CheckRuns(runs); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckRuns(%s) = %v, want ErrInvalid", name, err)
		}
	}
	if err := CheckRecord("trace", map[string][]byte{"d": nil}, time.Time{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("CheckRecord(zero expiry) = %v, want ErrInvalid", err)
	}
}

func TestUniqueKeepsOrder(t *testing.T) {
	if got := Unique([]string{"b", "a", "b", "c", "a"}); !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Errorf("Unique = %v", got)
	}
}

func TestLeaseLostNamesHolders(t *testing.T) {
	err := LeaseLost("argo/prod", "a", "b", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	if !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "held by b until 2030-01-01T00:00:00Z, not by a") {
		t.Errorf("LeaseLost = %v", err)
	}
	if err := LeaseLost("argo/prod", "a", "", time.Time{}); !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "not leased") {
		t.Errorf("LeaseLost(no holder) = %v", err)
	}
}

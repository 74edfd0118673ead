package poll_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state"
)

// readCounter counts the run documents the engine asks the store for.
type readCounter struct {
	state.Store
	mu   sync.Mutex
	keys []string
}

func (r *readCounter) LoadRuns(ctx context.Context, source string, keys []string) (map[string]*state.Run, error) {
	r.mu.Lock()
	r.keys = append(r.keys, keys...)
	r.mu.Unlock()
	return r.Store.LoadRuns(ctx, source, keys)
}

func (r *readCounter) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.keys
	r.keys = nil
	return k
}

// TestEngineDefersRunsBeyondMaxRunsPerPoll: a poll with more changed runs than MaxRunsPerPoll
// handles that many and leaves the rest to the next polls, losing and doubling none: not the
// completed ones (the window is listed again), not an active one that finishes meanwhile and
// leaves every listing (followed up by reference), and it reads no stored state for a run it
// never stored.
func TestEngineDefersRunsBeyondMaxRunsPerPoll(t *testing.T) {
	store := &readCounter{Store: newStore(t)}
	h := polltest.New(t, store, t0)
	src := newScript()
	e := h.Engine(src, poll.Config{MaxRunsPerPoll: 4, InitialLookback: time.Hour, Overlap: 5 * time.Minute})
	var want []string
	for i := range 6 {
		n := fmt.Sprintf("a%d", i)
		src.set(n, "Running", true, task(n, "Running", at(-10), nil))
		want = append(want, n+"/"+n+" >Running")
	}
	for i := range 3 {
		n := fmt.Sprintf("done%d", i)
		src.set(n, "Succeeded", false, task(n, "Succeeded", at(-10), at(-5)))
		want = append(want, n+"/"+n+" >Succeeded")
	}
	// Started long ago, still running: listed only while active, and last (the script lists by
	// name), so the first poll defers it.
	src.set("old-x", "Running", true, task("old-x", "Running", at(-600), nil))

	res := mustPoll(t, e, poll.Request{})
	if res.RunsChanged != 4 || res.RunsDeferred != 6 {
		t.Fatalf("first poll: %d changed, %d deferred; want 4 and 6", res.RunsChanged, res.RunsDeferred)
	}
	if since := t0.Add(-time.Hour); !res.Cursor.Equal(since.Add(5 * time.Minute)) {
		t.Errorf("cursor %s after a poll that deferred runs, want %s (the next window starts at this one's)", res.Cursor, since.Add(5*time.Minute))
	}
	if keys := store.take(); len(keys) != 0 {
		t.Errorf("a cold poll read run states %v", keys)
	}
	published := transitions(h)

	// old-x finishes and leaves every listing before it was handled.
	src.set("old-x", "Succeeded", false, task("old-x", "Succeeded", at(-600), at(30)))
	want = append(want, "old-x/old-x >Succeeded")
	for n := 2; ; n++ {
		h.Clock.Advance(time.Minute)
		res = mustPoll(t, e, poll.Request{})
		published = append(published, transitions(h)...)
		if keys := store.take(); len(keys) != 0 {
			t.Errorf("poll %d read the states of %v, which no poll stored", n, keys)
		}
		if res.RunsDeferred == 0 {
			if !res.Cursor.Equal(h.Clock.Now()) {
				t.Errorf("cursor %s after the last deferral, want the poll's start %s", res.Cursor, h.Clock.Now())
			}
			break
		}
		if n > 4 {
			t.Fatalf("still deferring after %d polls: %+v", n, res)
		}
	}
	if !sameSet(published, want) || len(published) != len(want) {
		t.Errorf("published %v, want each of %v once", published, want)
	}

	// Caught up: an unchanged estate costs nothing.
	h.Clock.Advance(time.Minute)
	res = mustPoll(t, e, poll.Request{})
	if got := transitions(h); len(got) != 0 || res.RunsChanged != 0 || res.RunsDeferred != 0 {
		t.Errorf("caught-up poll published %v (%d changed, %d deferred)", got, res.RunsChanged, res.RunsDeferred)
	}
}

package poll_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state"
)

// TestEngineColdPollReadsNoRunDocument: a source never committed has no stored run; reading one
// per listed run would cost a Firestore read each for nothing. Later polls read the changed ones.
func TestEngineColdPollReadsNoRunDocument(t *testing.T) {
	h := polltest.New(t, newStore(t), t0)
	src := newScript()
	for i := range 20 {
		src.set(fmt.Sprintf("r%02d", i), "Running", true, task(fmt.Sprintf("r%02d", i), "Running", at(0), nil))
	}
	e := h.Engine(src, poll.Config{DiffBatch: 7})
	res := mustPoll(t, e, poll.Request{})
	// The lease (1 read + 1 write) and the commit (1 read + 1 write per run + 1): no run read.
	if res.RunsChanged != 20 || res.StoreReads != 2 {
		t.Fatalf("cold poll: %d changed, %d store reads; want 20 and 2 (lease and commit only)", res.RunsChanged, res.StoreReads)
	}
	if got := len(polltest.Transitions(h.Published())); got != 20 {
		t.Fatalf("cold poll published %d transitions over batches of 7, want 20", got)
	}

	src.set("r03", "Succeeded", false, task("r03", "Succeeded", at(0), at(1)))
	h.Clock.Advance(time.Minute)
	res = mustPoll(t, e, poll.Request{})
	if res.RunsChanged != 1 || res.StoreReads != 3 {
		t.Errorf("warm poll: %d changed, %d store reads; want 1 and 3 (lease, the run, commit)", res.RunsChanged, res.StoreReads)
	}
	if got := polltest.Transitions(h.Published()); len(got) != 1 {
		t.Errorf("warm poll published %v, want its task finishing", got)
	}
}

// refusing is a store that cannot keep a run: the engine must learn it before publishing.
type refusing struct {
	state.Store
	commits int
}

var errTooLarge = errors.New("run too large for a document")

func (r *refusing) CheckCommit(runs []*state.Run) error {
	for _, run := range runs {
		if len(run.Tasks) > 2 {
			return fmt.Errorf("%w: %s", errTooLarge, run.Key)
		}
	}
	return nil
}

func (r *refusing) Commit(ctx context.Context, source, holder string, runs []*state.Run, cursor time.Time, index state.Index) error {
	r.commits++
	return r.Store.Commit(ctx, source, holder, runs, cursor, index)
}

func TestEngineKnowsBeforePublishingItCannotCommit(t *testing.T) {
	store := &refusing{Store: newStore(t)}
	h := polltest.New(t, store, t0)
	src := newScript()
	src.set("big", "Running", true, task("big", "Running", at(0), nil), task("b-1", "Running", at(0), nil), task("b-2", "Running", at(0), nil))
	e := h.Engine(src, poll.Config{})
	_, err := e.Poll(context.Background(), poll.Request{})
	if !errors.Is(err, poll.ErrStore) || !errors.Is(err, errTooLarge) {
		t.Fatalf("poll = %v, want ErrStore wrapping the store's refusal", err)
	}
	if got := h.Published(); len(got) != 0 || store.commits != 0 {
		t.Fatalf("published %d deltas and tried %d commits for a poll that could not commit", len(got), store.commits)
	}
	// The lease was given back: the next poll runs (and fails the same way, clearly).
	if _, err := e.Poll(context.Background(), poll.Request{}); errors.Is(err, poll.ErrBusy) {
		t.Fatalf("the refused poll kept its lease: %v", err)
	}
}

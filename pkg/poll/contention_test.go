package poll_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/polltest"
	"github.com/farmobs/farm/internal/sim/argosim"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/argo"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
	"github.com/farmobs/farm/pkg/state/firestore"
)

// TestMain stops the Firestore emulator the contention test may start.
func TestMain(m *testing.M) { testenv.Main(m) }

// Simultaneous triggers of one source, through the HTTP function, on each store: while one poll
// holds the lease every other caller is answered 409 (not 503, and not by waiting for the lease
// and polling after it), and over repeated contended rounds the cursor never moves backwards.
func TestSimultaneousTriggersGetConflict(t *testing.T) {
	stores := map[string]func(t *testing.T) state.Store{
		"file": func(t *testing.T) state.Store { return filestore.New(filepath.Join(t.TempDir(), "state.json")) },
		"firestore": func(t *testing.T) state.Store {
			return firestore.New(testenv.Firestore(t))
		},
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			h := polltest.New(t, store, time.Now())
			sim := argosim.NewServer(clock.Real{}, argosim.Options{Seed: 3})
			// gate holds the winner's list call until every other caller has its answer.
			var (
				gated   atomic.Bool
				gate    = make(chan struct{})
				entered atomic.Int32
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if gated.Load() {
					entered.Add(1)
					select {
					case <-gate:
					case <-time.After(20 * time.Second):
					}
				}
				sim.ServeHTTP(w, r)
			}))
			t.Cleanup(func() { sim.Close(); srv.Close() })
			u, _ := url.Parse(srv.URL)
			cfg := argo.DefaultConfig()
			cfg.URL, cfg.Instance, cfg.PageSize, cfg.HTTPTimeout, cfg.HTTPRetries = u, "contended", 100, 30*time.Second, 0
			src, err := argo.New(cfg, argo.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			quiet := slog.New(slog.DiscardHandler)
			engine, err := poll.New(polltest.Config(poll.Config{Overlap: time.Minute, InitialLookback: time.Hour}),
				poll.Deps{Source: src, Store: store, Publisher: h.Publisher, Clock: clock.Real{}, Log: quiet})
			if err != nil {
				t.Fatal(err)
			}
			fn := httptest.NewServer(poll.Handler(func(ctx context.Context) (poll.Poller, error) { return engine, nil }, poll.HTTPOptions{Log: quiet}))
			t.Cleanup(fn.Close)

			// trigger POSTs n times at once; onAnswer runs after each answer.
			trigger := func(n int, onAnswer func(code int)) (codes []int, waits []time.Duration) {
				start := make(chan struct{})
				var wg sync.WaitGroup
				var mu sync.Mutex
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						t0 := time.Now()
						resp, err := http.Post(fn.URL, "", nil)
						code := 0
						if err == nil {
							code = resp.StatusCode
							resp.Body.Close()
						}
						mu.Lock()
						codes = append(codes, code)
						if code != http.StatusOK {
							waits = append(waits, time.Since(t0))
						}
						mu.Unlock()
						onAnswer(code)
					}()
				}
				close(start)
				wg.Wait()
				return codes, waits
			}

			const callers = 100
			gated.Store(true)
			var answered atomic.Int32
			codes, waits := trigger(callers, func(int) {
				if answered.Add(1) == callers-1 {
					close(gate) // every caller but the winner has its answer: let the winner finish
				}
			})
			gated.Store(false)
			count := map[int]int{}
			for _, c := range codes {
				count[c]++
			}
			if count[http.StatusOK] != 1 || count[http.StatusConflict] != callers-1 {
				t.Fatalf("%d simultaneous triggers answered %v, want one 200 and %d × 409", callers, count, callers-1)
			}
			slices.Sort(waits)
			t.Logf("%s store: %d × 409, median %s, slowest %s", name, len(waits), waits[len(waits)/2], waits[len(waits)-1])

			// Small contended rounds: any mix of 200 and 409, never another answer, and the cursor
			// only moves forward.
			var last time.Time
			for round := range 8 {
				codes, _ := trigger(5, func(int) {})
				for _, c := range codes {
					if c != http.StatusOK && c != http.StatusConflict {
						t.Fatalf("round %d: answers %v, want only 200 and 409", round, codes)
					}
				}
				peek, err := store.Peek(t.Context(), src.Name())
				if err != nil {
					t.Fatal(err)
				}
				if peek.Cursor.Before(last) {
					t.Fatalf("round %d: the cursor moved back from %s to %s", round, last.Format(time.RFC3339Nano), peek.Cursor.Format(time.RFC3339Nano))
				}
				last = peek.Cursor
			}
		})
	}
}

// With Firestore up but hung, a poll is answered 503 once the store's deadline has passed.
func TestStuckStoreAnswers503(t *testing.T) {
	client := testenv.StuckFirestoreClient(t)
	store := firestore.New(client, firestore.WithTimeout(500*time.Millisecond))
	h := polltest.New(t, store, time.Now())
	sim := argosim.NewServer(clock.Real{}, argosim.Options{Seed: 4})
	srv := httptest.NewServer(sim)
	t.Cleanup(func() { sim.Close(); srv.Close() })
	u, _ := url.Parse(srv.URL)
	cfg := argo.DefaultConfig()
	cfg.URL, cfg.Instance, cfg.PageSize, cfg.HTTPTimeout, cfg.HTTPRetries = u, "stuck", 100, 5*time.Second, 0
	src, err := argo.New(cfg, argo.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	engine, err := poll.New(poll.DefaultConfig(), poll.Deps{Source: src, Store: store, Publisher: h.Publisher, Clock: clock.Real{}, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	fn := httptest.NewServer(poll.Handler(func(ctx context.Context) (poll.Poller, error) { return engine, nil }, poll.HTTPOptions{Log: quiet}))
	t.Cleanup(fn.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a watchdog, far above the bound
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fn.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer with the store stuck: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("answered %d with the store stuck, want 503", resp.StatusCode)
	}
}

// slowAcquire is a store whose lease takes d to acquire (a contended store), on a manual clock.
type slowAcquire struct {
	state.Store
	clk *clock.Manual
	d   time.Duration
}

func (s slowAcquire) Acquire(ctx context.Context, source, holder string, now time.Time, ttl time.Duration) (*state.Source, error) {
	s.clk.Advance(s.d)
	return s.Store.Acquire(ctx, source, holder, now, ttl)
}

// The poll's start, hence the cursor it commits, is read once the lease is held: a poll that
// waited for the lease must not commit a cursor earlier than the one of the poll it waited for.
func TestPollStartsWhenTheLeaseIsHeld(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	h := polltest.New(t, nil, t0)
	h.Store = slowAcquire{Store: newStore(t), clk: h.Clock, d: 21 * time.Millisecond}
	res, err := h.Engine(newScript(), poll.Config{}).Poll(t.Context(), poll.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(21 * time.Millisecond); !res.Cursor.Equal(want) {
		t.Errorf("cursor %s, want %s: the time the lease was held", res.Cursor.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
}

package argosim

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

func TestDemoIsSmallLivelyAndSaysItIsSimulated(t *testing.T) {
	clk := clock.NewManual(t0)
	demo, err := NewDemo(clk, 1)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(demo)
	defer hs.Close()
	f := &fixture{t: t, clock: clk, srv: demo.Server, http: hs}
	active := url.Values{"listOptions.labelSelector": {LabelCompleted + "!=true"}}
	items, _ := f.list("", active)
	if len(items) != 6 {
		t.Fatalf("%d active demo workflows, want 6", len(items))
	}
	for _, it := range items {
		if path(it, "metadata", "labels", DemoLabel) != "true" {
			t.Errorf("%s lacks the %s label", path(it, "metadata", "name"), DemoLabel)
		}
	}
	// A few minutes of a poller looking every 10 s: runs complete, new ones start.
	first := map[string]bool{}
	for _, it := range items {
		first[path(it, "metadata", "uid").(string)] = true
	}
	for range 18 {
		clk.Advance(10 * time.Second)
		f.list("", active)
	}
	items, _ = f.list("", active)
	replaced := 0
	for _, it := range items {
		if !first[path(it, "metadata", "uid").(string)] {
			replaced++
		}
	}
	c := demo.Estate.Counters()
	if len(items) < 6 || replaced == 0 || c.Completed == 0 || c.Steps != 90 {
		t.Errorf("after 3 minutes: %d active, %d new, counters %+v", len(items), replaced, c)
	}
	status, hdr, body := f.get("/", nil)
	if status != http.StatusOK || !strings.Contains(string(body), "SIMULATED Argo Server") || hdr.Get(SimulatorHeader) != "argo" {
		t.Errorf("/ = %d %q", status, body)
	}
}

// TestConcurrentReadersAndSteps runs listings, GETs and estate steps at once (for -race).
func TestConcurrentReadersAndSteps(t *testing.T) {
	f := newEstateFixture(t, smallEstate(8), Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				if w == 0 {
					f.clock.Advance(f.cfg.Tick)
				}
				status, _, _ := f.get("/api/v1/workflows/", url.Values{"listOptions.limit": {"7"}, "listOptions.continue": {itoa(i * 7)}, "fields": {farmFields}})
				if status != http.StatusOK {
					t.Errorf("list %d", status)
				}
			}
		})
	}
	wg.Wait()
	if f.est.Counters().Steps != 10 {
		t.Errorf("%d steps, want 10", f.est.Counters().Steps)
	}
}

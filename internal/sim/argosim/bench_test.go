package argosim

import (
	bytes2 "bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"

	"github.com/farmobs/farm/pkg/clock"
)

// countingDiscard is a ResponseWriter that counts and keeps only the start of the body (the
// list metadata, which comes first): the benchmark measures the server, not a client.
type countingDiscard struct {
	h    http.Header
	n    int64
	head []byte
}

func (d *countingDiscard) Header() http.Header { return d.h }
func (d *countingDiscard) WriteHeader(int)     {}
func (d *countingDiscard) Write(b []byte) (int, error) {
	if len(d.head) < 256 {
		d.head = append(d.head, b[:min(len(b), 256)]...)
	}
	d.n += int64(len(b))
	return len(b), nil
}

var continueRE = regexp.MustCompile(`^\{"metadata":\{[^}]*"continue":"(\d+)"`)

// listPages pages through every workflow with FARM's field set and returns the pages and bytes.
func listPages(tb testing.TB, h http.Handler, selector string, limit int) (pages int, bytes int64) {
	cont := ""
	for {
		q := url.Values{"fields": {farmFields}, "listOptions.limit": {itoa(limit)}, "listOptions.continue": {cont}, "listOptions.labelSelector": {selector}}
		d := &countingDiscard{h: http.Header{}}
		h.ServeHTTP(d, httptest.NewRequest(http.MethodGet, "/api/v1/workflows/?"+q.Encode(), nil))
		pages++
		bytes += d.n
		m := continueRE.FindSubmatch(d.head)
		if m == nil {
			if !bytes2.HasPrefix(d.head, []byte(`{"metadata":{`)) {
				tb.Fatalf("not a list: %s", d.head)
			}
			return pages, bytes
		}
		cont = string(m[1])
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// BenchmarkServeActive10k serves every active run of a 10,000-run estate (50 tasks per run)
// page by page, with the field set FARM asks for: what one FARM poll costs the server.
func BenchmarkServeActive10k(b *testing.B) {
	clk := clock.NewManual(t0)
	srv := NewServer(clk, Options{NoTruth: true})
	cfg := DefaultEstate()
	cfg.ActiveRuns, cfg.TasksPerRun, cfg.ChangeShare = 10_000, 50, 0.01
	est, err := NewEstate(srv, cfg)
	if err != nil {
		b.Fatal(err)
	}
	nodes := est.ActiveNodes()
	b.ReportAllocs()
	var pages int
	var bytes int64
	for b.Loop() {
		pages, bytes = listPages(b, srv, LabelCompleted+"!=true", 500)
	}
	b.ReportMetric(float64(pages), "pages/op")
	b.ReportMetric(float64(bytes)/(1<<20), "MiB/op")
	b.ReportMetric(float64(nodes), "nodes")
}

// BenchmarkEstateStep10k is one controller step of a 10,000-run estate changing 10% of runs.
func BenchmarkEstateStep10k(b *testing.B) {
	clk := clock.NewManual(t0)
	srv := NewServer(clk, Options{NoTruth: true})
	cfg := DefaultEstate()
	cfg.ActiveRuns, cfg.ChangeShare = 10_000, 0.1
	est, err := NewEstate(srv, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		clk.Advance(cfg.Tick)
		est.Sync()
	}
}

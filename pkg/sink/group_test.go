package sink_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/sink"
)

// faultyWriter passes writes to the real writer, records the insert ids of each request, holds
// the first request until released, and fails the request numbered failAt (1-based) without
// sending it: a BigQuery outage hitting one request.
type faultyWriter struct {
	w       sink.Writer
	failAt  int
	entered chan struct{}
	release chan struct{}

	mu       sync.Mutex
	requests [][]string
}

var errOutage = errors.New("insertAll: 503 backend unavailable")

func (f *faultyWriter) Write(ctx context.Context, table string, rows []sink.Row) error {
	ids := make([]string, len(rows))
	for i, r := range rows {
		_, ids[i], _ = r.Save()
	}
	f.mu.Lock()
	f.requests = append(f.requests, ids)
	n := len(f.requests)
	f.mu.Unlock()
	if n == 1 {
		close(f.entered)
		<-f.release
	}
	if n == f.failAt {
		return errOutage
	}
	return f.w.Write(ctx, table, rows)
}

// deltaOfRun is NestedArgoDelta for run uid, its event ids its own.
func deltaOfRun(uid string) *event.RunDelta {
	d := sinktest.NestedArgoDelta()
	d.Run.UID = uid
	for i := range d.Events {
		e := &d.Events[i]
		e.ID = event.TaskEventID(d.Run.Key(), e.NodeID, e.Attempt, e.State, e.StartedAt, e.FinishedAt)
	}
	return sinktest.Finish(d)
}

// TestConcurrentDeliveriesShareInsertRequests: deliveries that arrive while a request is in
// flight go together in the next requests (of whole deliveries, up to the group's row bound); each
// is answered with its own request's outcome, so an outage of one request fails exactly the
// deliveries it carried, whose redelivery then writes them. Against the BigQuery emulator.
func TestConcurrentDeliveriesShareInsertRequests(t *testing.T) {
	env := newBQEnv(t, true)
	const deliveries = 20
	rowsEach := len(deltaOfRun("x").Events)
	fw := &faultyWriter{failAt: 3, entered: make(chan struct{}), release: make(chan struct{})}
	// The real writer, in front of the emulator, as newBQEnv made it; 7 deliveries a request.
	fw.w = env.w
	cfg := sink.DefaultConfig()
	cfg.BatchRows, cfg.BatchBytes = 7*rowsEach, 1<<30
	s, err := sink.New(cfg, sink.Deps{Writer: fw, Log: env.logs.logger()})
	if err != nil {
		t.Fatal(err)
	}

	msgs := make([]event.Message, deliveries)
	for i := range msgs {
		msgs[i] = sinktest.Message(t, deltaOfRun(fmt.Sprintf("run-%02d", i)), fmt.Sprint(100+i), sinktest.Day0)
	}
	errs := make([]error, deliveries)
	var wg sync.WaitGroup
	deliver := func(i int) {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
			defer cancel()
			errs[i] = s.HandleEnvelope(ctx, sinktest.Envelope(t, msgs[i]))
		})
	}
	deliver(0)
	<-fw.entered // the first request is in flight: the others queue behind it
	for i := 1; i < deliveries; i++ {
		deliver(i)
	}
	for s.Group().Waiting(sink.TableArgo) < deliveries-1 {
		time.Sleep(time.Millisecond)
	}
	close(fw.release)
	wg.Wait()

	// 1 request for the first delivery, then 19 deliveries of 7 rows in requests of 7: 7, 7, 5.
	if got := len(fw.requests); got != 4 {
		t.Fatalf("%d insert requests for %d deliveries, want 4", got, deliveries)
	}
	failed := fw.requests[2]
	var wantFailed, wantOK []int
	for i, m := range msgs {
		ds, _ := event.DecodeDeltas(m.Data)
		inFailed := slices.Contains(failed, ds[0].Events[0].ID)
		switch {
		case inFailed && !errors.Is(errs[i], errOutage):
			t.Errorf("delivery %d was in the failed request, answered %v", i, errs[i])
		case !inFailed && errs[i] != nil:
			t.Errorf("delivery %d was not in the failed request, answered %v", i, errs[i])
		}
		if inFailed {
			wantFailed = append(wantFailed, i)
		} else {
			wantOK = append(wantOK, i)
		}
	}
	if len(wantFailed) != 7 || len(failed) != 7*rowsEach {
		t.Fatalf("the failed request held %d rows of %d deliveries, want 7 whole deliveries", len(failed), len(wantFailed))
	}
	if n := env.count(t, "SELECT COUNT(*) FROM farm.argo"); n != int64(len(wantOK)*rowsEach) {
		t.Errorf("%d rows in the table, want the %d of the %d deliveries answered OK", n, len(wantOK)*rowsEach, len(wantOK))
	}
	// Pub/Sub delivers the failed ones again: they go in.
	env.sink = s
	for _, i := range wantFailed {
		env.mustDeliver(t, msgs[i])
	}
	if n := env.count(t, "SELECT COUNT(DISTINCT event_id) FROM farm.argo"); n != int64(deliveries*rowsEach) {
		t.Errorf("%d distinct events after the redeliveries, want %d", n, deliveries*rowsEach)
	}
}

// TestRejectedRowsGoToTheirDelivery: rows the destination refuses in a shared request are
// reported to the delivery they came from; the other deliveries of the request are answered OK.
func TestRejectedRowsGoToTheirDelivery(t *testing.T) {
	a, b := deltaOfRun("a"), deltaOfRun("b")
	refused := b.Events[1].ID
	w := rejecting{id: refused, entered: make(chan struct{}), release: make(chan struct{})}
	g := sink.NewGroup(&w, 1000, 1<<30)
	ctx := t.Context()
	rowsOf := func(d *event.RunDelta) []sink.Row {
		_, rows, err := sink.Rows(sinktest.Message(t, d, "1", sinktest.Day0), d)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	first := make(chan error, 1)
	go func() { first <- g.Write(ctx, sink.TableArgo, rowsOf(deltaOfRun("first"))) }()
	<-w.entered
	res := make(chan error, 2)
	go func() { res <- g.Write(ctx, sink.TableArgo, rowsOf(a)) }()
	go func() { res <- g.Write(ctx, sink.TableArgo, rowsOf(b)) }()
	for g.Waiting(sink.TableArgo) < 2 {
		time.Sleep(time.Millisecond)
	}
	close(w.release)
	if err := <-first; err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	var oks, rejections int
	for range 2 {
		err := <-res
		var rej *sink.RejectedError
		switch {
		case err == nil:
			oks++
		case errors.As(err, &rej) && len(rej.Rows) == 1 && rej.Rows[0].InsertID == refused:
			rejections++
		default:
			t.Errorf("unexpected answer %v", err)
		}
	}
	if oks != 1 || rejections != 1 || w.calls != 2 {
		t.Errorf("%d OK, %d with the refused row, %d requests; want 1, 1 and 2", oks, rejections, w.calls)
	}
}

// rejecting refuses the row with insert id id, as BigQuery's per-row insert errors do, holding
// its first request until released.
type rejecting struct {
	id               string
	entered, release chan struct{}
	calls            int // written by one request at a time
}

func (r *rejecting) Write(_ context.Context, table string, rows []sink.Row) error {
	r.calls++
	if r.calls == 1 {
		close(r.entered)
		<-r.release
	}
	for _, row := range rows {
		if _, id, _ := row.Save(); id == r.id {
			return &sink.RejectedError{Table: table, Rows: []sink.RejectedRow{{InsertID: id, Reasons: []string{"invalid: no such field"}}}}
		}
	}
	return nil
}

// TestBatchesAndVersionOneMessagesAreWritten: a batch's deltas (several runs) are written from
// one delivery, and a version-1 message still in flight during an upgrade is written as before.
// Against the BigQuery emulator.
func TestBatchesAndVersionOneMessagesAreWritten(t *testing.T) {
	env := newBQEnv(t, true)
	a, b, c := deltaOfRun("a"), deltaOfRun("b"), deltaOfRun("c")
	env.mustDeliver(t, sinktest.Batch(t, []*event.RunDelta{a, b}, "500", sinktest.Day0))
	env.mustDeliver(t, sinktest.MessageV1(t, c, "501", sinktest.Day0))
	got := env.query(t, "SELECT message_id, schema_version, run_uid, COUNT(*) AS n FROM farm.argo GROUP BY message_id, schema_version, run_uid ORDER BY run_uid")
	n := int64(len(a.Events))
	want := []map[string]bigquery.Value{
		{"message_id": "500", "schema_version": int64(2), "run_uid": "a", "n": n},
		{"message_id": "500", "schema_version": int64(2), "run_uid": "b", "n": n},
		{"message_id": "501", "schema_version": int64(1), "run_uid": "c", "n": n},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows by message and run:\n got %v\nwant %v", got, want)
	}
}

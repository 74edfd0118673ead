package sink

import (
	"context"
	"errors"
	"sync"
)

// Group is a Writer that puts the rows of concurrent deliveries into shared insert requests (a
// group commit): while one request of a table is in flight, the rows of the deliveries that
// arrive wait, and the next request takes all of them. Each Write returns once its own rows were
// inserted, with the outcome of the request that carried them: a transient failure fails exactly
// the deliveries in that request, and rows the destination refused are reported to the delivery
// they came from. With one delivery at a time it writes as the Writer it wraps does.
type Group struct {
	w                 Writer
	maxRows, maxBytes int

	mu     sync.Mutex
	tables map[string]*queue
}

// queue is one table's deliveries waiting for a request; busy while one of them writes.
type queue struct {
	waiting []*delivery
	busy    bool
}

// delivery is one Write waiting: its rows and where its outcome goes.
type delivery struct {
	rows []Row
	done chan outcome // buffered: the writer never blocks on a delivery that gave up
}

// outcome is a delivery's result, or the turn to write the next request (lead).
type outcome struct {
	err  error
	lead bool
}

// NewGroup returns a Group writing with w, a request holding the rows of whole deliveries up to
// maxRows rows and maxBytes of row JSON (a delivery larger than that goes alone, and w splits it
// as it does any write).
func NewGroup(w Writer, maxRows, maxBytes int) *Group {
	return &Group{w: w, maxRows: max(maxRows, 1), maxBytes: max(maxBytes, 1), tables: map[string]*queue{}}
}

// Write inserts rows into table, together with the rows of the deliveries waiting beside it.
func (g *Group) Write(ctx context.Context, table string, rows []Row) error {
	me := &delivery{rows: rows, done: make(chan outcome, 1)}
	g.mu.Lock()
	q := g.tables[table]
	if q == nil {
		q = &queue{}
		g.tables[table] = q
	}
	q.waiting = append(q.waiting, me)
	lead := !q.busy
	q.busy = true
	g.mu.Unlock()
	for {
		if lead {
			g.writeWaiting(ctx, table, q)
		}
		select {
		case o := <-me.done:
			if !o.lead {
				return o.err
			}
			lead = true // the previous writer finished and this delivery is first in line
		case <-ctx.Done():
			// The rows may still be inserted by the request that holds them (insert ids make that
			// harmless); the delivery fails and comes back. Should the turn to write come to it
			// now, it is passed on (see pass).
			go g.pass(table, q, me)
			return ctx.Err()
		}
	}
}

// writeWaiting writes every delivery waiting on q (in requests of whole deliveries), answers
// each, then hands the turn to the first delivery that arrived meanwhile, or frees q.
func (g *Group) writeWaiting(ctx context.Context, table string, q *queue) {
	g.mu.Lock()
	batch := q.waiting
	q.waiting = nil
	g.mu.Unlock()
	// A request serves other deliveries too: the caller's cancellation must not fail them. The
	// Writer bounds each request with its own timeout.
	wctx := context.WithoutCancel(ctx)
	for _, req := range g.requests(batch) {
		var rows []Row
		for _, d := range req {
			rows = append(rows, d.rows...)
		}
		err := g.w.Write(wctx, table, rows)
		for _, d := range req {
			d.done <- outcome{err: own(err, d.rows)}
		}
	}
	g.next(q)
}

// Waiting is how many deliveries of table wait for a request (those of the request in flight
// not counted).
func (g *Group) Waiting(table string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if q := g.tables[table]; q != nil {
		return len(q.waiting)
	}
	return 0
}

// next hands the turn to the first waiting delivery, or marks q idle.
func (g *Group) next(q *queue) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(q.waiting) == 0 {
		q.busy = false
		return
	}
	q.waiting[0].done <- outcome{lead: true}
}

// pass is run for a delivery that gave up: if the turn to write was handed to it, or is handed
// to it before its rows are written by someone else, it writes what waits so the queue does not
// stall.
func (g *Group) pass(table string, q *queue, d *delivery) {
	o := <-d.done
	if o.lead {
		g.writeWaiting(context.Background(), table, q)
	}
}

// requests splits deliveries into insert requests of whole deliveries.
func (g *Group) requests(ds []*delivery) [][]*delivery {
	var out [][]*delivery
	var cur []*delivery
	rows, size := 0, 0
	for _, d := range ds {
		n := 0
		for _, r := range d.rows {
			n += rowSize(r)
		}
		if len(cur) > 0 && (rows+len(d.rows) > g.maxRows || size+n > g.maxBytes) {
			out = append(out, cur)
			cur, rows, size = nil, 0, 0
		}
		cur = append(cur, d)
		rows += len(d.rows)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// own is a shared request's outcome for the delivery of rows: a transient error as it is, and of
// the rows the destination refused, only that delivery's own (nil when none of them was).
func own(err error, rows []Row) error {
	var rejected *RejectedError
	if err == nil || !errors.As(err, &rejected) {
		return err
	}
	mine := map[string]bool{}
	for _, r := range rows {
		if _, id, err := r.Save(); err == nil {
			mine[id] = true
		}
	}
	out := &RejectedError{Table: rejected.Table}
	for _, r := range rejected.Rows {
		if mine[r.InsertID] {
			out.Rows = append(out.Rows, r)
		}
	}
	if len(out.Rows) == 0 {
		return nil
	}
	return out
}

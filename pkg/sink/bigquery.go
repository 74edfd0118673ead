package sink

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// BigQueryWriter streams rows with tabledata.insertAll, the event id as insert id. Its client is
// created on first use and reused. Safe for concurrent use.
type BigQueryWriter struct {
	cfg Config

	mu     sync.Mutex
	client *bigquery.Client
}

// NewBigQueryWriter returns a writer to cfg's Project and Dataset (Endpoint: an emulator's); it
// connects on first use. Its zero Timeout and batch bounds are DefaultConfig's.
func NewBigQueryWriter(cfg Config) *BigQueryWriter {
	d := DefaultConfig()
	if cfg.Timeout <= 0 {
		cfg.Timeout = d.Timeout
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = d.BatchBytes
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = d.BatchRows
	}
	return &BigQueryWriter{cfg: cfg}
}

// Client returns the writer's BigQuery client, creating it on first use.
func (w *BigQueryWriter) Client(ctx context.Context) (*bigquery.Client, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.client != nil {
		return w.client, nil
	}
	var opts []option.ClientOption
	if w.cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(w.cfg.Endpoint), option.WithoutAuthentication())
	}
	// The client keeps the context for token refreshes: it must outlive this request.
	c, err := bigquery.NewClient(context.WithoutCancel(ctx), w.cfg.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("bigquery client for project %q: %w", w.cfg.Project, err)
	}
	w.client = c
	return c, nil
}

// Close releases the client, if one was created.
func (w *BigQueryWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.client == nil {
		return nil
	}
	err := w.client.Close()
	w.client = nil
	return err
}

// Write inserts rows into table in batches. Rows BigQuery refuses are returned in a
// *RejectedError once every batch has been tried; the first transient failure stops the write.
func (w *BigQueryWriter) Write(ctx context.Context, table string, rows []Row) error {
	c, err := w.Client(ctx)
	if err != nil {
		return err
	}
	ins := c.Dataset(w.cfg.Dataset).Table(table).Inserter()
	// Valid rows go in even when others in the request are refused; without this BigQuery
	// refuses the whole request and the valid rows would be lost with the acknowledgement.
	ins.SkipInvalidRows = true
	rejected := &RejectedError{Table: table}
	start := 0
	for _, batch := range batches(rows, w.cfg.BatchRows, w.cfg.BatchBytes) {
		refused, err := w.put(ctx, ins, batch)
		if err != nil {
			return fmt.Errorf("insert rows %d-%d of %d into %s.%s: %w", start, start+len(batch)-1, len(rows), w.cfg.Dataset, table, err)
		}
		rejected.Rows = append(rejected.Rows, refused...)
		start += len(batch)
	}
	if len(rejected.Rows) > 0 {
		return rejected
	}
	return nil
}

// batches splits rows into insert requests of at most maxRows rows and, but for a single row
// larger than that, maxBytes of row JSON.
func batches(rows []Row, maxRows, maxBytes int) [][]Row {
	var out [][]Row
	start, size := 0, 0
	for i, r := range rows {
		n := rowSize(r)
		if i > start && (i-start == maxRows || size+n > maxBytes) {
			out = append(out, rows[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(rows) {
		out = append(out, rows[start:])
	}
	return out
}

// put inserts one batch. It returns the rows refused for good, or an error worth retrying.
func (w *BigQueryWriter) put(ctx context.Context, ins *bigquery.Inserter, batch []Row) ([]RejectedRow, error) {
	err := w.insert(ctx, ins, batch)
	if err == nil {
		return nil, nil
	}
	var multi bigquery.PutMultiError
	if errors.As(err, &multi) {
		return rowErrors(multi), nil
	}
	var api *googleapi.Error
	if errors.As(err, &api) && api.Code == http.StatusBadRequest {
		if tooLarge(api) && len(batch) > 1 {
			// The size estimate fell short: halves go in, down to a single row if need be.
			half := len(batch) / 2
			first, err := w.put(ctx, ins, batch[:half])
			if err != nil {
				return nil, err
			}
			second, err := w.put(ctx, ins, batch[half:])
			return append(first, second...), err
		}
		// BigQuery refuses the request itself (malformed, or one row too large): the same rows
		// would be refused again. Names that could cause a 400 are checked by the configuration.
		return refuseAll(batch, api.Error()), nil
	}
	return nil, err
}

func (w *BigQueryWriter) insert(ctx context.Context, ins *bigquery.Inserter, batch []Row) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	return ins.Put(ctx, batch)
}

// tooLarge reports BigQuery's answer to a request over its size limit ("Request payload size
// exceeds the limit: 10485760 bytes.").
func tooLarge(err *googleapi.Error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "payload size exceeds")
}

func rowErrors(multi bigquery.PutMultiError) []RejectedRow {
	out := make([]RejectedRow, 0, len(multi))
	for _, re := range multi {
		r := RejectedRow{InsertID: re.InsertID}
		for _, e := range re.Errors {
			r.Reasons = append(r.Reasons, reason(e))
		}
		out = append(out, r)
	}
	return out
}

// reason reads one per-row error the way BigQuery reports it: reason, message, column.
func reason(err error) string {
	var e *bigquery.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	s := e.Reason + ": " + e.Message
	if e.Location != "" {
		s += " (" + e.Location + ")"
	}
	return s
}

func refuseAll(batch []Row, why string) []RejectedRow {
	out := make([]RejectedRow, 0, len(batch))
	for _, row := range batch {
		_, id, _ := row.Save()
		out = append(out, RejectedRow{InsertID: id, Reasons: []string{why}})
	}
	return out
}

package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// FileWriter appends rows as newline-delimited JSON, one file per table (<dir>/argo.ndjson,
// <dir>/airflow.ndjson), which `bq load --source_format=NEWLINE_DELIMITED_JSON` accepts with the
// shipped schemas. NULL columns are left out; JSON columns are written as JSON values. Safe for
// concurrent use within one process.
type FileWriter struct {
	dir string
	mu  sync.Mutex
}

// NewFileWriter returns a writer into dir, created on first write.
func NewFileWriter(dir string) *FileWriter { return &FileWriter{dir: dir} }

// Path returns the file a table's rows go to.
func (w *FileWriter) Path(table string) string { return filepath.Join(w.dir, table+".ndjson") }

// Write appends rows to the table's file in one write, so a batch is never interleaved with
// another.
func (w *FileWriter) Write(ctx context.Context, table string, rows []Row) error {
	if table != TableArgo && table != TableAirflow {
		return fmt.Errorf("file sink: unknown table %q", table)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // Encode ends each value with a newline
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("file sink: encode %s row: %w", table, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	f, err := os.OpenFile(w.Path(table), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	_, err = f.Write(buf.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("file sink: append to %s: %w", w.Path(table), err)
	}
	return nil
}

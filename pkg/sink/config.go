package sink

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/farmobs/farm/pkg/config"
)

// FromConfig returns the Sink the settings ask for: BigQuery (or its emulator) or files. Nothing
// connects until the first message.
func FromConfig(cfg config.Sink, log *slog.Logger, opts ...Option) (*Sink, error) {
	opts = append([]Option{WithSubscription(cfg.Subscription)}, opts...)
	switch cfg.Mode {
	case "bigquery":
		return New(NewBigQueryWriter(BigQueryConfig{
			Project:   cfg.Project,
			Dataset:   cfg.Dataset,
			Endpoint:  cfg.Endpoint,
			Timeout:   cfg.Timeout,
			BatchRows: cfg.BatchRows,
		}), log, opts...), nil
	case "file":
		return New(NewFileWriter(cfg.Dir), log, opts...), nil
	}
	return nil, fmt.Errorf("sink mode %q: want bigquery or file", cfg.Mode)
}

// Close releases the writer's resources (the BigQuery client), if it has any.
func (s *Sink) Close() error {
	if c, ok := s.dest.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Prepare creates what the destination lacks: for BigQuery the dataset, tables and views from the
// schemas directory (for emulators and local runs; terraform owns them in Google Cloud), for files
// nothing (the directory is created on first write).
func (s *Sink) Prepare(ctx context.Context, schemas fs.FS) error {
	w, ok := s.dest.(*BigQueryWriter)
	if !ok {
		return nil
	}
	c, err := w.Client(ctx)
	if err != nil {
		return err
	}
	return Setup(ctx, c, w.cfg.Dataset, schemas)
}

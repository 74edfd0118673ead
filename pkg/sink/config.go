package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"regexp"
	"time"

	"github.com/farmobs/farm/pkg/deadletter"
)

// Config is the BigQuery sink function. pkg/config reads it from the variables named below,
// starting from DefaultConfig.
type Config struct {
	// Mode is FARM_SINK: bigquery (default when a project is set) or file (newline-delimited JSON
	// that `bq load` accepts, one file per table, in Dir).
	Mode     string
	Dir      string // FARM_SINK_DIR
	Project  string // FARM_BIGQUERY_PROJECT (default: the project)
	Dataset  string // FARM_BIGQUERY_DATASET
	Endpoint string // FARM_BIGQUERY_ENDPOINT: an emulator's address, e.g. http://127.0.0.1:9050
	// Timeout is FARM_BIGQUERY_TIMEOUT: how long one insert request may take, retries included,
	// before the message is handed back to Pub/Sub for redelivery.
	Timeout time.Duration
	// BatchRows is FARM_BIGQUERY_BATCH_ROWS: rows per streaming insert request (BigQuery
	// recommends at most 500). The rows of deliveries handled at the same time share requests up
	// to it (Group), whole deliveries at a time.
	BatchRows int
	// BatchBytes bounds the rows of one insert request by their JSON size. BigQuery refuses
	// requests over 10 MB, and JSON columns travel as escaped strings, which can nearly double
	// them: every row repeats its run's annotations and parameters.
	BatchBytes int
	// Subscription is FARM_SINK_SUBSCRIPTION: the full name (projects/P/subscriptions/S) of the
	// subscription that delivers to the sink, written to rows whose delivery does not name it. A
	// push through the Functions Framework does not: its CloudEvent drops the envelope's field.
	Subscription string
}

// DefaultConfig is the configuration of a sink when nothing is set: files.
func DefaultConfig() Config {
	return Config{
		Mode:       "file",
		Dir:        ".farm/bigquery",
		Dataset:    "farm",
		Timeout:    30 * time.Second,
		BatchRows:  500,
		BatchBytes: 4 << 20,
	}
}

// bigQueryDataset is what BigQuery accepts as a dataset id. Checked here because BigQuery answers
// a bad name with 400, which the sink treats as rows refused for good.
var bigQueryDataset = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// pubsubSubscription is a full Pub/Sub subscription name: a project id (domain-scoped ones
// included) and a subscription id as Pub/Sub allows them. A bare id would land in the
// subscription_name column looking like a name, so it is refused.
var pubsubSubscription = regexp.MustCompile(`^projects/(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]/subscriptions/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)

// Validate reports every problem of c, each naming its setting.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case "bigquery":
		if c.Project == "" {
			errs = append(errs, errors.New("FARM_BIGQUERY_PROJECT is required when FARM_SINK=bigquery (or set FARM_PROJECT_ID)"))
		}
	case "file":
	default:
		errs = append(errs, fmt.Errorf("FARM_SINK is %q; want one of bigquery, file", c.Mode))
	}
	if !bigQueryDataset.MatchString(c.Dataset) || len(c.Dataset) > 1024 {
		errs = append(errs, fmt.Errorf("FARM_BIGQUERY_DATASET is %q; a dataset id is up to 1024 letters, digits and underscores", c.Dataset))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("FARM_BIGQUERY_TIMEOUT must be positive, got %s", c.Timeout))
	}
	if c.BatchRows < 1 || c.BatchRows > 50000 {
		errs = append(errs, fmt.Errorf("FARM_BIGQUERY_BATCH_ROWS is %d; want 1 to 50000 (BigQuery's limit per request)", c.BatchRows))
	}
	if c.BatchBytes < 1 {
		errs = append(errs, fmt.Errorf("sink: batch bytes must be positive, got %d", c.BatchBytes))
	}
	if c.Subscription != "" && !pubsubSubscription.MatchString(c.Subscription) {
		errs = append(errs, fmt.Errorf("FARM_SINK_SUBSCRIPTION is %q; want a full subscription name, projects/PROJECT_ID/subscriptions/SUBSCRIPTION_ID", c.Subscription))
	}
	return errors.Join(errs...)
}

// Deps are what a Sink works with besides its configuration.
type Deps struct {
	// Writer stores the rows; nil: the one cfg.Mode names (BigQuery or files).
	Writer Writer
	Log    *slog.Logger // nil: slog.Default()
	// DeadLetter keeps the messages that can never be written (nil: logged only).
	DeadLetter *deadletter.Keeper
}

// New returns the Sink cfg asks for. Nothing connects until the first message.
func New(cfg Config, deps Deps) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.DeadLetter == nil {
		deps.DeadLetter = deadletter.New(nil, "sink", deps.Log)
	}
	w := deps.Writer
	if w == nil {
		switch cfg.Mode {
		case "bigquery":
			w = NewBigQueryWriter(cfg)
		case "file":
			w = NewFileWriter(cfg.Dir)
		}
	}
	return &Sink{group: NewGroup(w, cfg.BatchRows, cfg.BatchBytes), log: deps.Log,
		subscription: cfg.Subscription, deadLetter: deps.DeadLetter}, nil
}

// Close releases the writer's resources (the BigQuery client), if it has any.
func (s *Sink) Close() error {
	if c, ok := s.group.w.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Prepare creates what the destination lacks: for BigQuery the dataset, tables and views from the
// schemas directory (for emulators and local runs; terraform owns them in Google Cloud), for files
// nothing (the directory is created on first write).
func (s *Sink) Prepare(ctx context.Context, schemas fs.FS) error {
	w, ok := s.group.w.(*BigQueryWriter)
	if !ok {
		return nil
	}
	c, err := w.Client(ctx)
	if err != nil {
		return err
	}
	return Setup(ctx, c, w.cfg.Dataset, schemas)
}

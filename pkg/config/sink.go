package config

import (
	"regexp"
	"time"
)

// bigQueryDataset is what BigQuery accepts as a dataset id. Checked here because BigQuery answers
// a bad name with 400, which the sink treats as rows refused for good.
var bigQueryDataset = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// pubsubSubscription is a full Pub/Sub subscription name: a project id (domain-scoped ones
// included) and a subscription id as Pub/Sub allows them. A bare id would land in the
// subscription_name column looking like a name, so it is refused.
var pubsubSubscription = regexp.MustCompile(`^projects/(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]/subscriptions/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)

// Sink is the BigQuery sink function.
type Sink struct {
	// Mode is FARM_SINK: bigquery (default when a project is set) or file (newline-delimited JSON
	// that `bq load` accepts, one file per table, in FARM_SINK_DIR).
	Mode     string
	Dir      string // FARM_SINK_DIR
	Project  string // FARM_BIGQUERY_PROJECT (default: the project)
	Dataset  string // FARM_BIGQUERY_DATASET
	Endpoint string // FARM_BIGQUERY_ENDPOINT: an emulator's address, e.g. http://127.0.0.1:9050
	// Timeout is FARM_BIGQUERY_TIMEOUT: how long one insert request may take, retries included,
	// before the message is handed back to Pub/Sub for redelivery.
	Timeout time.Duration
	// BatchRows is FARM_BIGQUERY_BATCH_ROWS: rows per streaming insert request (BigQuery
	// recommends at most 500).
	BatchRows int
	// Subscription is FARM_SINK_SUBSCRIPTION: the full name (projects/P/subscriptions/S) of the
	// subscription that delivers to the sink, written to rows whose delivery does not name it. A
	// push through the Functions Framework does not: its CloudEvent drops the envelope's field.
	Subscription string
}

func loadSink(r *Reader, common Common) Sink {
	s := Sink{
		Dir:          r.String("FARM_SINK_DIR", ".farm/bigquery"),
		Project:      r.String("FARM_BIGQUERY_PROJECT", common.ProjectID),
		Dataset:      r.String("FARM_BIGQUERY_DATASET", "farm"),
		Endpoint:     r.String("FARM_BIGQUERY_ENDPOINT", ""),
		Timeout:      r.Duration("FARM_BIGQUERY_TIMEOUT", 30*time.Second),
		BatchRows:    r.Int("FARM_BIGQUERY_BATCH_ROWS", 500),
		Subscription: r.String("FARM_SINK_SUBSCRIPTION", ""),
	}
	def := "file"
	if s.Project != "" {
		def = "bigquery"
	}
	s.Mode = r.OneOf("FARM_SINK", def, "bigquery", "file")
	if s.Mode == "bigquery" && s.Project == "" {
		r.Fail("FARM_BIGQUERY_PROJECT", "is required when FARM_SINK=bigquery (or set FARM_PROJECT_ID)")
	}
	if s.Endpoint != "" && r.URL("FARM_BIGQUERY_ENDPOINT") == nil {
		s.Endpoint = "" // URL has recorded the problem
	}
	if !bigQueryDataset.MatchString(s.Dataset) || len(s.Dataset) > 1024 {
		r.Fail("FARM_BIGQUERY_DATASET", "is %q; a dataset id is up to 1024 letters, digits and underscores", s.Dataset)
	}
	r.Positive("FARM_BIGQUERY_TIMEOUT", s.Timeout)
	if s.BatchRows < 1 || s.BatchRows > 50000 {
		r.Fail("FARM_BIGQUERY_BATCH_ROWS", "is %d; want 1 to 50000 (BigQuery's limit per request)", s.BatchRows)
	}
	if s.Subscription != "" && !pubsubSubscription.MatchString(s.Subscription) {
		r.Fail("FARM_SINK_SUBSCRIPTION", "is %q; want a full subscription name, projects/PROJECT_ID/subscriptions/SUBSCRIPTION_ID", s.Subscription)
	}
	return s
}

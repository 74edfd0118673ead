package config_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/sink"
)

func TestSinkConfig(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		want    sink.Config
		wantErr string
	}{
		{
			name: "defaults write files",
			env:  map[string]string{},
			want: sink.Config{Mode: "file", Dir: ".farm/bigquery", Dataset: "farm", Timeout: 30 * time.Second, BatchRows: 500, BatchBytes: 4 << 20},
		},
		{
			name: "a project means BigQuery",
			env:  map[string]string{"FARM_PROJECT_ID": "acme-obs"},
			want: sink.Config{Mode: "bigquery", Dir: ".farm/bigquery", Project: "acme-obs", Dataset: "farm", Timeout: 30 * time.Second, BatchRows: 500, BatchBytes: 4 << 20},
		},
		{
			name: "emulator",
			env: map[string]string{"FARM_SINK": "BigQuery", "FARM_BIGQUERY_PROJECT": "p", "FARM_BIGQUERY_DATASET": "farm_dev",
				"FARM_BIGQUERY_ENDPOINT": "http://127.0.0.1:9050", "FARM_BIGQUERY_TIMEOUT": "5s", "FARM_BIGQUERY_BATCH_ROWS": "100"},
			want: sink.Config{Mode: "bigquery", Dir: ".farm/bigquery", Project: "p", Dataset: "farm_dev",
				Endpoint: "http://127.0.0.1:9050", Timeout: 5 * time.Second, BatchRows: 100, BatchBytes: 4 << 20},
		},
		{
			name: "files even with a project",
			env:  map[string]string{"FARM_PROJECT_ID": "acme-obs", "FARM_SINK": "file", "FARM_SINK_DIR": "/var/farm"},
			want: sink.Config{Mode: "file", Dir: "/var/farm", Project: "acme-obs", Dataset: "farm", Timeout: 30 * time.Second, BatchRows: 500, BatchBytes: 4 << 20},
		},
		{name: "bigquery without project", env: map[string]string{"FARM_SINK": "bigquery"}, wantErr: "FARM_BIGQUERY_PROJECT is required"},
		{name: "unknown mode", env: map[string]string{"FARM_SINK": "kafka"}, wantErr: `FARM_SINK is "kafka"`},
		{name: "endpoint not a URL", env: map[string]string{"FARM_BIGQUERY_ENDPOINT": "localhost:9050"}, wantErr: "FARM_BIGQUERY_ENDPOINT"},
		{name: "dataset with a dash", env: map[string]string{"FARM_BIGQUERY_DATASET": "farm-prod"}, wantErr: `FARM_BIGQUERY_DATASET is "farm-prod"`},
		{name: "timeout not positive", env: map[string]string{"FARM_BIGQUERY_TIMEOUT": "0s"}, wantErr: "FARM_BIGQUERY_TIMEOUT must be positive"},
		{name: "batch too large", env: map[string]string{"FARM_BIGQUERY_BATCH_ROWS": "50001"}, wantErr: "FARM_BIGQUERY_BATCH_ROWS is 50001"},
		{name: "batch not a number", env: map[string]string{"FARM_BIGQUERY_BATCH_ROWS": "many"}, wantErr: "FARM_BIGQUERY_BATCH_ROWS is \"many\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Sink != tc.want {
				t.Errorf("got %+v, want %+v", cfg.Sink, tc.want)
			}
		})
	}
}

// TestSinkSubscription checks FARM_SINK_SUBSCRIPTION: a full subscription name is kept as given,
// anything else is refused naming the variable.
func TestSinkSubscription(t *testing.T) {
	cases := []struct {
		name, value, want string
		wantErr           bool
	}{
		{name: "unset", value: "", want: ""},
		{name: "full name", value: "projects/acme-obs/subscriptions/farm-bigquery-sink", want: "projects/acme-obs/subscriptions/farm-bigquery-sink"},
		{name: "surrounding spaces", value: " projects/acme-obs/subscriptions/farm-bigquery-sink\n", want: "projects/acme-obs/subscriptions/farm-bigquery-sink"},
		{name: "domain-scoped project", value: "projects/example.com:acme-obs/subscriptions/farm.sink~v2+x%41", want: "projects/example.com:acme-obs/subscriptions/farm.sink~v2+x%41"},
		{name: "bare subscription id", value: "farm-bigquery-sink", wantErr: true},
		{name: "topic, not subscription", value: "projects/acme-obs/topics/farm-run-deltas", wantErr: true},
		{name: "push endpoint URL", value: "https://pubsub.googleapis.com/v1/projects/acme-obs/subscriptions/farm-bigquery-sink", wantErr: true},
		{name: "no project", value: "projects//subscriptions/farm-bigquery-sink", wantErr: true},
		{name: "project with capitals", value: "projects/Acme-Obs/subscriptions/farm-bigquery-sink", wantErr: true},
		{name: "subscription id starts with a digit", value: "projects/acme-obs/subscriptions/1farm", wantErr: true},
		{name: "subscription id too short", value: "projects/acme-obs/subscriptions/ab", wantErr: true},
		{name: "trailing slash", value: "projects/acme-obs/subscriptions/farm-bigquery-sink/", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"FARM_SINK_SUBSCRIPTION": tc.value}
			cfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if tc.wantErr {
				want := "FARM_SINK_SUBSCRIPTION is " + strconv.Quote(tc.value)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, want an error containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Sink.Subscription != tc.want {
				t.Errorf("Subscription = %q, want %q", cfg.Sink.Subscription, tc.want)
			}
		})
	}
}

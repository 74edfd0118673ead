package sink_test

import (
	"context"
	"testing"

	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/sink"
)

// recorder is a Writer that keeps what it is given.
type recorder struct{ rows []sink.Row }

func (r *recorder) Write(_ context.Context, _ string, rows []sink.Row) error {
	r.rows = append(r.rows, rows...)
	return nil
}

// TestSubscriptionName checks where the subscription_name column comes from: the delivery's
// envelope when it names one (the local runner's pushes), else the configured subscription (a
// push through the Functions Framework, whose CloudEvent drops the field), else NULL.
func TestSubscriptionName(t *testing.T) {
	const configured = "projects/farm-test/subscriptions/farm-bigquery-sink-configured"
	cases := []struct {
		name       string
		delivered  string // the envelope's "subscription"
		configured string // Config.Subscription; "" = not given
		want       string // "" = NULL
	}{
		{name: "delivery names it: it wins", delivered: sinktest.Subscription, configured: configured, want: sinktest.Subscription},
		{name: "delivery names it, nothing configured", delivered: sinktest.Subscription, want: sinktest.Subscription},
		{name: "delivery does not: the configured one", configured: configured, want: configured},
		{name: "neither: NULL", want: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sink.DefaultConfig()
			cfg.Subscription = tc.configured
			w := &recorder{}
			s, err := sink.New(cfg, sink.Deps{Writer: w, Log: (&logBuffer{}).logger()})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []*event.RunDelta{sinktest.NestedArgoDelta(), sinktest.RetriedMappedAirflowDelta()} {
				m := sinktest.Message(t, d, "7001", sinktest.Day0)
				m.Subscription = tc.delivered
				if err := s.HandleEnvelope(t.Context(), sinktest.Envelope(t, m)); err != nil {
					t.Fatal(err)
				}
			}
			if len(w.rows) == 0 {
				t.Fatal("no rows written")
			}
			for _, r := range w.rows {
				got, ok := saved(t, r)["subscription_name"]
				switch {
				case tc.want == "" && ok:
					t.Errorf("subscription_name = %v, want NULL (left out of the insert)", got)
				case tc.want != "" && got != tc.want:
					t.Errorf("subscription_name = %v, want %q", got, tc.want)
				}
			}
		})
	}
}

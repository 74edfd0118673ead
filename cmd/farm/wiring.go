package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/internal/local"
	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/internal/sim/argosim"
	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/config"
)

// The functions registered in farm.go that this runner schedules and delivers to.

type consumer struct{ sub, function string }

// consumers are the Pub/Sub-triggered functions, each with its own subscription.
func consumers() []consumer {
	return []consumer{{"trace", "Trace"}, {"bigquery-sink", "BigQuerySink"}}
}

// pollTargets are the poll functions of the configured sources.
func pollTargets(cfg config.Config) []string {
	var out []string
	if cfg.Argo.URL != nil {
		out = append(out, "PollArgo")
	}
	if cfg.Airflow.URL != nil {
		out = append(out, "PollAirflow")
	}
	return out
}

// localOptions: waterfalls of the local DataDog receiver go to stdout, logs to stderr.
func localOptions(log *slog.Logger, stdout io.Writer) local.Options {
	return local.Options{
		Log:       log,
		Agent:     ddagent.LocalAgent(stdout),
		AgentAddr: os.Getenv("FARM_LOCAL_AGENT_ADDR"),
		Simulators: map[string]local.Simulator{
			"argo": func(ctx context.Context) (http.Handler, func(), error) {
				demo, err := argosim.NewDemo(clock.Real{}, uint64(time.Now().UnixNano()))
				if err != nil {
					return nil, nil, err
				}
				return demo, demo.Close, nil
			},
			// FARM_AIRFLOW_URL points at a real one of either version.
			"airflow": simulatedAirflow,
		},
	}
}

// simulatedAirflow starts the demo Airflow speaking the API FARM_SIM_AIRFLOW_API names: v2
// (Airflow 3, the default) or v1 (Airflow 2.10), so both mappings can be watched locally.
func simulatedAirflow(ctx context.Context) (http.Handler, func(), error) {
	api := cmp.Or(strings.TrimSpace(os.Getenv("FARM_SIM_AIRFLOW_API")), "v2")
	h, stop, err := airflowsim.Simulator(api)(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("FARM_SIM_AIRFLOW_API: %w", err)
	}
	return h, stop, nil
}

package config

import "github.com/farmobs/farm/pkg/apm"

// loadTrace reads the trace function's variables over apm's defaults; apm validates them.
func loadTrace(r *Reader) apm.Config {
	t := apm.DefaultConfig()
	t.ServiceArgo = r.String("FARM_TRACE_SERVICE_ARGO", t.ServiceArgo)
	t.ServiceAirflow = r.String("FARM_TRACE_SERVICE_AIRFLOW", t.ServiceAirflow)
	t.Version = r.String("DD_VERSION", "")
	t.MaxAge = r.Duration("FARM_TRACE_MAX_AGE", t.MaxAge)
	t.AgentTimeout = r.Duration("FARM_AGENT_TIMEOUT", t.AgentTimeout)
	r.Check(t.Validate())
	return t
}

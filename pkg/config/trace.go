package config

import "time"

// Trace is the trace function. The agent address is DataDog's own setting (DD_TRACE_AGENT_URL,
// DD_AGENT_HOST, DD_TRACE_AGENT_PORT), read by the tracer itself.
type Trace struct {
	ServiceArgo    string        // FARM_TRACE_SERVICE_ARGO
	ServiceAirflow string        // FARM_TRACE_SERVICE_AIRFLOW
	Version        string        // DD_VERSION
	MaxAge         time.Duration // FARM_TRACE_MAX_AGE: spans older than this are not sent (DataDog takes 18h)
	AgentTimeout   time.Duration // FARM_AGENT_TIMEOUT: per request to the DataDog agent
}

func loadTrace(r *Reader) Trace {
	t := Trace{
		ServiceArgo:    r.String("FARM_TRACE_SERVICE_ARGO", "argo-workflows"),
		ServiceAirflow: r.String("FARM_TRACE_SERVICE_AIRFLOW", "airflow"),
		Version:        r.String("DD_VERSION", ""),
		MaxAge:         r.Duration("FARM_TRACE_MAX_AGE", 18*time.Hour),
		AgentTimeout:   r.Duration("FARM_AGENT_TIMEOUT", 10*time.Second),
	}
	r.Positive("FARM_TRACE_MAX_AGE", t.MaxAge)
	r.Positive("FARM_AGENT_TIMEOUT", t.AgentTimeout)
	return t
}

package config

import "github.com/farmobs/farm/pkg/sink"

// loadSink reads the sink's variables over sink's defaults; sink validates them. The project and
// the mode default to the common project.
func loadSink(r *Reader, common Common) sink.Config {
	s := sink.DefaultConfig()
	s.Dir = r.String("FARM_SINK_DIR", s.Dir)
	s.Project = r.String("FARM_BIGQUERY_PROJECT", common.ProjectID)
	s.Dataset = r.String("FARM_BIGQUERY_DATASET", s.Dataset)
	s.Endpoint = r.String("FARM_BIGQUERY_ENDPOINT", "")
	s.Timeout = r.Duration("FARM_BIGQUERY_TIMEOUT", s.Timeout)
	s.BatchRows = r.Int("FARM_BIGQUERY_BATCH_ROWS", s.BatchRows)
	s.Subscription = r.String("FARM_SINK_SUBSCRIPTION", "")
	def := "file"
	if s.Project != "" {
		def = "bigquery"
	}
	s.Mode = r.OneOf("FARM_SINK", def, "bigquery", "file")
	if s.Endpoint != "" && r.URL("FARM_BIGQUERY_ENDPOINT") == nil {
		s.Endpoint = "" // URL has recorded the problem
	}
	r.Check(s.Validate())
	return s
}

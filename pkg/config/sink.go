package config

// Sink is the BigQuery sink function.
type Sink struct {
	// Mode is FARM_SINK: bigquery (default when a project is set) or file (newline-delimited JSON
	// that `bq load` accepts, one file per table, in FARM_SINK_DIR).
	Mode     string
	Dir      string // FARM_SINK_DIR
	Project  string // FARM_BIGQUERY_PROJECT (default: the project)
	Dataset  string // FARM_BIGQUERY_DATASET
	Endpoint string // FARM_BIGQUERY_ENDPOINT: an emulator's address, e.g. http://127.0.0.1:9050
}

func loadSink(r *Reader, common Common) Sink {
	s := Sink{
		Dir:      r.String("FARM_SINK_DIR", ".farm/bigquery"),
		Project:  r.String("FARM_BIGQUERY_PROJECT", common.ProjectID),
		Dataset:  r.String("FARM_BIGQUERY_DATASET", "farm"),
		Endpoint: r.String("FARM_BIGQUERY_ENDPOINT", ""),
	}
	def := "file"
	if s.Project != "" {
		def = "bigquery"
	}
	s.Mode = r.OneOf("FARM_SINK", def, "bigquery", "file")
	if s.Mode == "bigquery" && s.Project == "" {
		r.Fail("FARM_BIGQUERY_PROJECT", "is required when FARM_SINK=bigquery (or set FARM_PROJECT_ID)")
	}
	return s
}

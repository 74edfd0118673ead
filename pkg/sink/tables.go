package sink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strings"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
)

// TableSpec is how a FARM table is laid out. Terraform lays the tables out the same way; the
// local runner and the tests use EnsureTables.
type TableSpec struct {
	Name       string
	SchemaFile string   // in the schemas directory
	Partition  string   // DAY partitioning column
	Clustering []string // clustering columns
}

// Tables are FARM's tables.
var Tables = []TableSpec{
	{Name: TableArgo, SchemaFile: "argo.json", Partition: "publish_time", Clustering: []string{"pipeline", "status"}},
	{Name: TableAirflow, SchemaFile: "airflow.json", Partition: "publish_time", Clustering: []string{"pipeline", "status"}},
}

// Views are FARM's views (schemas/views/<name>.sql), in an order that creates every view after
// the views it reads.
var Views = []string{
	"argo_dedup",
	"airflow_dedup",
	"task_events",
	"runs",
	"task_duration_daily",
	"run_duration_daily",
	"failure_rate_daily",
	"queue_time_daily",
}

// Schema reads a table's schema from the schemas directory.
func Schema(schemas fs.FS, spec TableSpec) (bigquery.Schema, error) {
	b, err := fs.ReadFile(schemas, spec.SchemaFile)
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", spec.Name, err)
	}
	s, err := bigquery.SchemaFromJSON(b)
	if err != nil {
		return nil, fmt.Errorf("schema of %s in %s: %w", spec.Name, spec.SchemaFile, err)
	}
	return s, nil
}

// placeholder matches the ${name} placeholders of the view files.
var placeholder = regexp.MustCompile(`\$\{([a-z_]+)\}`)

// ViewSQL returns the SQL of a view with ${project} and ${dataset} replaced, the way terraform's
// templatefile() does. An unknown placeholder is an error.
func ViewSQL(schemas fs.FS, name, project, dataset string) (string, error) {
	b, err := fs.ReadFile(schemas, "views/"+name+".sql")
	if err != nil {
		return "", fmt.Errorf("view %s: %w", name, err)
	}
	vars := map[string]string{"project": project, "dataset": dataset}
	var unknown []string
	sql := placeholder.ReplaceAllStringFunc(string(b), func(m string) string {
		key := m[2 : len(m)-1]
		v, ok := vars[key]
		if !ok {
			unknown = append(unknown, m)
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("view %s: unknown placeholders %s", name, strings.Join(unknown, ", "))
	}
	return sql, nil
}

// Setup creates what is missing of the dataset, its tables and its views from the schemas
// directory (schemas/ of this repository). Existing objects are left as they are. Meant for
// emulators and the local runner: terraform owns them in Google Cloud.
func Setup(ctx context.Context, c *bigquery.Client, dataset string, schemas fs.FS) error {
	ds := c.Dataset(dataset)
	err := ensure(func() error { _, err := ds.Metadata(ctx); return err },
		func() error { return ds.Create(ctx, &bigquery.DatasetMetadata{}) })
	if err != nil {
		return fmt.Errorf("create dataset %s: %w", dataset, err)
	}
	for _, spec := range Tables {
		schema, err := Schema(schemas, spec)
		if err != nil {
			return err
		}
		md := &bigquery.TableMetadata{
			Schema:           schema,
			TimePartitioning: &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: spec.Partition},
			Clustering:       &bigquery.Clustering{Fields: spec.Clustering},
		}
		if err := ensureTable(ctx, ds.Table(spec.Name), md); err != nil {
			return fmt.Errorf("create table %s.%s: %w", dataset, spec.Name, err)
		}
	}
	for _, name := range Views {
		sql, err := ViewSQL(schemas, name, c.Project(), dataset)
		if err != nil {
			return err
		}
		if err := ensureTable(ctx, ds.Table(name), &bigquery.TableMetadata{ViewQuery: sql}); err != nil {
			return fmt.Errorf("create view %s.%s: %w", dataset, name, err)
		}
	}
	return nil
}

func ensureTable(ctx context.Context, t *bigquery.Table, md *bigquery.TableMetadata) error {
	return ensure(func() error { _, err := t.Metadata(ctx); return err },
		func() error { return t.Create(ctx, md) })
}

// ensure creates what get does not find. It looks first because emulators do not all answer 409
// to a second create; a 409 from a concurrent creator is fine too.
func ensure(get, create func() error) error {
	err := get()
	if err == nil || !hasCode(err, http.StatusNotFound) {
		return err
	}
	if err := create(); err != nil && !hasCode(err, http.StatusConflict) {
		return err
	}
	return nil
}

func hasCode(err error, code int) bool {
	var api *googleapi.Error
	return errors.As(err, &api) && api.Code == code
}

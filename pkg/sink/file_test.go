package sink_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"

	"github.com/farmobs/farm/internal/sinktest"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/sink"
)

// bqTimestamp is the timestamp form the file writer promises: RFC 3339 in UTC with at most
// microseconds, which `bq load` reads into a TIMESTAMP column.
var bqTimestamp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$`)

// validateLine checks one line of a load file the way a load job with the schema would: every key
// is a column, every value has the column's type, REQUIRED columns are present.
func validateLine(schema bigquery.Schema, line []byte) error {
	var row map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&row); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	cols := map[string]*bigquery.FieldSchema{}
	for _, c := range schema {
		cols[c.Name] = c
		if _, ok := row[c.Name]; c.Required && !ok {
			return fmt.Errorf("REQUIRED column %s is missing", c.Name)
		}
	}
	for k, raw := range row {
		c, ok := cols[k]
		if !ok {
			return fmt.Errorf("key %s is not a column", k)
		}
		if err := validateValue(c, raw); err != nil {
			return fmt.Errorf("column %s (%s): %w", k, c.Type, err)
		}
	}
	return nil
}

func validateValue(c *bigquery.FieldSchema, raw json.RawMessage) error {
	if string(raw) == "null" {
		if c.Required {
			return fmt.Errorf("null in a REQUIRED column")
		}
		return nil
	}
	if c.Repeated {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("REPEATED column holds %s, not an array", raw)
		}
		one := *c
		one.Repeated, one.Required = false, true // no nulls inside arrays
		for _, it := range items {
			if err := validateValue(&one, it); err != nil {
				return err
			}
		}
		return nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	switch c.Type {
	case bigquery.StringFieldType:
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s is not a string", raw)
		}
	case bigquery.IntegerFieldType:
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("%s is not a number", raw)
		}
		if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
			return fmt.Errorf("%s is not a 64-bit integer", raw)
		}
	case bigquery.FloatFieldType:
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%s is not a number", raw)
		}
	case bigquery.BooleanFieldType:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s is not a boolean", raw)
		}
	case bigquery.TimestampFieldType:
		s, ok := v.(string)
		if !ok || !bqTimestamp.MatchString(s) {
			return fmt.Errorf("%s is not a UTC RFC 3339 timestamp with at most microseconds", raw)
		}
	case bigquery.JSONFieldType:
		// A load job keeps a JSON column's raw value: an object or an array (parameters) as such,
		// but a string as a JSON string.
		_, obj := v.(map[string]any)
		_, arr := v.([]any)
		if !obj && !arr {
			return fmt.Errorf("%s is not a JSON object or array (a string would load as a JSON string)", raw)
		}
	default:
		return fmt.Errorf("no check for type %s", c.Type)
	}
	return nil
}

func TestValidateLineCatchesMistakes(t *testing.T) {
	schema := bigquery.Schema{
		{Name: "s", Type: bigquery.StringFieldType},
		{Name: "i", Type: bigquery.IntegerFieldType},
		{Name: "ts", Type: bigquery.TimestampFieldType},
		{Name: "j", Type: bigquery.JSONFieldType},
		{Name: "r", Type: bigquery.IntegerFieldType, Repeated: true},
		{Name: "req", Type: bigquery.StringFieldType, Required: true},
	}
	cases := map[string]bool{
		`{"req":"x","s":"a","i":3,"ts":"2026-03-02T01:00:00.123456Z","j":{"a":1},"r":[1,2]}`: true,
		`{"req":"x","s":null}`:  true,
		`{"s":"a"}`:             false, // REQUIRED missing
		`{"req":"x","extra":1}`: false,
		`{"req":"x","i":1.5}`:   false,
		`{"req":"x","i":"1"}`:   false,
		`{"req":"x","ts":"2026-03-02T01:00:00.123456789Z"}`: false,
		`{"req":"x","ts":"2026-03-02T02:00:00+01:00"}`:      false,
		`{"req":"x","j":"{\"a\":1}"}`:                       false,
		`{"req":"x","r":[1,null]}`:                          false,
		`{"req":"x","r":5}`:                                 false,
	}
	for line, ok := range cases {
		if err := validateLine(schema, []byte(line)); (err == nil) != ok {
			t.Errorf("%s: got %v, want valid=%v", line, err, ok)
		}
	}
}

// TestFileOutputLoadsBack writes both runs with the file sink, checks every line against the
// shipped schema, then loads the files into the emulator with a load job and reads them back.
func TestFileOutputLoadsBack(t *testing.T) {
	dir := t.TempDir()
	fw := sink.NewFileWriter(dir)
	s := writeWith(fw, (&logBuffer{}).logger())
	deltas := map[string]*event.RunDelta{sink.TableArgo: sinktest.NestedArgoDelta(), sink.TableAirflow: sinktest.RetriedMappedAirflowDelta()}
	msgs := map[string]event.Message{}
	for table, d := range deltas {
		msgs[table] = sinktest.Message(t, d, "55"+table, sinktest.Day0.Add(9*time.Minute))
		if err := s.HandleEnvelope(t.Context(), sinktest.Envelope(t, msgs[table])); err != nil {
			t.Fatal(err)
		}
	}

	env := newBQEnv(t, true)
	for table, d := range deltas {
		t.Run(table, func(t *testing.T) {
			schema, err := sink.Schema(schemasDir, tableSpec(t, table))
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(fw.Path(table))
			if err != nil {
				t.Fatal(err)
			}
			lines := 0
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				lines++
				if err := validateLine(schema, sc.Bytes()); err != nil {
					t.Errorf("line %d: %v\n%s", lines, err, sc.Bytes())
				}
			}
			if lines != len(d.Events) {
				t.Fatalf("%s has %d lines, want %d", fw.Path(table), lines, len(d.Events))
			}

			loadFile(t, env, table, data)
			_, rows, err := sink.Rows(msgs[table], d)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]map[string]bigquery.Value{}
			for _, r := range rows {
				cols, id, _ := r.Save()
				want[id] = cols
			}
			got := env.query(t, "SELECT * FROM farm."+table)
			if len(got) != len(want) {
				t.Fatalf("loaded %d rows, want %d", len(got), len(want))
			}
			for _, row := range got {
				id, _ := row["event_id"].(string)
				for _, col := range schema {
					if !storedAs(col, want[id][col.Name], row[col.Name]) {
						t.Errorf("event %s column %s: wrote %#v, loaded %#v", id, col.Name, want[id][col.Name], row[col.Name])
					}
				}
			}
		})
	}
}

// loadFile runs a load job of newline-delimited JSON into table, like `bq load` does.
func loadFile(t *testing.T, env *bqEnv, table string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	src := bigquery.NewReaderSource(bytes.NewReader(data))
	src.SourceFormat = bigquery.JSON
	loader := env.client.Dataset(testDataset).Table(table).LoaderFrom(src)
	loader.WriteDisposition = bigquery.WriteAppend
	job, err := loader.Run(ctx)
	if err != nil {
		t.Fatalf("load %s: %v", table, err)
	}
	status, err := job.Wait(ctx)
	if err != nil {
		t.Fatalf("load %s: %v", table, err)
	}
	if err := status.Err(); err != nil {
		t.Fatalf("load %s: %v", table, err)
	}
}

// TestFileWriterConcurrentWrites appends from many goroutines: every line arrives whole.
func TestFileWriterConcurrentWrites(t *testing.T) {
	fw := sink.NewFileWriter(t.TempDir())
	d := sinktest.NestedArgoDelta()
	_, rows, err := sink.Rows(sinktest.Message(t, d, "1", sinktest.Day0), d)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			if err := fw.Write(t.Context(), sink.TableArgo, rows); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	schema, err := sink.Schema(schemasDir, tableSpec(t, sink.TableArgo))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(fw.Path(sink.TableArgo))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) != writers*len(rows) {
		t.Fatalf("got %d lines, want %d", len(lines), writers*len(rows))
	}
	for i, l := range lines {
		if err := validateLine(schema, l); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
}

package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/option"
)

// BigQueryEmulatorVar names the variable holding the path of a goccy/bigquery-emulator binary.
// `make test` builds it once per machine (.ci/tools.sh, bigquery_emulator_bin) and sets it.
const BigQueryEmulatorVar = "FARM_BIGQUERY_EMULATOR"

const (
	bigQueryStart    = 30 * time.Second // it answers in well under a second when the machine is idle
	bigQueryAttempts = 3                // a free port can be taken between FreePort and the bind
)

// BigQuery is a running BigQuery emulator. It keeps its data in memory and starts empty.
type BigQuery struct {
	// Endpoint is the REST base URL, for option.WithEndpoint or FARM_BIGQUERY_ENDPOINT.
	Endpoint string
	Project  string
	proc     *Process
}

// StartBigQuery starts a BigQuery emulator of the test's own, serving project on free loopback
// ports, and stops it when the test ends. Starting one takes a fraction of a second, so tests do
// not share them and need no cleanup of data. Without FARM_BIGQUERY_EMULATOR the test fails when
// FARM_REQUIRE_EMULATORS=1 and is skipped otherwise.
func StartBigQuery(t testing.TB, project string) *BigQuery {
	t.Helper()
	bin := os.Getenv(BigQueryEmulatorVar)
	if bin == "" {
		Unavailable(t, "BigQuery emulator", fmt.Errorf("%s is not set to the path of a bigquery-emulator binary "+
			"(`make test` builds one, once per machine; or: source .ci/tools.sh; export %s=$(bigquery_emulator_bin))",
			BigQueryEmulatorVar, BigQueryEmulatorVar))
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), bigQueryStart)
	defer cancel()
	var err error
	for range bigQueryAttempts {
		var b *BigQuery
		if b, err = startBigQuery(ctx, bin, project); err == nil {
			t.Cleanup(b.Stop)
			return b
		}
		if ctx.Err() != nil {
			break
		}
	}
	t.Fatalf("start the BigQuery emulator (%s): %v", bin, err)
	return nil
}

func startBigQuery(ctx context.Context, bin, project string) (*BigQuery, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	grpcPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	if grpcPort == port {
		return nil, errors.New("got the same free port twice")
	}
	cmd := exec.Command(bin,
		"--project="+project,
		"--host=127.0.0.1",
		"--port="+strconv.Itoa(port),
		"--grpc-port="+strconv.Itoa(grpcPort),
		"--log-level=warn",
	)
	p, err := StartProcess("bigquery-emulator", cmd)
	if err != nil {
		return nil, err
	}
	b := &BigQuery{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), Project: project, proc: p}
	if err := WaitHTTP(ctx, p, b.Endpoint+"/bigquery/v2/projects/"+project+"/datasets", ""); err != nil {
		p.Stop()
		return nil, err
	}
	return b, nil
}

// Stop stops the emulator now, for tests of a BigQuery that went away. Calling it again, or the
// cleanup calling it, does nothing.
func (b *BigQuery) Stop() { b.proc.Stop() }

// Client returns a client of the emulator, closed when the test ends.
func (b *BigQuery) Client(t testing.TB) *bigquery.Client {
	t.Helper()
	c, err := bigquery.NewClient(context.WithoutCancel(t.Context()), b.Project,
		option.WithEndpoint(b.Endpoint), option.WithoutAuthentication())
	if err != nil {
		t.Fatalf("bigquery client of the emulator: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

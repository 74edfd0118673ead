package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LocalProject is the project id used when none is configured: nothing leaves the machine.
const LocalProject = "farm-local"

// Simulator starts a simulated orchestrator and returns its handler and a stop function.
type Simulator func(ctx context.Context) (http.Handler, func(), error)

// Options say what the local environment may embed.
type Options struct {
	// Dir holds local state and output (default .farm).
	Dir string
	// Simulators by source kind ("argo", "airflow"), started when that source has no URL.
	Simulators map[string]Simulator
	// Agent starts a local DataDog receiver on addr when no agent is configured or listening.
	Agent func(ctx context.Context, addr string) (stop func(), err error)
	// AgentAddr is where the DataDog agent is looked for, and the receiver started
	// (default 127.0.0.1:8126, the tracer's default).
	AgentAddr string
	Log       *slog.Logger
}

// Env is what Prepare embedded. Close stops it all.
type Env struct {
	// EmbeddedPubSub is set when the in-process Pub/Sub server was started.
	EmbeddedPubSub bool
	// Deliver is true when this process should push messages to its own consumer functions
	// (Pub/Sub is embedded or an emulator).
	Deliver bool
	// Simulated lists the sources served by a simulator.
	Simulated []string
	Project   string
	closers   []func()
}

// Close stops everything Prepare started, in reverse order, and restores the environment.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// setenv sets name for as long as the Env lives: Close puts the previous value back.
func (e *Env) setenv(name, value string) {
	old, had := os.LookupEnv(name)
	os.Setenv(name, value)
	e.closers = append(e.closers, func() {
		if had {
			os.Setenv(name, old)
		} else {
			os.Unsetenv(name)
		}
	})
}

// setDefault sets name unless it is set already.
func (e *Env) setDefault(name, value string) {
	if os.Getenv(name) == "" {
		e.setenv(name, value)
	}
}

// Prepare applies FARM's embedded defaults to the process environment, where the user has not
// configured anything else, and starts what they need. The functions then read the environment
// exactly as they do on Google Cloud.
//
//   - no project id: project "farm-local", the file state store, newline-delimited JSON output, and
//     the in-process Pub/Sub server (unless PUBSUB_EMULATOR_HOST is set);
//   - FIRESTORE_EMULATOR_HOST set: the Firestore store on that emulator;
//   - no FARM_ARGO_URL and no FARM_AIRFLOW_URL: simulated orchestrators;
//   - no DataDog agent configured and none on localhost:8126: a local receiver there.
func Prepare(ctx context.Context, opts Options) (*Env, error) {
	if opts.Dir == "" {
		opts.Dir = ".farm"
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	env := &Env{}
	ok := false
	defer func() {
		if !ok {
			env.Close()
		}
	}()

	project := firstSet("FARM_PROJECT_ID", "GOOGLE_CLOUD_PROJECT")
	if project == "" {
		project = LocalProject
		env.setDefault("FARM_PROJECT_ID", project)
		if os.Getenv("FIRESTORE_EMULATOR_HOST") != "" {
			env.setDefault("FARM_STATE_STORE", "firestore")
		} else {
			env.setDefault("FARM_STATE_STORE", "file")
		}
		env.setDefault("FARM_SINK", "file")
	}
	env.Project = project
	env.setDefault("FARM_STATE_FILE", filepath.Join(opts.Dir, "state.json"))
	env.setDefault("FARM_SINK_DIR", filepath.Join(opts.Dir, "bigquery"))

	switch {
	case os.Getenv("PUBSUB_EMULATOR_HOST") != "":
		env.Deliver = true
	case project == LocalProject:
		srv := StartPubSub()
		env.closers = append(env.closers, func() { _ = srv.Close() })
		env.setenv("PUBSUB_EMULATOR_HOST", srv.Addr)
		env.EmbeddedPubSub, env.Deliver = true, true
		// Refused deliveries are kept as in Google Cloud (the serve command creates the topic).
		env.setDefault("FARM_DEAD_LETTER_TOPIC", "farm-dead-letter")
	}

	if os.Getenv("FARM_ARGO_URL") == "" && os.Getenv("FARM_AIRFLOW_URL") == "" {
		for _, kind := range []string{"argo", "airflow"} {
			start, ok := opts.Simulators[kind]
			if !ok {
				continue
			}
			h, stop, err := start(ctx)
			if err != nil {
				return nil, fmt.Errorf("start simulated %s: %w", kind, err)
			}
			srv := httptest.NewServer(h)
			env.closers = append(env.closers, srv.Close, stop)
			env.setenv("FARM_"+strings.ToUpper(kind)+"_URL", srv.URL)
			env.setDefault("FARM_"+strings.ToUpper(kind)+"_INSTANCE", "simulated-"+kind)
			env.Simulated = append(env.Simulated, kind)
			log.WarnContext(ctx, "no orchestrator configured: polling a SIMULATED "+kind+" estate (set FARM_"+strings.ToUpper(kind)+"_URL to watch a real one)", "url", srv.URL)
		}
	}

	if opts.Agent != nil && firstSet("DD_TRACE_AGENT_URL", "DD_AGENT_HOST") == "" {
		addr := opts.AgentAddr
		if addr == "" {
			addr = "127.0.0.1:8126"
		}
		if listening(addr) {
			log.InfoContext(ctx, "using the DataDog agent listening on "+addr)
		} else {
			stop, err := opts.Agent(ctx, addr)
			if err != nil {
				return nil, fmt.Errorf("start local DataDog receiver: %w", err)
			}
			env.closers = append(env.closers, stop)
			env.setenv("DD_TRACE_AGENT_URL", "http://"+addr)
			log.InfoContext(ctx, "no DataDog agent configured: traces go to a local receiver that prints them", "address", addr)
		}
	}
	ok = true
	return env, nil
}

func firstSet(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// ErrNoSources is returned when nothing is configured or simulated to poll.
var ErrNoSources = errors.New("no source to poll: set FARM_ARGO_URL or FARM_AIRFLOW_URL")

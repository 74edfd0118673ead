package local

import (
	"cmp"
	"context"
	"crypto/rand"
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

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/logging"
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
	// Agent starts a local DataDog receiver on addr when no agent is configured or listening, and
	// returns the address it listens on. Nil: this process sends no traces (no agent is needed).
	Agent func(ctx context.Context, addr string) (listening string, stop func(), err error)
	// AgentAddr is where the DataDog agent is looked for, and the receiver started
	// (default 127.0.0.1:8126, the tracer's default).
	AgentAddr string
	Log       *slog.Logger
	// Check, when set, is called with the settings as the functions will read them (the
	// environment under the embedded defaults) before anything is started, so bad settings are
	// reported before any simulator says a word.
	Check func(lookup func(string) (string, bool)) error
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
	// StateFile is the file store's file when this process chose it: for simulated sources, a
	// file of this simulated estate's own, removed when it stops.
	StateFile string
	// AgentURL is where traces go ("" when no agent was needed).
	AgentURL string
	// AgentAddr is the host:port of the agent this process chose (its receiver, or an agent
	// found on the default address); "" when DataDog's own settings name the agent.
	AgentAddr string
	// PubSub are the client options that reach the in-process Pub/Sub server; nil when Pub/Sub
	// is Google Cloud's or PUBSUB_EMULATOR_HOST's (which the client library reads itself).
	PubSub []option.ClientOption
	// settings are the values this process uses where the environment sets nothing: the
	// embedded defaults and what Prepare started. The environment itself is never changed.
	settings map[string]string
	closers  []func()
}

// Lookup reads a setting as the functions of this process see it: the environment, except where
// Prepare set an embedded default or what it started.
func (e *Env) Lookup(name string) (string, bool) {
	if v, ok := e.settings[name]; ok {
		return v, true
	}
	return os.LookupEnv(name)
}

// Config is the configuration of this process's functions: the settings Lookup reads, with the
// tracer pointed at the agent Prepare chose.
func (e *Env) Config() (config.Config, error) {
	cfg, err := config.LoadFrom(e.Lookup)
	cfg.Trace.AgentAddr = e.AgentAddr
	return cfg, err
}

// get is Lookup's value, trimmed.
func (e *Env) get(name string) string {
	v, _ := e.Lookup(name)
	return strings.TrimSpace(v)
}

// Close stops everything Prepare started, in reverse order.
func (e *Env) Close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.closers = nil
}

// set makes name read value in this process's settings.
func (e *Env) set(name, value string) { e.settings[name] = value }

// setDefault sets name unless it is set already.
func (e *Env) setDefault(name, value string) {
	if e.get(name) == "" {
		e.set(name, value)
	}
}

// Prepare chooses FARM's embedded defaults where the environment configures nothing else, and
// starts what they need. The functions then read their configuration (Env.Config) exactly as they
// do on Google Cloud, without the process environment being changed.
//
//   - no project id: project "farm-local", the file state store, newline-delimited JSON output, and
//     the in-process Pub/Sub server (unless PUBSUB_EMULATOR_HOST is set);
//   - FIRESTORE_EMULATOR_HOST set: the Firestore store on that emulator;
//   - no FARM_ARGO_URL and no FARM_AIRFLOW_URL: simulated orchestrators, whose state is their own
//     (a file of their own with the file store, removed when they stop; instance names of their
//     own in another store), since every start simulates a new estate;
//   - Options.Agent set: a configured agent must answer as one (else an error naming the
//     variable); with none configured, an agent answering on AgentAddr is used, else a local
//     receiver is started there (or on another port when something else holds it).
//
// Options.Check runs once the defaults are chosen and before anything starts.
func Prepare(ctx context.Context, opts Options) (*Env, error) {
	if opts.Dir == "" {
		opts.Dir = ".farm"
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	env := &Env{settings: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			env.Close()
		}
	}()

	project := cmp.Or(env.get("FARM_PROJECT_ID"), env.get("GOOGLE_CLOUD_PROJECT"))
	if project == "" {
		project = LocalProject
		env.setDefault("FARM_PROJECT_ID", project)
		if env.get("FIRESTORE_EMULATOR_HOST") != "" {
			env.setDefault("FARM_STATE_STORE", "firestore")
		} else {
			env.setDefault("FARM_STATE_STORE", "file")
		}
		env.setDefault("FARM_SINK", "file")
	}
	env.Project = project
	simulate := env.get("FARM_ARGO_URL") == "" && env.get("FARM_AIRFLOW_URL") == "" && len(opts.Simulators) > 0
	stateDefault := env.get("FARM_STATE_FILE") == ""
	env.setDefault("FARM_STATE_FILE", filepath.Join(opts.Dir, "state.json"))
	env.setDefault("FARM_SINK_DIR", filepath.Join(opts.Dir, "bigquery"))
	if opts.Check != nil {
		if err := opts.Check(env.Lookup); err != nil {
			return nil, err
		}
	}

	fileStore := strings.EqualFold(env.get("FARM_STATE_STORE"), "file")
	if simulate && stateDefault && fileStore {
		// A simulated estate is new on every start: the state it is compared with must be its own,
		// or every restart reports the previous estate's runs as vanished.
		if err := os.MkdirAll(filepath.Join(opts.Dir, "simulated"), 0o755); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		dir, err := os.MkdirTemp(filepath.Join(opts.Dir, "simulated"), "estate-")
		if err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
		env.closers = append(env.closers, func() { _ = os.RemoveAll(dir) })
		env.set("FARM_STATE_FILE", filepath.Join(dir, "state.json"))
		env.StateFile = env.get("FARM_STATE_FILE")
	} else if fileStore {
		env.StateFile = env.get("FARM_STATE_FILE")
	}

	switch {
	case env.get("PUBSUB_EMULATOR_HOST") != "":
		env.Deliver = true
	case project == LocalProject:
		srv := StartPubSub()
		env.closers = append(env.closers, func() { _ = srv.Close() })
		env.PubSub = []option.ClientOption{option.WithEndpoint(srv.Addr), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())), option.WithTelemetryDisabled()}
		env.EmbeddedPubSub, env.Deliver = true, true
		// Refused deliveries are kept as in Google Cloud (the serve command creates the topic).
		env.setDefault("FARM_DEAD_LETTER_TOPIC", "farm-dead-letter")
	}

	if opts.Agent != nil {
		if err := env.agent(ctx, opts, log); err != nil {
			return nil, err
		}
	}

	if simulate {
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
			env.set("FARM_"+strings.ToUpper(kind)+"_URL", srv.URL)
			instance := "simulated-" + kind
			if env.StateFile == "" {
				// State outside a file of this estate's own (a Firestore emulator): the estate's
				// identity goes in its instance name, which keys its state there.
				instance += "-" + strings.ToLower(rand.Text()[:6])
			}
			env.setDefault("FARM_"+strings.ToUpper(kind)+"_INSTANCE", instance)
			env.Simulated = append(env.Simulated, kind)
			log.Log(ctx, logging.LevelNotice, "no orchestrator configured: polling a SIMULATED "+kind+" estate (set FARM_"+strings.ToUpper(kind)+"_URL to watch a real one)", "url", srv.URL)
		}
		if env.StateFile != "" && stateDefault {
			log.Log(ctx, logging.LevelNotice, "the simulated estates' state is their own, removed when they stop (the next start simulates new ones)", "file", env.StateFile)
		}
	}
	ok = true
	return env, nil
}

// agent finds where traces go: a configured agent must answer as one (else the settings are
// refused, naming the variable); with none configured, an agent already on the default address is
// used if it answers as one, and otherwise the local receiver is started (on another port when
// something else holds the default one).
func (e *Env) agent(ctx context.Context, opts Options, log *slog.Logger) error {
	if name, url := e.configuredAgent(); name != "" {
		if err := ProbeAgent(ctx, url); err != nil {
			return fmt.Errorf("%s: no DataDog agent answers at %s: %w (start the agent, or unset %s to see traces from a local receiver)", name, url, err, name)
		}
		e.AgentURL = url
		log.Log(ctx, logging.LevelNotice, "traces go to the DataDog agent at "+url)
		return nil
	}
	addr := opts.AgentAddr
	if addr == "" {
		addr = "127.0.0.1:8126"
	}
	if listening(addr) {
		err := ProbeAgent(ctx, "http://"+addr)
		if err == nil {
			e.AgentURL, e.AgentAddr = "http://"+addr, addr
			log.Log(ctx, logging.LevelNotice, "traces go to the DataDog agent listening on "+addr)
			return nil
		}
		host, _, _ := net.SplitHostPort(addr)
		log.WarnContext(ctx, "something listens on "+addr+" but it is not a DataDog agent: traces go to a local receiver on another port", "answer", err.Error())
		addr = net.JoinHostPort(host, "0")
	}
	// Close stops the receiver, after the deliveries under way have finished; not ctx's end.
	at, stop, err := opts.Agent(context.WithoutCancel(ctx), addr)
	if err != nil {
		return fmt.Errorf("start local DataDog receiver (FARM_LOCAL_AGENT_ADDR): %w", err)
	}
	e.closers = append(e.closers, stop)
	e.AgentURL, e.AgentAddr = "http://"+at, at
	log.Log(ctx, logging.LevelNotice, "no DataDog agent configured: traces go to a local receiver that prints each finished run below", "address", at)
	return nil
}

// configuredAgent returns the variable that configures the agent and the agent's URL, as the
// tracer reads them (DD_TRACE_AGENT_URL, else DD_AGENT_HOST and DD_TRACE_AGENT_PORT).
func (e *Env) configuredAgent() (name, url string) {
	if u := e.get("DD_TRACE_AGENT_URL"); u != "" {
		return "DD_TRACE_AGENT_URL", u
	}
	if h := e.get("DD_AGENT_HOST"); h != "" {
		port := e.get("DD_TRACE_AGENT_PORT")
		if port == "" {
			port = "8126"
		}
		return "DD_AGENT_HOST", "http://" + net.JoinHostPort(h, port)
	}
	return "", ""
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

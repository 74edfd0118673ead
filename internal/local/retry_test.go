package local

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/farmobs/farm/internal/ddagent"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/logging"
)

func TestRetryBackoffIsExponentialAndBounded(t *testing.T) {
	r := DefaultRetry
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 320 * time.Second, 600 * time.Second, 600 * time.Second}
	for i, w := range want {
		if got := r.Backoff(i + 1); got != w {
			t.Errorf("backoff after failure %d = %s, want %s", i+1, got, w)
		}
	}
}

func pubsubClient(t *testing.T, ctx context.Context) *pubsub.Client {
	t.Helper()
	srv := StartPubSub()
	t.Cleanup(func() { _ = srv.Close() })
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c, err := pubsub.NewClient(ctx, "p", option.WithGRPCConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopic(ctx, c, "p", "t"); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSubscription(ctx, c, "p", "t", "s"); err != nil {
		t.Fatal(err)
	}
	return c
}

// A target that always fails gets each message MaxAttempts times, with growing waits between
// deliveries, then one dead-letter line; the log says once that deliveries fail (not once per
// delivery, which flooded the terminal).
func TestPushBacksOffThenDeadLetters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := pubsubClient(t, ctx)
	var mu sync.Mutex
	var at []time.Time
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		http.Error(w, "<html><body>\n<h1>agent unreachable</h1>\n</body></html>", http.StatusInternalServerError)
	}))
	defer fn.Close()
	pub := c.Publisher("t")
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte(`{}`)}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	pub.Stop()
	var logs testenv.SyncBuffer
	log := logging.NewText(&logs, slog.LevelDebug, true)
	retry := Retry{MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond, MaxAttempts: 5}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Push(pctx, c, PushConfig{Project: "p", Topic: "t", Subscription: "s", Target: fn.URL, HTTP: fn.Client(), Log: log, Retry: retry})
	}()
	for !strings.Contains(logs.String(), "message dead-lettered") {
		select {
		case <-ctx.Done():
			t.Fatalf("no dead-letter line; log:\n%s", logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	time.Sleep(200 * time.Millisecond) // a redelivery after the dead letter would show up now
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != retry.MaxAttempts {
		t.Fatalf("%d deliveries, want %d", len(at), retry.MaxAttempts)
	}
	for i := 1; i < len(at); i++ {
		// Each wait is at least the policy's backoff (a lower bound only: the machine may be slow).
		if gap, min := at[i].Sub(at[i-1]), retry.Backoff(i); gap < min {
			t.Errorf("delivery %d came %s after the previous one, before the backoff of %s", i+1, gap, min)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "WARN"); n != 1 {
		t.Errorf("%d warnings, want one saying deliveries fail:\n%s", n, out)
	}
	if strings.Count(out, "ERROR message dead-lettered") != 1 || !strings.Contains(out, "attempts=5") {
		t.Errorf("want one dead-letter line with the attempts:\n%s", out)
	}
	if strings.Contains(out, "\n<h1>") {
		t.Errorf("an HTML page went into the log as is:\n%s", out)
	}
}

func TestProbeAgent(t *testing.T) {
	agent := httptest.NewServer(ddagent.New())
	defer agent.Close()
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<!DOCTYPE html><html><body>Not here</body></html>"))
	}))
	defer html.Close()
	// An agent older than 7.28: no /info, but its intake answers with sampling rates.
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v0.4/traces" && r.Method == http.MethodPut {
			_, _ = w.Write([]byte(`{"rate_by_service":{"service:,env:":1}}`))
			return
		}
		http.NotFound(w, r)
	}))
	defer old.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, tc := range []struct {
		name, url, errHas string
	}{
		{"FARM's receiver", agent.URL, ""},
		{"agent without /info", old.URL, ""},
		{"a web server", html.URL, "404 Not Found (text/html)"},
		{"nothing listening", closed.URL, "refused"},
		{"not a URL", "127.0.0.1:8126", `"127.0.0.1:8126"`},
	} {
		err := ProbeAgent(t.Context(), tc.url)
		if tc.errHas == "" && err != nil || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.errHas)
		}
	}
	// The agent's own socket.
	dir := t.TempDir()
	sock := filepath.Join(dir, "apm.socket")
	stopSock := serveUnix(t, sock, ddagent.New())
	defer stopSock()
	if err := ProbeAgent(t.Context(), "unix://"+sock); err != nil {
		t.Errorf("unix socket: %v", err)
	}
}

func serveUnix(t *testing.T, path string, h http.Handler) func() {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }
}

func clearAgentEnv(t *testing.T) {
	for _, v := range []string{"FARM_PROJECT_ID", "GOOGLE_CLOUD_PROJECT", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "FARM_STATE_STORE", "FARM_SINK",
		"FARM_ARGO_URL", "FARM_AIRFLOW_URL", "FARM_STATE_FILE", "FARM_SINK_DIR", "FARM_ARGO_INSTANCE", "FARM_AIRFLOW_INSTANCE", "DD_TRACE_AGENT_URL", "DD_AGENT_HOST", "DD_TRACE_AGENT_PORT"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	t.Setenv("FARM_AIRFLOW_URL", "http://airflow.example:8080") // nothing simulated
}

// What the runner does about the agent: a configured address that is no agent is refused at
// start, naming the variable; an unconfigured default address held by something else is left
// alone and the receiver starts elsewhere.
func TestPrepareRecognisesTheAgentByItsAnswer(t *testing.T) {
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<html><body>Not Found</body></html>"))
	}))
	defer html.Close()
	var started []string
	startAgent := func(ctx context.Context, addr string) (string, func(), error) {
		at, stop, err := ddagent.New().Serve(ctx, addr)
		started = append(started, at)
		return at, stop, err
	}

	t.Run("configured but not an agent", func(t *testing.T) {
		clearAgentEnv(t)
		t.Setenv("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")
		_, err := Prepare(t.Context(), Options{Dir: t.TempDir(), Log: quiet, Agent: startAgent})
		if err == nil || !strings.Contains(err.Error(), "DD_TRACE_AGENT_URL") || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("err = %v, want DD_TRACE_AGENT_URL refused with what answered", err)
		}
		t.Setenv("DD_TRACE_AGENT_URL", "")
		os.Unsetenv("DD_TRACE_AGENT_URL")
		t.Setenv("DD_AGENT_HOST", "127.0.0.1")
		t.Setenv("DD_TRACE_AGENT_PORT", strconv.Itoa(html.Listener.Addr().(*net.TCPAddr).Port))
		_, err = Prepare(t.Context(), Options{Dir: t.TempDir(), Log: quiet, Agent: startAgent})
		if err == nil || !strings.Contains(err.Error(), "DD_AGENT_HOST") || !strings.Contains(err.Error(), "text/html") {
			t.Fatalf("err = %v, want DD_AGENT_HOST refused", err)
		}
	})
	t.Run("default address held by a web server", func(t *testing.T) {
		clearAgentEnv(t)
		var logs bytes.Buffer
		env, err := Prepare(t.Context(), Options{Dir: t.TempDir(), Log: logging.NewText(&logs, slog.LevelInfo, true), Agent: startAgent, AgentAddr: html.Listener.Addr().String()})
		if err != nil {
			t.Fatal(err)
		}
		defer env.Close()
		cfg, _ := env.Config()
		if env.AgentURL == "" || env.AgentURL == html.URL || "http://"+cfg.Trace.AgentAddr != env.AgentURL {
			t.Fatalf("traces go to %q (the tracer's agent %q), want a receiver of its own, not %s", env.AgentURL, cfg.Trace.AgentAddr, html.URL)
		}
		if err := ProbeAgent(t.Context(), env.AgentURL); err != nil {
			t.Errorf("the receiver started is no agent: %v", err)
		}
		if !strings.Contains(logs.String(), "not a DataDog agent") {
			t.Errorf("the log does not say why: %s", logs.String())
		}
	})
	t.Run("default address held by an agent", func(t *testing.T) {
		clearAgentEnv(t)
		agent := httptest.NewServer(ddagent.New())
		defer agent.Close()
		n := len(started)
		env, err := Prepare(t.Context(), Options{Dir: t.TempDir(), Log: quiet, Agent: startAgent, AgentAddr: agent.Listener.Addr().String()})
		if err != nil {
			t.Fatal(err)
		}
		defer env.Close()
		if env.AgentURL != agent.URL || len(started) != n {
			t.Errorf("traces go to %q, want the agent already there (%s) and no receiver started", env.AgentURL, agent.URL)
		}
	})
}

// Each simulated estate gets a state file of its own, which goes when the estate stops: a new
// estate is never compared with another's runs.
func TestSimulatedEstatesHaveTheirOwnState(t *testing.T) {
	clearAgentEnv(t)
	t.Setenv("FARM_AIRFLOW_URL", "")
	os.Unsetenv("FARM_AIRFLOW_URL")
	dir := t.TempDir()
	sim := map[string]Simulator{"argo": func(context.Context) (http.Handler, func(), error) { return http.NotFoundHandler(), func() {}, nil }}
	var checked atomic.Bool
	a, err := Prepare(t.Context(), Options{Dir: dir, Log: quiet, Simulators: sim, Check: func(func(string) (string, bool)) error { checked.Store(true); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	first := a.StateFile
	if got, _ := a.Lookup("FARM_STATE_FILE"); !checked.Load() || !strings.HasPrefix(first, filepath.Join(dir, "simulated")) || got != first {
		t.Fatalf("state file %q (setting %q), check called %v", first, got, checked.Load())
	}
	if err := os.WriteFile(first, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := os.Stat(filepath.Dir(first)); !os.IsNotExist(err) {
		t.Errorf("the stopped estate's state is still there: %v", err)
	}
	b, err := Prepare(t.Context(), Options{Dir: dir, Log: quiet, Simulators: sim})
	if err != nil {
		t.Fatal(err)
	}
	if b.StateFile == first || b.StateFile == "" {
		t.Errorf("the next estate's state is %q, after %q", b.StateFile, first)
	}
	b.Close()
	// Bad settings stop everything before any simulator starts.
	started := false
	sim["argo"] = func(context.Context) (http.Handler, func(), error) {
		started = true
		return http.NotFoundHandler(), func() {}, nil
	}
	_, err = Prepare(t.Context(), Options{Dir: dir, Log: quiet, Simulators: sim, Check: func(func(string) (string, bool)) error { return errBad }})
	if !errors.Is(err, errBad) || started {
		t.Errorf("err %v, simulator started %v: want the check's error and nothing started", err, started)
	}
}

var errBad = errorString("FARM_POLL_OVERLAP is bad")

type errorString string

func (e errorString) Error() string { return string(e) }

// Work under way when the runner stops is let finish, within FinishTimeout: a delivery or a poll
// cut short would read as a failure.
func TestFinishingOutlivesItsContextBriefly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	fctx, done := finishing(ctx)
	defer done()
	cancel()
	select {
	case <-fctx.Done():
		t.Fatal("the work under way was cut short when its context ended")
	case <-time.After(50 * time.Millisecond):
	}
	done()
	if fctx.Err() == nil {
		t.Error("done did not end it")
	}
}

// With state in a Firestore emulator, a simulated estate's identity is in its instance name,
// which keys its state there: two estates never share state.
func TestSimulatedEstatesInFirestoreHaveTheirOwnInstance(t *testing.T) {
	clearAgentEnv(t)
	t.Setenv("FARM_AIRFLOW_URL", "")
	os.Unsetenv("FARM_AIRFLOW_URL")
	t.Setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1") // never dialled here
	sim := map[string]Simulator{"argo": func(context.Context) (http.Handler, func(), error) { return http.NotFoundHandler(), func() {}, nil }}
	names := map[string]bool{}
	for range 2 {
		env, err := Prepare(t.Context(), Options{Dir: t.TempDir(), Log: quiet, Simulators: sim})
		if err != nil {
			t.Fatal(err)
		}
		name, _ := env.Lookup("FARM_ARGO_INSTANCE")
		if store, _ := env.Lookup("FARM_STATE_STORE"); store != "firestore" || !strings.HasPrefix(name, "simulated-argo-") || env.StateFile != "" {
			t.Errorf("store %q, instance %q, state file %q", store, name, env.StateFile)
		}
		names[name] = true
		env.Close()
	}
	if len(names) != 2 {
		t.Errorf("two estates share an instance name: %v", names)
	}
}

package local

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/farmobs/farm/pkg/event"
)

var quiet = slog.New(slog.DiscardHandler)

// TestPushDeliversCloudEventsAndRedeliversOnFailure: a function answering 500 gets the message
// again (nack), as an Eventarc trigger with retry does; 2xx acknowledges it.
func TestPushDeliversCloudEventsAndRedeliversOnFailure(t *testing.T) {
	srv := StartPubSub()
	defer srv.Close()
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
	if err := EnsureSubscription(ctx, c, "p", "t", "s"); err != nil { // idempotent
		t.Fatalf("second EnsureSubscription: %v", err)
	}

	var calls atomic.Int32
	got := make(chan event.Message, 1)
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("ce-type") != "google.cloud.pubsub.topic.v1.messagePublished" || r.Header.Get("ce-specversion") != "1.0" || r.Header.Get("ce-id") == "" {
			t.Errorf("not a binary-mode Pub/Sub CloudEvent: %v", r.Header)
		}
		if calls.Add(1) == 1 {
			http.Error(w, "transient", http.StatusInternalServerError)
			return
		}
		m, err := event.ParseMessage(body)
		if err != nil {
			t.Errorf("body: %v", err)
		}
		w.WriteHeader(http.StatusNoContent)
		got <- m
	}))
	defer fn.Close()

	pub := c.Publisher("t")
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte(`{"x":1}`), Attributes: map[string]string{"source": "argo"}}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	pub.Stop()
	done := make(chan error, 1)
	pctx, stop := context.WithCancel(ctx)
	go func() {
		done <- Push(pctx, c, PushConfig{Project: "p", Topic: "t", Subscription: "s", Target: fn.URL, HTTP: fn.Client(), Log: quiet, Retry: Retry{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxAttempts: 5}})
	}()
	select {
	case m := <-got:
		if string(m.Data) != `{"x":1}` || m.Attributes["source"] != "argo" || m.Subscription != "projects/p/subscriptions/s" {
			t.Errorf("delivered %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("the message was not redelivered after a 500")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Push returned %v after its context ended", err)
	}
	if n := calls.Load(); n < 2 {
		t.Fatalf("%d deliveries, want a failed one and a redelivery", n)
	}
}

func TestScheduleCallsEveryTarget(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("method %s", r.Method)
		}
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/PollAirflow" {
			w.WriteHeader(http.StatusConflict) // logged, never fatal
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Schedule(ctx, time.Millisecond, []string{srv.URL + "/PollArgo", srv.URL + "/PollAirflow"}, srv.Client(), quiet)
		close(done)
	}()
	for {
		mu.Lock()
		n := min(seen["/PollArgo"], seen["/PollAirflow"])
		mu.Unlock()
		if n >= 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

func TestPrepareEmbedsWhatIsNotConfigured(t *testing.T) {
	for _, v := range []string{"FARM_PROJECT_ID", "GOOGLE_CLOUD_PROJECT", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "FARM_STATE_STORE", "FARM_SINK", "FARM_ARGO_URL", "FARM_AIRFLOW_URL", "FARM_STATE_FILE", "FARM_SINK_DIR", "FARM_ARGO_INSTANCE", "DD_TRACE_AGENT_URL", "DD_AGENT_HOST"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	t.Setenv("FARM_AIRFLOW_URL", "http://airflow.example:8080") // configured: nothing is simulated
	dir := t.TempDir()
	started := map[string]bool{}
	env, err := Prepare(context.Background(), Options{
		Dir: dir,
		Log: quiet,
		Simulators: map[string]Simulator{
			"argo": func(context.Context) (http.Handler, func(), error) {
				started["argo"] = true
				return http.NotFoundHandler(), func() {}, nil
			},
			"airflow": func(context.Context) (http.Handler, func(), error) {
				started["airflow"] = true
				return http.NotFoundHandler(), func() {}, nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	checks := map[string]string{
		"FARM_PROJECT_ID":  LocalProject,
		"FARM_STATE_STORE": "file",
		"FARM_SINK":        "file",
		"FARM_STATE_FILE":  dir + "/state.json",
		"FARM_AIRFLOW_URL": "http://airflow.example:8080",
	}
	for k, want := range checks {
		if got, _ := env.Lookup(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	cfg, err := env.Config()
	if err != nil || cfg.Common.ProjectID != LocalProject || cfg.Sink.Mode != "file" || cfg.Common.StateFile != dir+"/state.json" {
		t.Errorf("configuration %+v, %v; want the embedded defaults", cfg.Common, err)
	}
	// The defaults are the configuration's, not the process environment's.
	for _, k := range []string{"FARM_PROJECT_ID", "FARM_STATE_STORE", "FARM_SINK", "FARM_STATE_FILE", "PUBSUB_EMULATOR_HOST"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("Prepare set %s=%q in the process environment", k, v)
		}
	}
	if !env.EmbeddedPubSub || env.PubSub == nil {
		t.Error("the in-process Pub/Sub was not started")
	}
	if started["argo"] || started["airflow"] || len(env.Simulated) != 0 {
		t.Errorf("a simulator started although an orchestrator is configured: %v", started)
	}
}

package setup

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/state/filestore"
)

func testConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.LoadFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestLazyBuildsOnceAndRetriesFailures(t *testing.T) {
	var l lazy[int]
	calls := 0
	build := func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, errors.New("transient")
		}
		return calls, nil
	}
	if _, err := l.get(context.Background(), "x", build); err == nil || !strings.Contains(err.Error(), "x: transient") {
		t.Fatalf("first build: err = %v", err)
	}
	for range 3 {
		v, err := l.get(context.Background(), "x", build)
		if err != nil || v != 2 {
			t.Fatalf("lazy = %d, %v; want 2 (built once after the failure)", v, err)
		}
	}
}

func TestStoreFollowsConfiguration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	a := New(testConfig(t, map[string]string{"FARM_STATE_STORE": "file", "FARM_STATE_FILE": path}), Deps{})
	s, err := a.Store(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fs, ok := s.(*filestore.Store)
	if !ok || fs.Path() != path {
		t.Fatalf("store %T, want the file store on %s", s, path)
	}
	l, _ := a.Ledger(context.Background())
	if l.(*filestore.Store) != fs {
		t.Error("ledger and store are different backends")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestEnginesNeedTheirSource(t *testing.T) {
	a := New(testConfig(t, map[string]string{"FARM_STATE_STORE": "file", "FARM_STATE_FILE": filepath.Join(t.TempDir(), "s")}), Deps{})
	if _, err := a.ArgoEngine(context.Background()); err == nil || !strings.Contains(err.Error(), "FARM_ARGO_URL") {
		t.Errorf("argo engine without a URL: %v", err)
	}
	if _, err := a.AirflowEngine(context.Background()); err == nil || !strings.Contains(err.Error(), "FARM_AIRFLOW_URL") {
		t.Errorf("airflow engine without a URL: %v", err)
	}
	b := New(testConfig(t, map[string]string{"FARM_STATE_STORE": "file", "FARM_STATE_FILE": filepath.Join(t.TempDir(), "s"), "FARM_ARGO_URL": "https://argo.example:2746", "FARM_PROJECT_ID": "p", "FARM_SINK": "file"}), Deps{})
	e, err := b.ArgoEngine(context.Background())
	if err != nil || e == nil {
		t.Fatalf("argo engine: %v", err)
	}
	again, _ := b.ArgoEngine(context.Background())
	if again != e {
		t.Error("the engine is rebuilt on every call")
	}
}

// The local runner installs the App it built from its own configuration: the functions it serves
// use that one, and Install(nil) lets the next Default read the environment again.
func TestInstallMakesTheProcessApp(t *testing.T) {
	a := New(testConfig(t, map[string]string{"FARM_STATE_STORE": "file", "FARM_STATE_FILE": filepath.Join(t.TempDir(), "s")}), Deps{})
	Install(a)
	t.Cleanup(func() { Install(nil) })
	got, err := Default()
	if err != nil || got != a {
		t.Fatalf("Default = %p, %v; want the installed App %p", got, err, a)
	}
}

// The Pub/Sub options of Deps reach the App's publisher: the local runner's functions publish to
// its in-process server without PUBSUB_EMULATOR_HOST in the environment.
func TestPublisherTakesThePubSubOfDeps(t *testing.T) {
	t.Setenv("PUBSUB_EMULATOR_HOST", "")
	srv, _ := testenv.PubSub(t, "farm-setup", "farm-run-deltas")
	cfg := testConfig(t, map[string]string{"FARM_PROJECT_ID": "farm-setup", "FARM_STATE_STORE": "file", "FARM_STATE_FILE": filepath.Join(t.TempDir(), "s")})
	a := New(cfg, Deps{PubSub: []option.ClientOption{option.WithEndpoint(srv.Addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}})
	t.Cleanup(func() { _ = a.Close() })
	pub, err := a.Publisher(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, []event.Message{{Data: []byte(`{}`), OrderingKey: "k"}}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("the in-process server holds %d messages, want 1", n)
	}
}

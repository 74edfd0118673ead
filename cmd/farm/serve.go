package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"google.golang.org/api/option"

	_ "github.com/farmobs/farm" // registers every function, as on Google Cloud
	"github.com/farmobs/farm/internal/local"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/logging"
	"github.com/farmobs/farm/pkg/setup"
	"github.com/farmobs/farm/schemas"
)

const serveUsage = "usage: farm [serve] [-port N] [-interval D]\n\n" +
	"Runs every function in one process and polls on a schedule; Ctrl-C stops. With nothing configured\n" +
	"it polls simulated orchestrators and prints each finished run as a waterfall on stdout; the log\n" +
	"(stderr) has one line per poll and warnings. FARM_LOG_FORMAT=json gives the full JSON log.\n\nflags:"

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	port := fs.String("port", "", "port of the functions server (default: env PORT, else 8080)")
	interval := fs.Duration("interval", 0, "time between scheduled polls (default: env FARM_POLL_INTERVAL, else 1m, 15s when simulated)")
	rest, err := parseFlags(fs, args, stdout, stderr, serveUsage)
	if err != nil {
		return err
	}
	if err := noArgs("serve", rest); err != nil {
		return err
	}
	if *port == "" {
		*port = envOr("PORT", "8080")
	}
	// Logs on stderr keep stdout for the local DataDog receiver's waterfalls.
	log := localLogger(stderr)
	logging.SetDefault(log)
	simulated := os.Getenv("FARM_ARGO_URL") == "" && os.Getenv("FARM_AIRFLOW_URL") == ""
	opts := localOptions(log, stdout)
	opts.Check = func(lookup func(string) (string, bool)) error {
		return checkSettings(lookup, func(r *config.Reader) {
			checkPort(r, *port)
			def := time.Minute
			if simulated {
				def = 15 * time.Second
			}
			d := r.Duration("FARM_POLL_INTERVAL", def)
			r.Positive("FARM_POLL_INTERVAL", d)
			switch {
			case *interval < 0:
				r.Fail("-interval", "must be positive, got %s", *interval)
			case *interval == 0:
				*interval = d
			}
		})
	}
	env, err := local.Prepare(ctx, opts)
	if err != nil {
		return err
	}
	defer env.Close()
	cfg, err := env.Config() // with the simulators' URLs
	if err != nil {
		return err
	}
	// The functions serve this configuration, not one of an earlier serve in this process.
	setup.Install(setup.New(cfg, setup.Deps{Log: log, PubSub: env.PubSub}))
	defer setup.Install(nil)

	if cfg.Sink.Mode == "bigquery" && cfg.Sink.Endpoint != "" {
		// An emulator starts empty: create the dataset, tables and views terraform would.
		if err := prepareBigQuery(ctx, cfg, log); err != nil {
			return err
		}
	}
	base, err := startFunctions(ctx, *port)
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "functions are served the way Cloud Functions serves them", "url", base)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 10 * time.Minute}
	if env.Deliver {
		if err := startDeliveries(ctx, &wg, cfg, env.PubSub, base, hc, log); err != nil {
			return err
		}
	} else {
		log.WarnContext(ctx, "Pub/Sub is Google Cloud's: this process publishes, the deployed consumers receive")
	}
	var targets []string
	for _, p := range pollTargets(cfg) {
		targets = append(targets, base+"/"+p)
	}
	if len(targets) == 0 {
		return local.ErrNoSources
	}
	wg.Go(func() { local.Schedule(ctx, *interval, targets, hc, log) })
	log.Log(ctx, logging.LevelNotice, fmt.Sprintf("functions served at %s; %s every %s; Ctrl-C stops", base, strings.Join(pollTargets(cfg), " and "), interval))
	<-ctx.Done()
	log.Log(context.WithoutCancel(ctx), logging.LevelNotice, fmt.Sprintf("stopping: the poll and deliveries under way finish (at most %s)", local.FinishTimeout))
	cancel()
	wg.Wait()
	log.Log(context.WithoutCancel(ctx), logging.LevelNotice, "stopped. Goodbye", goodbyeAttrs(env, cfg)...)
	return nil
}

// goodbyeAttrs say where what this session produced is kept.
func goodbyeAttrs(env *local.Env, cfg config.Config) []any {
	var attrs []any
	if cfg.Sink.Mode == "file" {
		attrs = append(attrs, "bigquery_rows", filepath.Join(cfg.Sink.Dir, "*.ndjson"))
	}
	if env.StateFile != "" && len(env.Simulated) == 0 {
		attrs = append(attrs, "state", env.StateFile)
	}
	return attrs
}

// startFunctions serves every registered function with the functions framework, on loopback,
// and returns its base URL once it accepts connections.
func startFunctions(ctx context.Context, port string) (string, error) {
	addr := net.JoinHostPort("127.0.0.1", port)
	errc := make(chan error, 1)
	go func() { errc <- funcframework.StartHostPort("127.0.0.1", port) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-errc:
			return "", fmt.Errorf("serve functions on %s: %w (set PORT or -port to a free port)", addr, err)
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			return "http://" + addr, nil
		}
	}
	return "", fmt.Errorf("functions server did not start on %s", addr)
}

// startDeliveries creates the topic and one subscription per consumer function and pushes each
// message to its function as a CloudEvent, like the Eventarc triggers terraform creates.
func startDeliveries(ctx context.Context, wg *sync.WaitGroup, cfg config.Config, pubsubOpts []option.ClientOption, base string, hc *http.Client, log *slog.Logger) error {
	project := cfg.Common.ProjectID
	c, err := pubsub.NewClient(ctx, project, pubsubOpts...)
	if err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	if err := local.EnsureTopic(ctx, c, project, cfg.Common.Topic); err != nil {
		return err
	}
	if dl := cfg.Common.DeadLetterTopic; dl != "" {
		// A subscription of its own keeps the dead letters for inspection, as terraform's does.
		dl = dl[strings.LastIndex(dl, "/")+1:]
		if err := local.EnsureTopic(ctx, c, project, dl); err != nil {
			return err
		}
		if err := local.EnsureSubscription(ctx, c, project, dl, dl); err != nil {
			return err
		}
	}
	var pushes sync.WaitGroup
	for _, cons := range consumers() {
		sub := "farm-" + cons.sub
		if err := local.EnsureSubscription(ctx, c, project, cfg.Common.Topic, sub); err != nil {
			return err
		}
		pushes.Go(func() {
			push := local.PushConfig{Project: project, Topic: cfg.Common.Topic, Subscription: sub, Target: base + "/" + cons.function, HTTP: hc, Log: log}
			if err := local.Push(ctx, c, push); err != nil {
				log.ErrorContext(ctx, "push deliveries stopped", "subscription", sub, "error", err)
			}
		})
	}
	wg.Go(func() {
		// The client closes once the deliveries have stopped: closing it under them reads as
		// an error of theirs.
		pushes.Wait()
		_ = c.Close()
	})
	return nil
}

func prepareBigQuery(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	app := setup.New(cfg, setup.Deps{Log: log})
	defer app.Close()
	s, err := app.Sink(ctx)
	if err != nil {
		return err
	}
	if err := s.Prepare(ctx, schemas.FS); err != nil {
		return fmt.Errorf("create the BigQuery tables on %s: %w", cfg.Sink.Endpoint, err)
	}
	log.InfoContext(ctx, "BigQuery dataset, tables and views are ready", "endpoint", cfg.Sink.Endpoint, "dataset", cfg.Sink.Dataset)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

var errNoSource = errors.New("unknown source: want argo or airflow")

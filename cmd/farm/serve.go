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
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/farmobs/farm" // registers every function, as on Google Cloud
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/local"
	"github.com/farmobs/farm/pkg/logging"
	"github.com/farmobs/farm/pkg/setup"
	"github.com/farmobs/farm/schemas"
)

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.String("port", envOr("PORT", "8080"), "port of the functions server (env PORT)")
	interval := fs.Duration("interval", 0, "time between scheduled polls (env FARM_POLL_INTERVAL, default 1m, 15s when simulated)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Logs on stderr keep stdout for the local DataDog receiver's waterfalls.
	log := logging.New(stderr, logging.ParseLevel(os.Getenv("FARM_LOG_LEVEL")))
	logging.SetDefault(log)
	env, err := local.Prepare(ctx, localOptions(log, stdout))
	if err != nil {
		return err
	}
	defer env.Close()
	cfg, err := config.Load() // refuse bad settings now, each with its variable's name
	if err != nil {
		return err
	}
	if *interval == 0 {
		if *interval, err = pollInterval(len(env.Simulated) > 0); err != nil {
			return err
		}
	}

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
		if err := startDeliveries(ctx, &wg, cfg, base, hc, log); err != nil {
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
	log.InfoContext(ctx, "polling on a schedule; Ctrl-C stops", "targets", targets, "interval", interval.String())
	<-ctx.Done()
	cancel()
	wg.Wait()
	return nil
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
			return "", fmt.Errorf("serve functions on %s: %w", addr, err)
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
func startDeliveries(ctx context.Context, wg *sync.WaitGroup, cfg config.Config, base string, hc *http.Client, log *slog.Logger) error {
	project := cfg.Common.ProjectID
	c, err := pubsub.NewClient(ctx, project)
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
	for _, cons := range consumers() {
		sub := "farm-" + cons.sub
		if err := local.EnsureSubscription(ctx, c, project, cfg.Common.Topic, sub); err != nil {
			return err
		}
		wg.Go(func() {
			if err := local.Push(ctx, c, project, cfg.Common.Topic, sub, base+"/"+cons.function, hc, log); err != nil {
				log.ErrorContext(ctx, "push deliveries stopped", "subscription", sub, "error", err)
			}
		})
	}
	wg.Go(func() {
		<-ctx.Done()
		_ = c.Close()
	})
	return nil
}

func prepareBigQuery(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	app := setup.New(cfg, log, nil)
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

func pollInterval(simulated bool) (time.Duration, error) {
	def := time.Minute
	if simulated {
		def = 15 * time.Second
	}
	r := config.NewReader(os.LookupEnv)
	d := r.Duration("FARM_POLL_INTERVAL", def)
	r.Positive("FARM_POLL_INTERVAL", d)
	return d, r.Err()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

var errNoSource = errors.New("unknown source: want argo or airflow")

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/local"
	"github.com/farmobs/farm/pkg/logging"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/setup"
)

// cmdPoll runs one poll with the configured (or embedded) store and Pub/Sub, printing each
// published RunDelta as a JSON line on stdout and the summary on stderr.
func cmdPoll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("poll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dryRun := fs.Bool("dry-run", false, "list and diff, but publish and store nothing")
	since := fs.String("since", "", "backfill window start (RFC 3339)")
	until := fs.String("until", "", "backfill window end (RFC 3339; default now)")
	replay := fs.Bool("replay", false, "with -since: re-publish transitions already published, with their ids")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: farm poll argo|airflow [-dry-run] [-since T [-until T] [-replay]]")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	source, args := args[0], args[1:]
	if err := fs.Parse(args); err != nil {
		return err
	}
	req, err := pollRequest(*since, *until, *replay)
	if err != nil {
		return err
	}
	req.DryRun = *dryRun

	log := logging.New(stderr, logging.ParseLevel(envOr("FARM_LOG_LEVEL", "info")))
	logging.SetDefault(log)
	opts := localOptions(log, stdout)
	opts.Agent = nil // one poll traces nothing: no receiver needed
	env, err := local.Prepare(ctx, opts)
	if err != nil {
		return err
	}
	defer env.Close()
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if env.EmbeddedPubSub && !*dryRun {
		if err := ensureTopic(ctx, cfg); err != nil {
			return err
		}
	}
	app := setup.New(cfg, log, clock.Real{})
	defer app.Close()
	engine, err := engineFor(ctx, app, source)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	engine.OnPublish(func(d *event.RunDelta) { _ = enc.Encode(d) })
	res, err := engine.Poll(ctx, req)
	poll.LogResult(ctx, log, res, err)
	summary := json.NewEncoder(stderr)
	summary.SetIndent("", "  ")
	if res != nil {
		_ = summary.Encode(res)
	}
	return err
}

func engineFor(ctx context.Context, app *setup.App, source string) (*poll.Engine, error) {
	switch source {
	case event.SourceArgo:
		return app.ArgoEngine(ctx)
	case event.SourceAirflow:
		return app.AirflowEngine(ctx)
	}
	return nil, fmt.Errorf("%w: %q", errNoSource, source)
}

func pollRequest(since, until string, replay bool) (poll.Request, error) {
	var req poll.Request
	if since == "" {
		if until != "" || replay {
			return req, fmt.Errorf("-until and -replay need -since")
		}
		return req, nil
	}
	var err error
	if req.Since, err = time.Parse(time.RFC3339, since); err != nil {
		return req, fmt.Errorf("-since %q is not RFC 3339 (e.g. 2026-01-02T15:04:05Z)", since)
	}
	if until != "" {
		if req.Until, err = time.Parse(time.RFC3339, until); err != nil {
			return req, fmt.Errorf("-until %q is not RFC 3339 (e.g. 2026-01-02T15:04:05Z)", until)
		}
	}
	req.Replay = replay
	return req, nil
}

func ensureTopic(ctx context.Context, cfg config.Config) error {
	c, err := pubsub.NewClient(ctx, cfg.Common.ProjectID)
	if err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	defer c.Close()
	return local.EnsureTopic(ctx, c, cfg.Common.ProjectID, cfg.Common.Topic)
}

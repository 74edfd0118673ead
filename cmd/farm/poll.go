package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/option"

	"github.com/farmobs/farm/internal/local"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/logging"
	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/setup"
)

const pollUsage = "usage: farm poll argo|airflow [-dry-run] [-since T [-until T] [-replay]]\n\n" +
	"Runs one poll and prints each published RunDelta as a JSON line on stdout, the poll's summary\n" +
	"(JSON) on stderr. -since/-until make it a backfill of that window: the runs that overlap it.\n\nflags:"

// cmdPoll runs one poll with the configured (or embedded) store and Pub/Sub, printing each
// published RunDelta as a JSON line on stdout and the summary on stderr.
func cmdPoll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("poll", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "list and diff, but publish and store nothing")
	since := fs.String("since", "", "backfill window start (RFC 3339)")
	until := fs.String("until", "", "backfill window end (RFC 3339; default now)")
	replay := fs.Bool("replay", false, "with -since: re-publish transitions already published, with their ids")
	// The source may come first (farm poll argo -dry-run) or after the flags.
	var source string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		source, args = args[0], args[1:]
	}
	rest, err := parseFlags(fs, args, stdout, stderr, pollUsage)
	if err != nil {
		return err
	}
	if source == "" && len(rest) > 0 {
		source, rest = rest[0], rest[1:]
	}
	if source == "" {
		fmt.Fprintln(stderr, pollUsage)
		fs.PrintDefaults()
		return usageError{errors.New("poll: which source? argo or airflow")}
	}
	if err := noArgs("poll", rest); err != nil {
		return err
	}
	if source != event.SourceArgo && source != event.SourceAirflow {
		return usageError{fmt.Errorf("%w: %q", errNoSource, source)}
	}
	req, err := pollRequest(*since, *until, *replay)
	if err != nil {
		return usageError{err}
	}
	req.DryRun = *dryRun

	log := localLogger(stderr)
	logging.SetDefault(log)
	opts := localOptions(log, stdout)
	opts.Agent = nil // one poll traces nothing: no receiver needed
	opts.Check = func(lookup func(string) (string, bool)) error { return checkSettings(lookup, nil) }
	env, err := local.Prepare(ctx, opts)
	if err != nil {
		return err
	}
	defer env.Close()
	cfg, err := env.Config()
	if err != nil {
		return err
	}
	if env.EmbeddedPubSub && !*dryRun {
		if err := ensureTopic(ctx, cfg, env.PubSub); err != nil {
			return err
		}
	}
	app := setup.New(cfg, setup.Deps{Log: log, PubSub: env.PubSub})
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

func ensureTopic(ctx context.Context, cfg config.Config, opts []option.ClientOption) error {
	c, err := pubsub.NewClient(ctx, cfg.Common.ProjectID, opts...)
	if err != nil {
		return fmt.Errorf("pubsub client: %w", err)
	}
	defer c.Close()
	return local.EnsureTopic(ctx, c, cfg.Common.ProjectID, cfg.Common.Topic)
}

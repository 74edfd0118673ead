// Command farm runs FARM on one machine.
//
//	farm [serve]                  every function in one process, polled on a schedule (default)
//	farm poll argo|airflow        one poll; each published RunDelta as a JSON line on stdout
//	farm package                  the reproducible source archive terraform deploys
//	farm help                     this text
//
// Settings come from the environment (see README.md); with none, everything is embedded: an
// in-process Pub/Sub, a file state store, newline-delimited JSON instead of BigQuery, a local
// DataDog receiver, and simulated orchestrators.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run every function in one process, polling on a schedule (the default)", cmdServe},
		{"poll", "run one poll: farm poll argo|airflow [-dry-run] [-since T -until T [-replay]]", cmdPoll},
		{"package", "write the reproducible source archive for deployment", cmdPackage},
		{"bench", "measure polls against simulated estates: farm bench [-quick] [-runs N,N] [-churn S,S] [-polls N]", cmdBench},
		{"fidelity", "run FARM through a simulated day and compare what it published with the truth", cmdFidelity},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "farm:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	name := "serve"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args, stdout, stderr)
		}
	}
	if name == "help" || name == "-h" || name == "--help" {
		usage(stdout)
		return nil
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", name)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: farm [command] [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nSettings are environment variables: see README.md.")
}

// Command farm runs FARM on one machine.
//
//	farm [serve]                  every function in one process, polled on a schedule (default)
//	farm poll argo|airflow        one poll; each published RunDelta as a JSON line on stdout
//	farm package                  the reproducible source archive terraform deploys
//	farm help                     this text
//
// Settings come from the environment (see README.md); with none, everything is embedded: an
// in-process Pub/Sub, a file state store, newline-delimited JSON instead of BigQuery, a local
// DataDog receiver, and simulated orchestrators. Every setting is checked before anything
// starts. `-h` after any command prints its usage (exit 0); a command line that cannot run exits
// 2, a failure 1, Ctrl-C 130.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
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
	stdout, stderr, restore := quietFramework()
	err := run(ctx, os.Args[1:], stdout, stderr)
	interrupted := ctx.Err() != nil
	stop()
	restore()
	os.Exit(exitCode(err, interrupted, stderr))
}

// exitCode says how a command ended: 0 for success and for usage asked with -h; 2 for a command
// line that cannot run (its usage was printed); 130 when Ctrl-C stopped it; 1 otherwise.
func exitCode(err error, interrupted bool, stderr io.Writer) int {
	var usage usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown), errors.Is(err, flag.ErrHelp):
		return 0 // flag.ErrHelp: bench and fidelity printed their usage
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "farm:", err)
		return 2
	case interrupted && errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "farm: interrupted (Ctrl-C): stopped before the end; nothing was committed")
		return 130
	}
	fmt.Fprintln(stderr, "farm:", err)
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	name := "serve"
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || isHelp(args[0])) {
		name, args = args[0], args[1:] // `farm -port 8081` is `farm serve -port 8081`
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args, stdout, stderr)
		}
	}
	if name == "help" || isHelp(name) {
		usage(stdout)
		return nil
	}
	usage(stderr)
	return usageError{fmt.Errorf("unknown command %q", name)}
}

func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: farm [command] [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nSettings are environment variables: see README.md.")
}

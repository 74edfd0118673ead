package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/farmobs/farm/internal/bench"
)

// estateFlags are the flags describing an estate, shared by `farm bench sim` and the bench
// command that starts it.
func estateFlags(e bench.Estate) []string {
	return []string{"-kind", e.Kind, "-runs", strconv.Itoa(e.Runs), "-tasks", strconv.Itoa(e.Tasks),
		"-churn", strconv.FormatFloat(e.Churn, 'g', -1, 64), "-dags", strconv.Itoa(e.DAGs),
		"-seed", strconv.FormatUint(e.Seed, 10), "-interval", e.Interval.String(), "-initial-rounds", strconv.Itoa(e.InitialRounds), "-airflow-api", e.AirflowAPI}
}

// cmdBenchSim (`farm bench sim`, not listed) serves a simulated estate on a loopback port until
// its stdin closes: the bench command runs it as a child so the simulator's memory is not counted
// in the poll's. The first line on stdout is the base URL.
func cmdBenchSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var e bench.Estate
	fs.StringVar(&e.Kind, "kind", "argo", "argo or airflow")
	fs.IntVar(&e.Runs, "runs", 1000, "active runs")
	fs.IntVar(&e.Tasks, "tasks", 50, "tasks per run")
	fs.Float64Var(&e.Churn, "churn", 0.01, "share of runs changing per interval")
	fs.IntVar(&e.DAGs, "dags", 100, "Airflow DAGs")
	fs.Uint64Var(&e.Seed, "seed", 1, "estate seed")
	fs.DurationVar(&e.Interval, "interval", time.Minute, "simulated time between polls")
	fs.IntVar(&e.InitialRounds, "initial-rounds", 0, "Argo: controller rounds runs have already had (0: the simulator's default)")
	fs.StringVar(&e.AirflowAPI, "airflow-api", "", "Airflow: the API the simulator speaks, v2 (Airflow 3, the default) or v1 (Airflow 2.10)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return serveSim(ctx, e, os.Stdin, stdout)
}

// serveSim serves e until stop reaches its end (or ctx ends), after printing its URL.
func serveSim(ctx context.Context, e bench.Estate, stop io.Reader, stdout io.Writer) error {
	sim, err := bench.NewSim(e)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stop); close(stdinClosed) }()
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	if errors.Is(err, context.DeadlineExceeded) {
		// A connection the client dialed but never used counts as busy for its first 5 s: the
		// measurement is over, nothing is lost by closing it.
		return srv.Close()
	}
	return err
}

// simProcess is a `farm bench sim` child.
type simProcess struct {
	cmd   *exec.Cmd
	stdin io.Closer
	URL   string
}

// startSim runs this executable as `farm bench sim` for e and waits for its URL (building a large
// estate takes a while).
func startSim(ctx context.Context, e bench.Estate, stderr io.Writer) (*simProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this executable: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, append([]string{"bench", "sim"}, estateFlags(e)...)...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start simulator: %w", err)
	}
	p := &simProcess{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("simulator did not start: %w", err)
	}
	p.URL = strings.TrimSpace(line)
	return p, nil
}

// Stop closes the child's stdin, which ends it, and waits for it.
func (p *simProcess) Stop() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait() // its exit status says nothing the figures did not
}

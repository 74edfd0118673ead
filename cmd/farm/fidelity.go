package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/farmobs/farm/internal/bench"
	"github.com/farmobs/farm/internal/sim/airflowsim"
	"github.com/farmobs/farm/pkg/event"
	"github.com/farmobs/farm/pkg/logging"
)

// cmdFidelity runs FARM's poll of each source through a simulated day (random gaps, crashes
// between publish and commit, racing triggers, transient API faults) and compares what it
// published with the simulators' ground truth.
func cmdFidelity(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fidelity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dayLen := fs.Duration("day", 24*time.Hour, "simulated time")
	seed := fs.Uint64("seed", 7, "seed of the estates and of the day's randomness")
	runs := fs.Int("runs", 40, "active runs per source")
	tasks := fs.Int("tasks", 20, "tasks per run")
	only := fs.String("source", "", "argo or airflow (default: both)")
	sensorStart := fs.String("sensor-start", "per-poke", "the simulated Airflow's start_date of a rescheduled sensor: per-poke (Airflow 2.0 to 3.2) or first-poke (1.10, 3.x with PR 66790)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs("fidelity", fs.Args()); err != nil {
		return err
	}
	var sensor airflowsim.SensorStart
	switch *sensorStart {
	case "per-poke":
	case "first-poke":
		sensor = airflowsim.StartFirstPoke
	default:
		return fmt.Errorf("-sensor-start %q: want per-poke or first-poke", *sensorStart)
	}
	level, err := logging.ParseLevel(envOr("FARM_LOG_LEVEL", "error"))
	if err != nil {
		return fmt.Errorf("FARM_LOG_LEVEL %w", err)
	}
	log := logging.New(stderr, level)
	if os.Getenv(bench.EmulatorEnv) == "" {
		fmt.Fprintln(stdout, "note: "+bench.EmulatorEnv+" is not set: the state store is a file store (`make fidelity` uses the emulator)")
	}
	failed := false
	for _, kind := range []string{event.SourceArgo, event.SourceAirflow} {
		if *only != "" && *only != kind {
			continue
		}
		o := bench.DefaultDay(kind)
		o.Day, o.Seed, o.Estate.Seed, o.Estate.Runs, o.Estate.Tasks = *dayLen, *seed, *seed, *runs, *tasks
		o.Estate.SensorStart = sensor
		start := time.Now()
		f, err := bench.RunDay(ctx, o, log)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		f.Write(stdout)
		fmt.Fprintf(stdout, "  (%s of wall time)\n", time.Since(start).Round(time.Second))
		failed = failed || !f.OK()
	}
	if failed {
		return fmt.Errorf("fidelity targets missed (see above)")
	}
	return nil
}

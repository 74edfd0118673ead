package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Summary averages a report's measured polls; peaks are maxima.
type Summary struct {
	Polls                    int
	Changed                  float64
	Wall, CPU                time.Duration
	PeakHeap, PeakRSS        uint64
	APICalls, APIBytes       float64
	Reads, Writes            float64
	Messages, PublishedBytes float64
	FloorWall, FloorCPU      time.Duration
	FloorCalls, FloorBytes   float64
	FloorPeakHeap            uint64
	MaxOpsOver, MaxReadsOver int // largest (ops - changed) and (reads - changed) of any poll
	MaxWritesOver            int
	// Argo: the physical floor, and the engine that lists in full (CompareFull).
	PhysWall, PhysCPU         time.Duration
	PhysBytes, PhysLoadBytes  float64
	FullWall, FullCPU         time.Duration
	FullAPIBytes, FullAPICall float64
	FullPeakRSS               uint64
	MaxOpsOverBound           int // largest ops - (2 x changed + 4): the Firestore bound of issue 13, before index parts
}

// WallRatio is the poll's wall time over the floor's.
func (s Summary) WallRatio() float64 { return ratio(s.Wall, s.FloorWall) }

// CPURatio is the poll's CPU time over the floor's.
func (s Summary) CPURatio() float64 { return ratio(s.CPU, s.FloorCPU) }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Summarize averages r's polls.
func (r *Report) Summarize() Summary {
	s := Summary{Polls: len(r.Polls)}
	if s.Polls == 0 {
		return s
	}
	n := float64(s.Polls)
	var wall, cpu, fwall, fcpu, pwall, pcpu, owall, ocpu time.Duration
	s.MaxOpsOverBound = -1 << 31
	for _, p := range r.Polls {
		pwall += p.Physical.Wall
		pcpu += p.Physical.CPU
		owall += p.Full.Wall
		ocpu += p.Full.CPU
		s.PhysBytes += float64(p.PhysicalBytes) / n
		s.PhysLoadBytes += float64(p.PhysicalLoaded) / n
		s.FullAPIBytes += float64(p.FullResult.APIBytes) / n
		s.FullAPICall += float64(p.FullResult.APICalls) / n
		s.FullPeakRSS = max(s.FullPeakRSS, p.Full.PeakRSS)
		s.MaxOpsOverBound = max(s.MaxOpsOverBound, p.Result.StoreReads+p.Result.StoreWrites-(2*p.Result.RunsChanged+4))
		res := p.Result
		s.Changed += float64(res.RunsChanged) / n
		wall += p.Poll.Wall
		cpu += p.Poll.CPU
		fwall += p.Floor.Wall
		fcpu += p.Floor.CPU
		s.PeakHeap, s.PeakRSS = max(s.PeakHeap, p.Poll.PeakHeap), max(s.PeakRSS, p.Poll.PeakRSS)
		s.FloorPeakHeap = max(s.FloorPeakHeap, p.Floor.PeakHeap)
		s.APICalls += float64(res.APICalls) / n
		s.APIBytes += float64(res.APIBytes) / n
		s.Reads += float64(res.StoreReads) / n
		s.Writes += float64(res.StoreWrites) / n
		s.Messages += float64(res.Messages) / n
		s.PublishedBytes += float64(res.BytesPublished) / n
		s.FloorCalls += float64(p.FloorCalls) / n
		s.FloorBytes += float64(p.FloorBytes) / n
		s.MaxOpsOver = max(s.MaxOpsOver, res.StoreReads+res.StoreWrites-res.RunsChanged)
		s.MaxReadsOver = max(s.MaxReadsOver, res.StoreReads-res.RunsChanged)
		s.MaxWritesOver = max(s.MaxWritesOver, res.StoreWrites-res.RunsChanged)
	}
	d := time.Duration(s.Polls)
	s.Wall, s.CPU, s.FloorWall, s.FloorCPU = wall/d, cpu/d, fwall/d, fcpu/d
	s.PhysWall, s.PhysCPU, s.FullWall, s.FullCPU = pwall/d, pcpu/d, owall/d, ocpu/d
	return s
}

// WriteListings prints, for Argo, the poll beside the physical floor and, with CompareFull, beside
// the same poll by an engine that lists in full.
func (r *Report) WriteListings(w io.Writer) {
	if !r.Config.isArgo() {
		return
	}
	c := r.ColdUsage
	fmt.Fprintf(w, "cold poll: wall %s, CPU %s, peak heap %s, peak RSS %s\n", ms(c.Wall), ms(c.CPU), MiB(c.PeakHeap), MiB(c.PeakRSS))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "poll\tAPI MB\tphysical MB\tof which changed runs MB\tphysical wall\twall/physical\tfull-listing wall\tfull-listing API MB\tfull-listing RSS\twall/full-listing\t")
	for i, p := range r.Polls {
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\t%.2f\t\n", i+1, float64(p.Result.APIBytes)/1e6,
			float64(p.PhysicalBytes)/1e6, float64(p.PhysicalLoaded)/1e6, ms(p.Physical.Wall), ratio(p.Poll.Wall, p.Physical.Wall),
			ms(p.Full.Wall), float64(p.FullResult.APIBytes)/1e6, MiB(p.Full.PeakRSS), ratio(p.Poll.Wall, p.Full.Wall))
	}
	s := r.Summarize()
	fmt.Fprintf(tw, "mean\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\t%.2f\t\n", s.APIBytes/1e6, s.PhysBytes/1e6, s.PhysLoadBytes/1e6,
		ms(s.PhysWall), ratio(s.Wall, s.PhysWall), ms(s.FullWall), s.FullAPIBytes/1e6, MiB(s.FullPeakRSS), ratio(s.Wall, s.FullWall))
	_ = tw.Flush()
}

// WritePolls prints one line per measured poll of r, then the mean.
func (r *Report) WritePolls(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\n== %s: %s, %d active runs of %d tasks", c.Name, c.Estate.Kind, r.Sim.ActiveRuns, c.Estate.Tasks)
	if !c.isArgo() {
		fmt.Fprintf(w, " over %d DAGs", c.Estate.DAGs)
	}
	fmt.Fprintf(w, " (%d nodes/task instances), %.0f%% churn per %s poll; store %s\n",
		r.Sim.ActiveNodes, c.Estate.Churn*100, c.Estate.Interval, r.Store)
	fmt.Fprintf(w, "cold poll: %d runs (%d handled, %d deferred), %d API calls, %.1f MB, %d store reads, %d writes, %d messages\n",
		r.Cold.RunsSeen, r.Cold.RunsChanged, r.Cold.RunsDeferred, r.Cold.APICalls, float64(r.Cold.APIBytes)/1e6, r.Cold.StoreReads, r.Cold.StoreWrites, r.Cold.Messages)
	if b := r.BaselineSummary(); b.Polls > 1 {
		fmt.Fprintf(w, "baseline: %d polls until no run was deferred, longest %s wall (%s CPU), peak RSS %s, %s wall in all\n",
			b.Polls, ms(b.MaxWall), ms(b.MaxCPU), MiB(b.PeakRSS), ms(b.Wall))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "poll\tchanged\twall\tcpu\tpeak heap\tpeak RSS\tAPI calls\tAPI MB\tFS reads\tFS writes\tmsgs\tpub kB\tfloor wall\tfloor cpu\twall/floor\tcpu/floor\t")
	for i, p := range r.Polls {
		res := p.Result
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%d\t%.2f\t%d\t%d\t%d\t%.1f\t%s\t%s\t%.2f\t%.2f\t\n", i+1, res.RunsChanged,
			ms(p.Poll.Wall), ms(p.Poll.CPU), MiB(p.Poll.PeakHeap), MiB(p.Poll.PeakRSS), res.APICalls, float64(res.APIBytes)/1e6,
			res.StoreReads, res.StoreWrites, res.Messages, float64(res.BytesPublished)/1e3, ms(p.Floor.Wall), ms(p.Floor.CPU),
			ratio(p.Poll.Wall, p.Floor.Wall), ratio(p.Poll.CPU, p.Floor.CPU))
	}
	s := r.Summarize()
	fmt.Fprintf(tw, "mean\t%.1f\t%s\t%s\t%s\t%s\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%.2f\t%.2f\t\n", s.Changed,
		ms(s.Wall), ms(s.CPU), MiB(s.PeakHeap), MiB(s.PeakRSS), s.APICalls, s.APIBytes/1e6, s.Reads, s.Writes,
		s.Messages, s.PublishedBytes/1e3, ms(s.FloorWall), ms(s.FloorCPU), s.WallRatio(), s.CPURatio())
	_ = tw.Flush()
	r.WriteListings(w)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }

// Check is one target and whether it was met.
type Check struct {
	Target string
	Pass   bool
	Detail string
	// Known, when set, says why a miss is an accepted trade-off (written down in BENCHMARKS.md):
	// it is reported, and does not fail the run.
	Known string
}

// check is a Check whose miss is not a known trade-off.
func check(target string, pass bool, detail string) Check {
	return Check{Target: target, Pass: pass, Detail: detail}
}

func (c Check) String() string {
	switch {
	case c.Pass:
		return fmt.Sprintf("PASS  %s: %s", c.Target, c.Detail)
	case c.Known != "":
		return fmt.Sprintf("MISS (known trade-off)  %s: %s\n      known: %s", c.Target, c.Detail, c.Known)
	}
	return fmt.Sprintf("MISS  %s: %s", c.Target, c.Detail)
}

// Failed reports a miss that is not a known trade-off.
func (c Check) Failed() bool { return !c.Pass && c.Known == "" }

// Why the known misses are accepted (BENCHMARKS.md, Targets).
const (
	knownStoreSum = "every poll costs (changed + 2) reads + (changed + 2) writes: the lease and the commit transaction are a read and a write each; reads and writes separately meet the target (BENCHMARKS.md, Targets)"
	knownParts    = "a commit also rewrites the index parts holding the changed runs' entries (at most one per changed run, usually a few: issue 13's bound, checked below, replaces this one); unchanged runs still cost no operation"
	knownSmall    = "the 2x target is set for the 10,000-run poll; at fewer runs the floor is tens of milliseconds and the poll's fixed cost (a few store round trips) weighs more (BENCHMARKS.md, Targets)"
	floorRuns     = 10_000
)

// Targets held to (issue 8).
const (
	maxFloorRatio = 2.0
	maxRSS        = 512 << 20
	storeSlack    = 3 // operations per poll beyond one per changed run
)

// StoreChecks checks every report's Firestore operations per poll against changed runs + 3, for
// the sum and, separately, for reads and for writes.
func StoreChecks(reps []*Report) []Check {
	var out []Check
	for _, r := range reps {
		s := r.Summarize()
		out = append(out,
			Check{r.Config.Name + ": Firestore ops (reads+writes) <= changed runs + 3", s.MaxOpsOver <= storeSlack,
				fmt.Sprintf("mean %.1f reads + %.1f writes = %.1f for %.1f changed runs; worst poll: changed + %d", s.Reads, s.Writes, s.Reads+s.Writes, s.Changed, s.MaxOpsOver), knownStoreSum},
			Check{r.Config.Name + ": zero Firestore ops for unchanged runs (reads <= changed + 3 and writes <= changed + 3)",
				s.MaxReadsOver <= storeSlack && s.MaxWritesOver <= storeSlack,
				fmt.Sprintf("worst poll: reads = changed + %d, writes = changed + %d, whatever the %d unchanged runs", s.MaxReadsOver, s.MaxWritesOver, r.Sim.ActiveRuns), knownParts})
	}
	return out
}

// DAGCheck compares the Airflow API calls per poll of the same runs over few and many DAGs.
func DAGCheck(few, many *Report) Check {
	a, b := few.Summarize(), many.Summarize()
	// Calls depend on runs changed (batches, tries), not on DAGs: allow for the estates' different churn.
	pass := b.APICalls <= a.APICalls*1.1+1
	return Check{"Airflow API calls per poll independent of the number of DAGs", pass,
		fmt.Sprintf("%.1f calls over %d DAGs, %.1f over %d DAGs (%.1f vs %.1f runs changed)",
			a.APICalls, few.Config.Estate.DAGs, b.APICalls, many.Config.Estate.DAGs, a.Changed, b.Changed), ""}
}

// RunsCheck compares the Airflow API calls per poll of an estate with those of one ten times
// smaller (runs and DAGs) that changes about as many runs a poll: calls must follow the changes,
// not the runs or DAGs watched. A listing of every active run alone would cost the large estate
// one call per 100 of them.
func RunsCheck(small, big *Report) Check {
	a, b := small.Summarize(), big.Summarize()
	scale := max(b.Changed, 1) / max(a.Changed, 1) // the changes the two estates happened to make
	pass := b.APICalls <= a.APICalls*max(scale, 1)*1.25+2
	return Check{"Airflow API calls per poll independent of the active runs and DAGs", pass,
		fmt.Sprintf("%.1f calls among %d active runs over %d DAGs, %.1f among %d over %d (%.1f vs %.1f runs changed a poll)",
			b.APICalls, big.Sim.ActiveRuns, big.Config.Estate.DAGs, a.APICalls, small.Sim.ActiveRuns, small.Config.Estate.DAGs, b.Changed, a.Changed), ""}
}

// FloorCheck checks a poll against its download-and-decode floor and the memory bound.
func FloorCheck(r *Report) []Check {
	s := r.Summarize()
	known := ""
	if r.Config.Estate.Runs < floorRuns {
		known = knownSmall
	}
	return []Check{
		{r.Config.Name + ": poll within 2x its download-and-decode floor (wall)", s.WallRatio() <= maxFloorRatio,
			fmt.Sprintf("%s vs %s: %.2fx (CPU %s vs %s: %.2fx)", ms(s.Wall), ms(s.FloorWall), s.WallRatio(), ms(s.CPU), ms(s.FloorCPU), s.CPURatio()), known},
		{r.Config.Name + ": peak RSS < 512 MiB", s.PeakRSS < maxRSS, "peak RSS " + MiB(s.PeakRSS) + ", peak heap " + MiB(s.PeakHeap), ""},
	}
}

// pollTimeout is the poll function's deployed timeout (terraform's poll_timeout_seconds).
const pollTimeout = 540 * time.Second

// BaselineFigures sum up the cold poll and the polls that caught up with the runs it deferred.
type BaselineFigures struct {
	Polls           int
	Wall            time.Duration // all of them
	MaxWall, MaxCPU time.Duration // the longest one
	PeakRSS         uint64
}

// BaselineSummary is the cold poll and its baseline polls.
func (r *Report) BaselineSummary() BaselineFigures {
	all := []Usage{r.ColdUsage}
	for _, b := range r.Baseline {
		all = append(all, b.Poll)
	}
	var f BaselineFigures
	for _, u := range all {
		f.Polls++
		f.Wall += u.Wall
		f.MaxWall, f.MaxCPU, f.PeakRSS = max(f.MaxWall, u.Wall), max(f.MaxCPU, u.CPU), max(f.PeakRSS, u.PeakRSS)
	}
	return f
}

// ScaleChecks are the targets of issue 13 for an Argo report, by its configuration.
func ScaleChecks(r *Report) []Check {
	if !r.Config.isArgo() {
		return nil
	}
	s := r.Summarize()
	e := r.Config.Estate
	name := r.Config.Name
	var out []Check
	out = append(out, check(name+": Firestore ops per poll <= 2 x changed runs + 4 + index parts written (parts <= changed)",
		s.MaxOpsOverBound <= int(s.Changed+0.5),
		fmt.Sprintf("worst poll: ops - (2 x changed + 4) = %d (the index parts written and, on an instance's first poll, read)", s.MaxOpsOverBound)))
	if e.Runs <= 10_000 && e.Churn <= 0.01 {
		limit := 2*s.PhysLoadBytes + 300*float64(r.Sim.ActiveRuns)
		out = append(out, check(name+": API bytes <= 2 x the changed runs' own bytes + 300 B per active run", s.APIBytes <= limit,
			fmt.Sprintf("%.2f MB vs %.2f MB (changed runs' own %.2f MB, %d active runs)", s.APIBytes/1e6, limit/1e6, s.PhysLoadBytes/1e6, r.Sim.ActiveRuns)))
		if r.Config.CompareFull {
			out = append(out, check(name+": wall <= 1/3 of the full-listing poll's", s.FullWall > 0 && ratio(s.Wall, s.FullWall) <= 1.0/3,
				fmt.Sprintf("%s vs %s: %.2f", ms(s.Wall), ms(s.FullWall), ratio(s.Wall, s.FullWall))))
		}
	}
	if e.Runs <= 10_000 && e.Churn >= 0.1 {
		out = append(out, check(name+": peak RSS < 256 MiB", s.PeakRSS < 256<<20, "peak RSS "+MiB(s.PeakRSS)))
	}
	if e.Runs >= 100_000 {
		b := r.BaselineSummary()
		out = append(out,
			check(name+": the poll commits; peak RSS < 512 MiB", s.PeakRSS < maxRSS, "peak RSS "+MiB(s.PeakRSS)+" over "+fmt.Sprint(len(r.Polls))+" committed polls"),
			check(name+": wall within 3x the physical floor", ratio(s.Wall, s.PhysWall) <= 3,
				fmt.Sprintf("%s vs %s: %.2fx", ms(s.Wall), ms(s.PhysWall), ratio(s.Wall, s.PhysWall))),
			check(name+": cold poll in bounded memory (< 1 GiB)", b.PeakRSS < 1<<30,
				fmt.Sprintf("cold poll of %d runs over %d polls: longest %s wall, peak RSS %s", r.Cold.RunsSeen, b.Polls, ms(b.MaxWall), MiB(b.PeakRSS))),
			check(name+": each poll of a cold start within the poll timeout (540 s)", b.MaxWall < pollTimeout,
				fmt.Sprintf("longest of %d polls: %s wall, %s CPU (this machine, not the function's third of a vCPU)", b.Polls, ms(b.MaxWall), ms(b.MaxCPU))))
	}
	return out
}

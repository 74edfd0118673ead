package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/farmobs/farm/pkg/airflow"
	"github.com/farmobs/farm/pkg/event"
)

// truth is one transition the simulator exposed, in the terms FARM's events use.
type truth struct {
	run, node, state string // node "" for the run's own phase
	try              int    // Airflow's try number
	prev             string // the state before; "" when the node (re)appeared
	vanished         bool   // the node disappeared before its next transition: until is an upper bound
	start, end       time.Time
	from, until      time.Time // visible from; until the next transition of the same node (zero: still)
	observable       bool
}

func (t truth) key() string { return t.run + "|" + t.node + "|" + t.state }

// Miss is a transition exposed but not recorded.
type Miss struct {
	Run, Node, State string
	VisibleFrom      time.Time
	VisibleUntil     time.Time // zero: still visible
	Cause            string
}

func (m Miss) String() string {
	until := "still visible"
	if !m.VisibleUntil.IsZero() {
		until = "until " + m.VisibleUntil.Format(time.TimeOnly)
	}
	return fmt.Sprintf("%s %s -> %s, visible from %s %s: %s", m.Run, m.Node, m.State, m.VisibleFrom.Format(time.TimeOnly), until, m.Cause)
}

// Fidelity compares what FARM published for one source with the simulator's ground truth.
type Fidelity struct {
	Kind  string
	Day   time.Duration // the simulated time
	Stats DayStats
	// Task (node, task-instance) transitions.
	Exposed, Observable, Superseded int
	Recorded, RecordedSuperseded    int // RecordedSuperseded: recorded though no poll saw it (e.g. Airflow's tries history)
	Missed                          []Miss
	DupSameID, DupDiffID            int
	Invented                        []string
	MaxStartErr, MaxEndErr          time.Duration
	WorstStart, WorstEnd            string // the transitions with the largest errors
	// The runs' own phase changes.
	RunExposed, RunRecorded, RunObservableMissed int
	// Sensors in reschedule mode (Airflow): the tries that went up_for_reschedule and ended.
	Sensors SensorTries

	published map[string][]time.Time // run → when polls published a delta of it
}

// MissedObservable counts misses a poll could have seen.
func (f *Fidelity) MissedObservable() int {
	n := 0
	for _, m := range f.Missed {
		if m.Cause != causeSuperseded && m.Cause != causeRemoved {
			n++
		}
	}
	return n
}

const (
	causeSuperseded = "superseded before any poll could see it"
	causeObservable = "visible to a poll but not published"
	causeNotListed  = "polls ran while it was visible, but none published a delta of its run"
	causeRemoved    = "the node vanished and came back later (argo retry removes exit-handler nodes): the truth records no removal, so no poll is known to have seen it"
	causeSameID     = "the same state again in the same attempt without new times: published with the earlier visit's event id, so it reads as a duplicate"
)

func compare(sim *Sim, got []*event.RunDelta, st DayStats) *Fidelity {
	if sim.Argo != nil {
		return compareTruth(event.SourceArgo, argoTruth(sim), got, st)
	}
	ts := airflowTruth(sim)
	f := compareTruth(event.SourceAirflow, ts, got, st)
	f.Sensors = sensorTries(ts, got, st.CommittedAt)
	return f
}

// SensorTries checks the start of the span of every rescheduled try (a sensor in reschedule mode
// runs one try as several pokes): the span of a try starts at its first poke's start when a poll
// that committed saw a state that dates the try (running, up_for_reschedule or final) showing
// that start: the engine keeps it in the run state. When none did, the span may start later,
// never earlier. A scheduled or queued row still shows the previous poke's start_date, but FARM
// dates no try by it: by itself such a row does not tell a rescheduled try from a new one.
type SensorTries struct {
	Finished int // rescheduled tries that ended
	// Knowable: a committed poll saw a state dating the try with its first start.
	Knowable, FromFirstStart int
	// SeenOnlyByCrashed: only polls that crashed before committing saw such a state.
	SeenOnlyByCrashed int
	// Undated: no poll saw such a state (each first-poke state was superseded, or seen queued only).
	Undated     int
	Unpublished int // no final event of the try was published (counted as a miss above)
	Wrong       []string
}

func sensorTries(ts []truth, got []*event.RunDelta, committedAt []time.Time) SensorTries {
	type try struct {
		rescheduled, ended bool
		first              time.Time
		shows              []*truth // transitions showing the first start
		end                time.Time
	}
	var out SensorTries
	committedAt = slices.SortedFunc(slices.Values(committedAt), func(a, b time.Time) int { return a.Compare(b) })
	tries := map[string]*try{}
	var order []string
	for i := range ts {
		t := &ts[i]
		if t.node == "" {
			continue
		}
		k := fmt.Sprintf("%s|%s#%d", t.run, t.node, t.try)
		tr := tries[k]
		if tr == nil {
			tr = &try{}
			tries[k] = tr
			order = append(order, k)
		}
		st := airflow.StatusOf(t.state)
		switch {
		case st == event.StatusUpForResched:
			tr.rescheduled = true
		case t.state == "running" && tr.first.IsZero():
			tr.first = t.start
		}
		tr.ended = st.Terminal() && st != event.StatusUpForResched
		tr.end = t.end
		dates := st != event.StatusNone && st != event.StatusScheduled && st != event.StatusQueued // as pkg/airflow's mapping
		if dates && !tr.first.IsZero() && t.start.Equal(tr.first) {
			tr.shows = append(tr.shows, t)
		}
	}
	spanStart := map[string]time.Time{} // the earliest start a try's final event gives its span
	for _, d := range got {
		for i := range d.Events {
			e := &d.Events[i]
			if !e.Status.Terminal() || e.Status == event.StatusUpForResched || e.StartedAt == nil {
				continue
			}
			s := *e.StartedAt
			if a := e.AttemptStartedAt; a != nil && a.Before(s) {
				s = *a
			}
			k := fmt.Sprintf("%s|%s#%d", d.Run.UID, e.NodeID, e.Attempt)
			if old, ok := spanStart[k]; !ok || s.Before(old) {
				spanStart[k] = s
			}
		}
	}
	for _, k := range order {
		tr := tries[k]
		if !tr.rescheduled || !tr.ended || tr.first.IsZero() {
			continue
		}
		out.Finished++
		s, ok := spanStart[k]
		if !ok {
			out.Unpublished++
			continue
		}
		knowable, seen := false, false
		for _, t := range tr.shows {
			knowable = knowable || seenDuring(committedAt, t)
			seen = seen || t.observable
		}
		switch {
		case knowable:
			out.Knowable++
			if s.Equal(tr.first) {
				out.FromFirstStart++
			} else {
				out.Wrong = append(out.Wrong, fmt.Sprintf("%s: span from %s, first poke %s", k, s.Format(time.TimeOnly), tr.first.Format(time.TimeOnly)))
			}
		case s.Before(tr.first):
			out.Wrong = append(out.Wrong, fmt.Sprintf("%s: span from %s, before its first poke %s", k, s.Format(time.TimeOnly), tr.first.Format(time.TimeOnly)))
		case seen:
			out.SeenOnlyByCrashed++
		default:
			out.Undated++
		}
	}
	return out
}

// seenDuring reports whether a poll at one of polls (sorted) ran while t was visible.
func seenDuring(polls []time.Time, t *truth) bool {
	j, _ := slices.BinarySearchFunc(polls, t.from, func(a, b time.Time) int { return a.Compare(b) })
	return j < len(polls) && (t.until.IsZero() || polls[j].Before(t.until))
}

// compareTruth compares what was published (got) with the truth ts, given when polls ran.
func compareTruth(kind string, ts []truth, got []*event.RunDelta, st DayStats) *Fidelity {
	visibility(ts, st.SeenAt)
	f := &Fidelity{Kind: kind, Stats: st, published: map[string][]time.Time{}}
	byKey := map[string][]*truth{}
	runs := map[string]bool{}
	for i := range ts {
		t := &ts[i]
		if t.node == "" {
			f.RunExposed++
			continue
		}
		f.Exposed++
		if t.observable {
			f.Observable++
		} else {
			f.Superseded++
		}
		byKey[t.key()] = append(byKey[t.key()], t)
	}
	events := map[string][]published{}
	for _, d := range got {
		runs[d.Run.UID+"|"+d.Run.Phase] = true
		f.published[d.Run.UID] = append(f.published[d.Run.UID], d.ObservedAt)
		for i := range d.Events {
			e := &d.Events[i]
			if e.Type == airflow.TypeTaskGroup || e.Type == airflow.TypeMappedTask {
				continue // FARM's own grouping nodes: Airflow has no such rows
			}
			k := d.Run.UID + "|" + e.NodeID + "|" + e.State
			events[k] = append(events[k], published{e, d.ObservedAt})
		}
	}
	for k, es := range events {
		f.match(k, es, byKey[k])
		delete(byKey, k)
	}
	for _, left := range byKey {
		f.miss(left, false)
	}
	for i := range ts {
		t := &ts[i]
		if t.node != "" {
			continue
		}
		switch {
		case runs[t.run+"|"+t.state]:
			f.RunRecorded++
		case t.observable:
			f.RunObservableMissed++
		}
	}
	slices.SortFunc(f.Missed, func(a, b Miss) int { return a.VisibleFrom.Compare(b.VisibleFrom) })
	sort.Strings(f.Invented)
	return f
}

// match pairs the distinct events of one key with its truth, by start time when it tells them
// apart, else in order.
func (f *Fidelity) match(k string, es []published, ts []*truth) {
	seen := map[string]bool{}
	var distinct []published
	dups := false
	for _, e := range es {
		if seen[e.ID] {
			f.DupSameID++
			dups = true
			continue
		}
		seen[e.ID] = true

		distinct = append(distinct, e)
	}
	used := make([]bool, len(ts))
	for _, p := range distinct {
		e := p.TaskEvent
		i := pick(p, ts, used)
		if i < 0 {
			if len(ts) == 0 {
				f.Invented = append(f.Invented, k)
			} else {
				f.DupDiffID++
			}
			continue
		}
		used[i] = true
		f.Recorded++
		if !ts[i].observable {
			f.RecordedSuperseded++
		}
		if d := timeErr(e.StartedAt, ts[i].start); d > f.MaxStartErr {
			f.MaxStartErr, f.WorstStart = d, worst(k, e.Attempt, e.StartedAt, ts[i].start)
		}
		if d := timeErr(e.FinishedAt, ts[i].end); d > f.MaxEndErr {
			f.MaxEndErr, f.WorstEnd = d, worst(k, e.Attempt, e.FinishedAt, ts[i].end)
		}
	}
	var left []*truth
	for i, t := range ts {
		if !used[i] {
			left = append(left, t)
		}
	}
	f.miss(left, dups)
}

func worst(k string, attempt int, got *time.Time, want time.Time) string {
	return fmt.Sprintf("%s attempt %d: published %s, truth %s", k, attempt, got.UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
}

// published is an event and when the poll that published it ran.
type published struct {
	*event.TaskEvent
	at time.Time
}

// pick chooses the truth an event stands for: the one visible when its poll ran, else the one
// with its start time, else the first left.
func pick(p published, ts []*truth, used []bool) int {
	first, sameStart := -1, -1
	for i, t := range ts {
		if used[i] {
			continue
		}
		if !p.at.Before(t.from) && (t.until.IsZero() || p.at.Before(t.until)) {
			return i
		}
		if sameStart < 0 && p.StartedAt != nil && p.StartedAt.Equal(t.start) {
			sameStart = i
		}
		if first < 0 {
			first = i
		}
	}
	return cmp.Or(max(sameStart, -1)+1, first+1) - 1
}

// miss records ts as missed, with their cause; dups says the key was published more than once
// with the same id.
func (f *Fidelity) miss(ts []*truth, dups bool) {
	for _, t := range ts {
		cause := causeSuperseded
		switch {
		case !t.observable:
		case t.vanished:
			cause = causeRemoved
		case !f.publishedWhile(t):
			cause = causeNotListed
		case dups:
			cause = causeSameID
		default:
			cause = causeObservable
		}
		if cause == causeObservable {
			cause += fmt.Sprintf(" (the run was published by the polls at %s)", f.publishedTimes(t.run))
		}
		f.Missed = append(f.Missed, Miss{Run: t.run, Node: t.node, State: t.state, VisibleFrom: t.from, VisibleUntil: t.until, Cause: cause})
	}
}

// publishedWhile reports whether a delta of t's run came from a poll while t was visible.
func (f *Fidelity) publishedWhile(t *truth) bool {
	for _, at := range f.published[t.run] {
		if !at.Before(t.from) && (t.until.IsZero() || at.Before(t.until)) {
			return true
		}
	}
	return false
}

func (f *Fidelity) publishedTimes(run string) string {
	var b strings.Builder
	for i, at := range f.published[run] {
		if i == 8 {
			b.WriteString(" …")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(at.Format(time.TimeOnly))
	}
	return b.String()
}

// timeErr is how far a published time is from the truth; a time FARM leaves out (a state that
// gives it no meaning) is no error.
func timeErr(got *time.Time, want time.Time) time.Duration {
	if got == nil || got.IsZero() {
		return 0
	}
	if want.IsZero() {
		return time.Duration(1<<63 - 1) // invented a time
	}
	d := got.Sub(want)
	return max(d, -d)
}

// visibility sets each transition's visible-until (the next transition of the same node, or run)
// and whether a poll ran while it was visible.
func visibility(ts []truth, seenAt []time.Time) {
	slices.SortFunc(seenAt, func(a, b time.Time) int { return a.Compare(b) })
	last := map[string]int{}
	for i := range ts {
		node := ts[i].run + "|" + ts[i].node
		if j, ok := last[node]; ok {
			ts[j].until = ts[i].from
			ts[j].vanished = ts[i].prev == ""
		}
		last[node] = i
	}
	for i := range ts {
		t := &ts[i]
		j, _ := slices.BinarySearchFunc(seenAt, t.from, func(a, b time.Time) int { return a.Compare(b) })
		t.observable = j < len(seenAt) && (t.until.IsZero() || seenAt[j].Before(t.until))
	}
}

func argoTruth(sim *Sim) []truth {
	var out []truth
	for _, t := range sim.Argo.Transitions() {
		out = append(out, truth{run: t.UID, node: t.NodeID, state: t.Phase, prev: t.PrevPhase, start: t.StartedAt, end: t.FinishedAt, from: t.VisibleAt})
	}
	return stable(out)
}

func airflowTruth(sim *Sim) []truth {
	var out []truth
	for _, t := range sim.Airflow.Truth() {
		// The API serves microseconds: that is all the truth any client can be held to.
		tr := truth{run: t.DagID + "/" + t.RunID, state: t.To, start: t.Start.Truncate(time.Microsecond), end: t.End.Truncate(time.Microsecond), from: t.At, prev: t.From, try: t.Try}
		if t.TaskID != "" {
			tr.node = airflow.NodeID(t.TaskID, t.MapIndex)
			tr.state = cmp.Or(t.To, airflow.StateNull)
		}
		out = append(out, tr)
	}
	return stable(out)
}

// stable orders transitions by the time they became visible, keeping the simulator's order within
// an instant.
func stable(ts []truth) []truth {
	slices.SortStableFunc(ts, func(a, b truth) int { return a.from.Compare(b.from) })
	return ts
}

// Write prints the comparison.
func (f *Fidelity) Write(w io.Writer) {
	st := f.Stats
	fmt.Fprintf(w, "\n== %s: %s\n", f.Kind, simulatedTime(f.Day))
	fmt.Fprintf(w, "triggers %d (%d with two racing polls, %d with transient API faults, %d after a gap longer than the overlap)\n",
		st.Triggers, st.Races, st.Faulted, st.LongGaps)
	fmt.Fprintf(w, "polls that listed and published %d; refused as busy %d; crashed between publish and commit %d; failed on API faults %d\n",
		st.Polls, st.Busy, st.Crashes, st.FailedOnFaults)
	pct := func(a, b int) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f%%", 100*float64(a)/float64(b))
	}
	rows := [][2]string{
		{"task transitions exposed", fmt.Sprint(f.Exposed)},
		{"  observable by a poll", fmt.Sprint(f.Observable)},
		{"  superseded before any poll could see it", fmt.Sprint(f.Superseded)},
		{"recorded", fmt.Sprintf("%d (observable: %d = %s; superseded yet recovered: %d)", f.Recorded, f.Recorded-f.RecordedSuperseded,
			pct(f.Recorded-f.RecordedSuperseded, f.Observable), f.RecordedSuperseded)},
		{"missed", fmt.Sprintf("%d (observable: %d; superseded: %d)", len(f.Missed), f.MissedObservable(), len(f.Missed)-f.MissedObservable())},
		{"duplicated, same id", fmt.Sprint(f.DupSameID)},
		{"duplicated, different id", fmt.Sprint(f.DupDiffID)},
		{"invented", fmt.Sprint(len(f.Invented))},
		{"largest time error", fmt.Sprintf("start %s, end %s", f.MaxStartErr, f.MaxEndErr)},
		{"  worst start", f.WorstStart},
		{"  worst end", f.WorstEnd},
		{"run phase changes exposed / recorded", fmt.Sprintf("%d / %d (observable but missed: %d; superseded before any poll could see it: %d)",
			f.RunExposed, f.RunRecorded, f.RunObservableMissed, f.RunExposed-f.RunRecorded-f.RunObservableMissed)},
	}
	for _, r := range rows {
		if r[1] != "" { // no worst transition when there is no error
			fmt.Fprintf(w, "  %-44s %s\n", r[0], r[1])
		}
	}
	if f.RunExposed > f.RunRecorded+f.RunObservableMissed {
		// The gap is no loss: e.g. a simulated Airflow run is queued and starts running at the same
		// instant, and a run the scheduler replaces at once is queued for no time at all.
		fmt.Fprintf(w, "  (run phases superseded before any poll could see them — a run queued and started at once — cannot be recorded by polling)\n")
	}
	causes := map[string]int{}
	for _, m := range f.Missed {
		causes[m.Cause]++
	}
	if s := f.Sensors; s.Finished > 0 {
		fmt.Fprintf(w, "  %-44s %d: span from the first poke %d of the %d a committed poll could date; first poke dated by crashed polls only %d, by none %d; final event unpublished %d; wrong %d\n",
			"rescheduled sensor tries ended", s.Finished, s.FromFirstStart, s.Knowable, s.SeenOnlyByCrashed, s.Undated, s.Unpublished, len(s.Wrong))
	}
	for _, c := range []string{causeNotListed, causeSameID, causeRemoved, causeSuperseded} {
		if causes[c] > 0 {
			fmt.Fprintf(w, "  missed because %s: %d\n", c, causes[c])
		}
	}
	// Unexplained misses first: they are the ones to look into.
	f.writeList(w, "misses of observable transitions", func(yield func(string) bool) {
		for _, sameID := range []bool{false, true} {
			for _, m := range f.Missed {
				if m.Cause != causeSuperseded && m.Cause != causeRemoved && (m.Cause == causeSameID) == sameID && !yield(m.String()) {
					return
				}
			}
		}
	})
	f.writeList(w, "superseded transitions (not observable), e.g.", func(yield func(string) bool) {
		for _, m := range f.Missed {
			if (m.Cause == causeSuperseded || m.Cause == causeRemoved) && !yield(m.String()) {
				return
			}
		}
	})
	f.writeList(w, "invented", slices.Values(f.Invented))
	f.writeList(w, "rescheduled tries whose span starts wrong", slices.Values(f.Sensors.Wrong))
}

// simulatedTime names the simulated time of a run of `farm fidelity`.
func simulatedTime(d time.Duration) string {
	if d == 24*time.Hour {
		return "a simulated day (24h)"
	}
	s := d.String() // 2h0m0s, 40m0s
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s + " of simulated time"
}

const listMax = 10

func (f *Fidelity) writeList(w io.Writer, title string, items func(func(string) bool)) {
	n := 0
	for it := range items {
		if n == 0 {
			fmt.Fprintf(w, "  %s:\n", title)
		}
		if n == listMax {
			fmt.Fprintf(w, "    ...\n")
			return
		}
		fmt.Fprintf(w, "    %s\n", it)
		n++
	}
}

// OK reports the targets: every observable transition recorded, nothing invented, no duplicate
// with a different id, no time error, and every rescheduled try's span from its first poke when a
// committed poll could date it.
func (f *Fidelity) OK() bool {
	return f.MissedObservable() == 0 && len(f.Invented) == 0 && f.DupDiffID == 0 &&
		f.MaxStartErr == 0 && f.MaxEndErr == 0 && f.RunObservableMissed == 0 && len(f.Sensors.Wrong) == 0
}

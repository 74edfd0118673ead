package argosim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Estate runs keep their nodes compactly (indexes instead of ids, unix seconds, interned
// strings) and materialise the Nodes map only when a workflow is served: 10,000 runs of 50
// nodes fit in a fraction of the memory the wire structs would take.

const (
	flagNone uint8 = iota
	flagEmpty
	flagRetried
	flagHooked
)

// Shared read-only values of materialised nodes (encoding only reads them).
var (
	nodeFlags = [...]*NodeFlag{flagNone: nil, flagEmpty: {}, flagRetried: {Retried: true}, flagHooked: {Hooked: true}}
	exitZero  = &Outputs{ExitCode: ptr("0")}
	exitOne   = &Outputs{ExitCode: ptr("1")}
	trueValue = ptr(true)
)

type cnode struct {
	id, name, display, template string
	message, host               string
	children, outbound          []int32
	started, finished           int64 // unix seconds, 0 when unset
	boundary                    int32 // index of the boundary node, -1 for none
	typ                         NodeType
	phase                       NodePhase
	flag                        uint8
	exit                        int8 // exit code of a finished pod, -1 otherwise
	cpu, mem                    int32
	gone                        bool // deleted (an exit handler after argo retry)
}

// runSnapshot is one immutable version of a run's nodes.
type runSnapshot struct {
	list  []cnode
	scope string // templateScope: "local/<workflow name>"
}

func unixTime(s int64) Time {
	if s == 0 {
		return Time{}
	}
	return Time{time.Unix(s, 0).UTC()}
}

func (rs *runSnapshot) ids(idx []int32) []string {
	if len(idx) == 0 {
		return nil
	}
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = rs.list[j].id
	}
	return out
}

func (rs *runSnapshot) nodes() Nodes {
	out := make(Nodes, len(rs.list))
	for i := range rs.list {
		c := &rs.list[i]
		if c.gone {
			continue
		}
		n := NodeStatus{
			ID: c.id, Name: c.name, DisplayName: c.display, Type: c.typ, TemplateName: c.template,
			TemplateScope: rs.scope, Phase: c.phase, Message: c.message,
			StartedAt: unixTime(c.started), FinishedAt: unixTime(c.finished),
			NodeFlag: nodeFlags[c.flag], Children: rs.ids(c.children), OutboundNodes: rs.ids(c.outbound),
			HostNodeName: c.host,
		}
		if c.boundary >= 0 {
			n.BoundaryID = rs.list[c.boundary].id
		}
		if c.typ == NodeTypePod {
			n.TaskResultSynced, n.Progress = trueValue, "0/1"
			if c.phase.Fulfilled() {
				n.Progress = "1/1"
				n.ResourcesDuration = map[string]int64{"cpu": int64(c.cpu), "memory": int64(c.mem)}
			}
			switch c.exit {
			case 0:
				n.Outputs = exitZero
			case 1:
				n.Outputs = exitOne
			}
		}
		out[c.id] = n
	}
	return out
}

type execKind uint8

const (
	execPod execKind = iota
	execRetry
	execDAG
	execSteps
	execLeaf // Skipped or Omitted: final when created
)

// exec is the controller's view of one template invocation (upstream keeps this in the
// template tree plus node names; the simulator keeps direct links).
type exec struct {
	kind   execKind
	node   int32
	t      *tmpl
	parent *exec
	done   bool
	// DAG
	tasks  []*exec
	notRun []bool
	// steps
	group   int
	sgNodes []int32
	steps   [][]*exec
	// Retry
	attempts []*exec
}

// runCtl is a small Argo controller for one run.
type runCtl struct {
	cfg     *EstateConfig
	rng     *rand.Rand
	p       *pipeline
	wfName  string
	hosts   []string
	nodes   []cnode
	root    *exec
	exit    *exec
	now     int64
	changed bool
	running []*exec
	shared  bool // nodes is part of a published snapshot: copy before changing
}

func newRunCtl(cfg *EstateConfig, rng *rand.Rand, p *pipeline, wfName string, hosts []string) *runCtl {
	return &runCtl{cfg: cfg, rng: rng, p: p, wfName: wfName, hosts: hosts}
}

// displayName is upstream's: the name without its boundary's name, then without a leading
// "[n]." or ".".
func displayName(name, boundaryName string) string {
	if boundaryName == "" {
		return name
	}
	d := strings.TrimPrefix(name, boundaryName)
	if strings.HasPrefix(d, "[") {
		if end := strings.IndexByte(d, ']'); end > 0 && end+1 < len(d) && d[end+1] == '.' {
			if _, err := strconv.Atoi(d[1:end]); err == nil {
				return d[end+2:]
			}
		}
	}
	return strings.TrimPrefix(d, ".")
}

func (c *runCtl) addNode(name string, typ NodeType, template string, boundary int32, phase NodePhase, flag uint8, message string) int32 {
	bname := ""
	if boundary >= 0 {
		bname = c.nodes[boundary].name
	}
	n := cnode{
		id: NodeID(c.wfName, name), name: name, display: c.p.intern(displayName(name, bname)), template: template,
		boundary: boundary, typ: typ, phase: phase, flag: flag, message: message, started: c.now, exit: -1,
	}
	if phase.Fulfilled() {
		n.finished = c.now
	}
	c.nodes = append(c.nodes, n)
	c.changed = true
	return int32(len(c.nodes) - 1)
}

// addChild appends without touching the array a published snapshot may share.
func (c *runCtl) addChild(parent, child int32) {
	ch := c.nodes[parent].children
	c.nodes[parent].children = append(ch[:len(ch):len(ch)], child)
}

func (c *runCtl) setPhase(i int32, phase NodePhase, message string) {
	n := &c.nodes[i]
	n.phase, n.message = phase, message
	if phase.Fulfilled() {
		n.finished = c.now
	}
	c.changed = true
}

// start creates the node(s) of a template invocation.
func (c *runCtl) start(name string, t *tmpl, boundary int32, parent *exec, flag uint8) *exec {
	e := &exec{t: t, parent: parent}
	switch {
	case t.kind == kindPod && t.retries > 0:
		e.kind = execRetry
		e.node = c.addNode(name, NodeTypeRetry, t.name, boundary, NodeRunning, flag, "")
		c.addAttempt(e)
	case t.kind == kindPod:
		e.kind = execPod
		e.node = c.addNode(name, NodeTypePod, t.name, boundary, NodePending, flag, "")
	case t.kind == kindDAG:
		e.kind = execDAG
		e.node = c.addNode(name, NodeTypeDAG, t.name, boundary, NodeRunning, flag, "")
		e.tasks, e.notRun = make([]*exec, len(t.tasks)), make([]bool, len(t.tasks))
		c.schedule(e)
	default:
		e.kind = execSteps
		e.node = c.addNode(name, NodeTypeSteps, t.name, boundary, NodeRunning, flag, "")
		c.startGroup(e)
	}
	return e
}

func (c *runCtl) leaf(name, template string, boundary int32, phase NodePhase, message string) *exec {
	return &exec{kind: execLeaf, done: true, node: c.addNode(name, NodeTypeSkipped, template, boundary, phase, flagEmpty, message)}
}

// addAttempt creates the next child of a Retry node: "<name>(k)", in the Retry node's boundary.
func (c *runCtl) addAttempt(e *exec) {
	name := c.nodes[e.node].name + "(" + strconv.Itoa(len(e.attempts)) + ")"
	a := &exec{kind: execPod, t: e.t, parent: e}
	a.node = c.addNode(name, NodeTypePod, e.t.name, c.nodes[e.node].boundary, NodePending, flagRetried, "")
	c.addChild(e.node, a.node)
	e.attempts = append(e.attempts, a)
}

// outbound is upstream getOutboundNodes: where the next task or step group is attached.
func (c *runCtl) outbound(e *exec) []int32 {
	switch e.kind {
	case execRetry:
		return []int32{e.attempts[len(e.attempts)-1].node}
	case execDAG, execSteps:
		return c.nodes[e.node].outbound
	}
	return []int32{e.node}
}

func (c *runCtl) visit(e *exec) {
	if e.done {
		return
	}
	switch e.kind {
	case execPod:
		c.visitPod(e)
	case execRetry:
		c.visitRetry(e)
	case execDAG:
		c.visitDAG(e)
	case execSteps:
		c.visitSteps(e)
	}
}

// Chances per round: a pending pod finishes at once (shorter than a step), a running pod finishes.
const (
	fastPodChance   = 0.15
	podFinishChance = 0.5
)

func (c *runCtl) visitPod(e *exec) {
	switch n := &c.nodes[e.node]; n.phase {
	case NodePending:
		if c.rng.Float64() < fastPodChance {
			c.finishPod(e)
			return
		}
		n.phase, n.host = NodeRunning, c.hosts[c.rng.IntN(len(c.hosts))]
		c.changed = true
	case NodeRunning:
		if c.rng.Float64() < podFinishChance {
			c.finishPod(e)
			return
		}
		c.running = append(c.running, e)
	}
}

func (c *runCtl) finishPod(e *exec) {
	failChance := c.cfg.FailureRate
	if e.parent != nil && e.parent.kind == execRetry {
		failChance = c.cfg.RetryFailureRate
	}
	n := &c.nodes[e.node]
	if n.host == "" {
		n.host = c.hosts[c.rng.IntN(len(c.hosts))]
	}
	secs := int32(max(c.now-n.started, 1))
	n.cpu, n.mem = max(secs/2, 1), max(secs/4, 1)
	e.done = true
	switch {
	case c.rng.Float64() >= failChance:
		n.exit = 0
		c.setPhase(e.node, NodeSucceeded, "")
	case c.rng.Float64() < c.cfg.ErrorShare:
		c.setPhase(e.node, NodeError, "pod deleted")
	default:
		n.exit = 1
		c.setPhase(e.node, NodeFailed, "Error (exit code 1)")
	}
}

func (c *runCtl) visitRetry(e *exec) {
	last := e.attempts[len(e.attempts)-1]
	c.visit(last)
	if !last.done {
		return
	}
	switch phase := c.nodes[last.node].phase; {
	case phase == NodeSucceeded:
		c.finish(e, NodeSucceeded, "")
	case len(e.attempts) <= e.t.retries:
		c.addAttempt(e)
	default:
		c.finish(e, phase, "No more retries left")
	}
}

// finish completes a group node; DAG and steps nodes get their outbound nodes.
func (c *runCtl) finish(e *exec, phase NodePhase, message string) {
	e.done = true
	var out []int32
	switch e.kind {
	case execDAG:
		for i, ch := range e.tasks {
			if ch != nil && !e.t.isDependedOn(i) {
				out = append(out, c.outbound(ch)...)
			}
		}
	case execSteps:
		for _, st := range e.steps[len(e.steps)-1] {
			out = append(out, c.outbound(st)...)
		}
	}
	if out != nil {
		c.nodes[e.node].outbound = out
	}
	c.setPhase(e.node, phase, message)
}

// isDependedOn reports whether another task of the DAG depends on task i.
func (t *tmpl) isDependedOn(i int) bool {
	for _, tk := range t.tasks {
		if slices.Contains(tk.deps, i) {
			return true
		}
	}
	return false
}

func (c *runCtl) visitDAG(e *exec) {
	for _, ch := range e.tasks {
		if ch != nil {
			c.visit(ch)
		}
	}
	c.schedule(e)
	for i, ch := range e.tasks {
		if ch == nil && !e.notRun[i] || ch != nil && !ch.done {
			return
		}
	}
	// A failure fails the DAG unless a failure handler (depends: "x.Failed") took it over.
	for i, ch := range e.tasks {
		if ch == nil || !c.nodes[ch.node].phase.FailedOrError() || e.t.handled(i) {
			continue
		}
		c.finish(e, c.nodes[ch.node].phase, fmt.Sprintf("child '%s' failed", c.nodes[ch.node].id))
		return
	}
	c.finish(e, NodeSucceeded, "")
}

func (t *tmpl) handled(i int) bool {
	for _, tk := range t.tasks {
		if tk.onFail == i {
			return true
		}
	}
	return false
}

// schedule creates the DAG tasks whose dependencies are done. A task is attached as a child of
// the DAG node when it has no dependencies, else of each dependency's outbound nodes.
func (c *runCtl) schedule(e *exec) {
	for i, tk := range e.t.tasks {
		if e.tasks[i] != nil || e.notRun[i] {
			continue
		}
		ready, ok := true, true
		for _, d := range tk.deps {
			switch de := e.tasks[d]; {
			case e.notRun[d]:
				ok = false
			case de == nil || !de.done:
				ready = false
			case c.nodes[de.node].phase != NodeSucceeded && c.nodes[de.node].phase != NodeSkipped:
				ok = false
			}
		}
		if !ready {
			continue
		}
		name := c.nodes[e.node].name + "." + tk.name
		var ch *exec
		switch {
		case tk.onFail >= 0 && e.tasks[tk.onFail] != nil && c.nodes[e.tasks[tk.onFail].node].phase.FailedOrError():
			ch = c.start(name, tk.t, e.node, e, flagNone)
		case tk.onFail >= 0:
			ch = c.leaf(name, tk.t.name, e.node, NodeOmitted, "omitted: depends condition not met")
		case !ok:
			e.notRun[i] = true // a dependency failed: never created, as upstream
			continue
		default:
			ch = c.start(name, tk.t, e.node, e, flagNone)
		}
		e.tasks[i] = ch
		if len(tk.deps) == 0 {
			c.addChild(e.node, ch.node)
		}
		for _, d := range tk.deps {
			if e.tasks[d] != nil {
				for _, o := range c.outbound(e.tasks[d]) {
					c.addChild(o, ch.node)
				}
			}
		}
	}
}

// startGroup creates step group e.group ("<steps>[g]") and its steps. The first group is the
// steps node's child; later ones are children of the previous group's outbound nodes.
func (c *runCtl) startGroup(e *exec) {
	g := e.group
	name := c.nodes[e.node].name + "[" + strconv.Itoa(g) + "]"
	sg := c.addNode(name, NodeTypeStepGroup, "", e.node, NodeRunning, flagEmpty, "")
	switch {
	case g == 0:
		c.addChild(e.node, sg)
	case len(e.steps[g-1]) == 0:
		c.addChild(e.sgNodes[g-1], sg)
	default:
		for _, st := range e.steps[g-1] {
			for _, o := range c.outbound(st) {
				c.addChild(o, sg)
			}
		}
	}
	e.sgNodes = append(e.sgNodes, sg)
	var execs []*exec
	for _, st := range e.t.groups[g] {
		stepName := name + "." + st.name
		var ch *exec
		if st.when != "" {
			msg := fmt.Sprintf("when '%s' evaluated false", strings.ReplaceAll(st.when, "{{workflow.parameters.mode}}", "incremental"))
			ch = c.leaf(stepName, st.t.name, e.node, NodeSkipped, msg)
		} else {
			ch = c.start(stepName, st.t, e.node, e, flagNone)
		}
		c.addChild(sg, ch.node)
		execs = append(execs, ch)
	}
	e.steps = append(e.steps, execs)
}

func (c *runCtl) visitSteps(e *exec) {
	steps := e.steps[e.group]
	for _, st := range steps {
		c.visit(st)
	}
	for _, st := range steps {
		if !st.done {
			return
		}
	}
	sg := e.sgNodes[e.group]
	for _, st := range steps {
		if phase := c.nodes[st.node].phase; phase.FailedOrError() {
			msg := fmt.Sprintf("child '%s' failed", c.nodes[st.node].id)
			c.setPhase(sg, NodeFailed, msg)
			c.finish(e, NodeFailed, msg)
			return
		}
	}
	c.setPhase(sg, NodeSucceeded, "")
	if e.group == len(e.t.groups)-1 {
		c.finish(e, NodeSucceeded, "")
		return
	}
	e.group++
	c.startGroup(e)
}

// round is one reconciliation at time now (unix seconds) on a private copy of the nodes; it
// always changes something: if chance moved nothing, the oldest running pod finishes.
func (c *runCtl) round(now int64) {
	c.now, c.changed, c.running = now, false, nil
	if c.shared {
		c.nodes, c.shared = slices.Clone(c.nodes), false
	}
	if c.root == nil {
		c.root = c.start(c.wfName, c.p.root, -1, nil, flagNone)
		return
	}
	c.pass()
	if !c.changed && len(c.running) > 0 {
		c.finishPod(c.running[0])
		c.pass()
	}
}

func (c *runCtl) pass() {
	c.visit(c.root)
	switch {
	case !c.root.done || c.p.onExit == nil:
	case c.exit == nil:
		c.exit = c.start(c.wfName+".onExit", c.p.onExit, -1, nil, flagHooked)
	default:
		c.visit(c.exit)
	}
}

// finished reports whether the run is over, and its phase.
func (c *runCtl) finished() (bool, string) {
	if c.root == nil || !c.root.done || c.p.onExit != nil && (c.exit == nil || !c.exit.done) {
		return false, ""
	}
	phase := c.nodes[c.root.node].phase
	if phase == NodeSucceeded && c.exit != nil && c.nodes[c.exit.node].phase.FailedOrError() {
		phase = c.nodes[c.exit.node].phase // a failed exit handler fails the workflow
	}
	return true, workflowPhase(phase)
}

func workflowPhase(p NodePhase) string {
	switch p {
	case NodeFailed:
		return WorkflowFailed
	case NodeError:
		return WorkflowError
	}
	return WorkflowSucceeded
}

// progress is the workflow's "done/total" over pod nodes, and its total resources.
func (c *runCtl) progress() (string, int64, int64) {
	var done, total, cpu, mem int64
	for i := range c.nodes {
		if n := &c.nodes[i]; n.typ == NodeTypePod {
			total++
			if n.phase.Fulfilled() {
				done++
				cpu += int64(n.cpu)
				mem += int64(n.mem)
			}
		}
	}
	return strconv.FormatInt(done, 10) + "/" + strconv.FormatInt(total, 10), cpu, mem
}

// anyRunning reports whether a pod is running (the PodRunning condition).
func (c *runCtl) anyRunning() bool {
	for i := range c.nodes {
		if c.nodes[i].typ == NodeTypePod && c.nodes[i].phase == NodeRunning {
			return true
		}
	}
	return false
}

func (c *runCtl) snapshot() *runSnapshot {
	c.shared = true
	return &runSnapshot{list: c.nodes, scope: "local/" + c.wfName}
}

// retry does what `argo retry` does to a failed run (see retryNodes): the failed pods that
// ended their branch run again with the same ids, their Retry, DAG and steps ancestors run
// again from now, the DAGs forget which tasks a failure had ruled out, and the exit handler
// is deleted, to run again at the end.
func (c *runCtl) retry(now int64) {
	c.now, c.changed = now, false
	if c.shared {
		c.nodes, c.shared = slices.Clone(c.nodes), false
	}
	var failed []*exec
	c.failedLeaves(c.root, &failed)
	if c.exit != nil {
		c.failedLeaves(c.exit, &failed)
		c.nodes[c.exit.node].gone = true
		c.exit = nil
	}
	for _, leaf := range failed {
		n := &c.nodes[leaf.node]
		n.phase, n.message, n.started, n.finished, n.host, n.exit, n.cpu, n.mem = NodePending, "", now, 0, "", -1, 0, 0
		leaf.done = false
		for x := leaf.parent; x != nil; x = x.parent {
			c.reopen(x)
		}
	}
	c.reopen(c.root)
	c.changed = true
}

// failedLeaves collects the failed pods that ended their branch: not attempts a later
// attempt superseded, nor failures a handler took care of.
func (c *runCtl) failedLeaves(e *exec, out *[]*exec) {
	switch e.kind {
	case execPod:
		if c.nodes[e.node].phase.FailedOrError() {
			*out = append(*out, e)
		}
	case execRetry:
		if c.nodes[e.node].phase.FailedOrError() {
			c.failedLeaves(e.attempts[len(e.attempts)-1], out)
		}
	case execDAG:
		for i, t := range e.tasks {
			if t != nil && !c.handledSuccessfully(e, i) {
				c.failedLeaves(t, out)
			}
		}
	case execSteps:
		for _, g := range e.steps {
			for _, st := range g {
				c.failedLeaves(st, out)
			}
		}
	}
}

// handledSuccessfully reports whether a failure handler of task i succeeded: upstream does
// not re-run a failed node with a succeeded descendant.
func (c *runCtl) handledSuccessfully(e *exec, i int) bool {
	for j, tk := range e.t.tasks {
		if tk.onFail == i && e.tasks[j] != nil && c.nodes[e.tasks[j].node].phase == NodeSucceeded {
			return true
		}
	}
	return false
}

// reopen resets a finished group (upstream resetNode): Running again from now.
func (c *runCtl) reopen(e *exec) {
	if !e.done {
		return
	}
	e.done = false
	reset := func(i int32) {
		n := &c.nodes[i]
		n.phase, n.message, n.started, n.finished = NodeRunning, "", c.now, 0
	}
	reset(e.node)
	switch e.kind {
	case execDAG:
		clear(e.notRun)
	case execSteps:
		reset(e.sgNodes[e.group])
	}
}

package argosim

import (
	"strconv"
	"time"
)

// Builder assembles a DAG workflow with upstream's naming and wiring (node ids from names,
// boundaryID, children as dependency edges, Retry children "name(k)"), for scenario tests:
//
//	b := argosim.NewWorkflow("argo", "etl-x7k2p", start)
//	a := b.Pod("extract", argosim.NodeSucceeded, start, start.Add(time.Minute))
//	b.Retry("load", []argosim.Attempt{{Phase: argosim.NodeFailed, ...}, {Phase: argosim.NodeRunning, ...}}, a)
//	srv.Put(b.Workflow())
type Builder struct {
	wf Workflow
}

// Attempt is one child of a Retry node.
type Attempt struct {
	Phase      NodePhase
	StartedAt  time.Time
	FinishedAt time.Time
	Message    string
}

// NewWorkflow starts a Running workflow whose root is a DAG node, started at startedAt.
func NewWorkflow(namespace, name string, startedAt time.Time) *Builder {
	s := NewTime(startedAt)
	return &Builder{wf: Workflow{
		Metadata: ObjectMeta{Namespace: namespace, Name: name, CreationTimestamp: s},
		Spec:     WorkflowSpec{Entrypoint: "main"},
		Status: WorkflowStatus{Phase: WorkflowRunning, StartedAt: s, Nodes: Nodes{
			name: {ID: name, Name: name, DisplayName: name, Type: NodeTypeDAG, TemplateName: "main", Phase: NodeRunning, StartedAt: s},
		}},
	}}
}

func (b *Builder) add(n NodeStatus) string {
	n.ID = NodeID(b.wf.Metadata.Name, n.Name)
	b.wf.Status.Nodes[n.ID] = n
	return n.ID
}

// link makes id a child of each dependency (their outbound node), or of the root without any.
func (b *Builder) link(id string, deps []string) {
	root := b.wf.Metadata.Name
	if len(deps) == 0 {
		deps = []string{root}
	}
	for _, d := range deps {
		from := d
		if n := b.wf.Status.Nodes[d]; n.Type == NodeTypeRetry && len(n.Children) > 0 {
			from = n.Children[len(n.Children)-1]
		}
		n := b.wf.Status.Nodes[from]
		n.Children = append(n.Children, id)
		b.wf.Status.Nodes[from] = n
	}
}

func (b *Builder) pod(name, display string, phase NodePhase, started, finished time.Time, message string, flag *NodeFlag) NodeStatus {
	n := NodeStatus{
		Name: name, DisplayName: display, Type: NodeTypePod, TemplateName: "run", Phase: phase,
		BoundaryID: b.wf.Metadata.Name, Message: message, StartedAt: NewTime(started), FinishedAt: NewTime(finished), NodeFlag: flag,
	}
	if phase != NodePending {
		n.HostNodeName = "node-1"
	}
	switch phase {
	case NodeSucceeded:
		n.Outputs = &Outputs{ExitCode: ptr("0")}
	case NodeFailed:
		n.Outputs = &Outputs{ExitCode: ptr("1")}
	}
	if phase.Fulfilled() {
		n.ResourcesDuration = map[string]int64{"cpu": 1, "memory": 1}
	}
	return n
}

// Pod adds a DAG task running a pod, depending on the nodes deps (ids returned earlier), and
// returns its id. A zero finishedAt leaves it unfinished.
func (b *Builder) Pod(task string, phase NodePhase, startedAt, finishedAt time.Time, deps ...string) string {
	id := b.add(b.pod(b.wf.Metadata.Name+"."+task, task, phase, startedAt, finishedAt, "", nil))
	b.link(id, deps)
	return id
}

// Retry adds a DAG task with a retryStrategy: a Retry node and one Pod child per attempt. The
// Retry node succeeds with a successful attempt, fails when the last attempt failed, and
// runs otherwise. It returns the Retry node's id.
func (b *Builder) Retry(task string, attempts []Attempt, deps ...string) string {
	name := b.wf.Metadata.Name + "." + task
	r := NodeStatus{Name: name, DisplayName: task, Type: NodeTypeRetry, TemplateName: "run", Phase: NodeRunning, BoundaryID: b.wf.Metadata.Name}
	if len(attempts) > 0 {
		r.StartedAt = NewTime(attempts[0].StartedAt)
		if last := attempts[len(attempts)-1]; last.Phase.Fulfilled() {
			r.Phase, r.FinishedAt = last.Phase, NewTime(last.FinishedAt)
			if last.Phase.FailedOrError() {
				r.Message = "No more retries left"
			}
		}
	}
	for k, a := range attempts {
		suffix := "(" + strconv.Itoa(k) + ")"
		r.Children = append(r.Children, b.add(b.pod(name+suffix, task+suffix, a.Phase, a.StartedAt, a.FinishedAt, a.Message, &NodeFlag{Retried: true})))
	}
	id := b.add(r)
	b.link(id, deps)
	return id
}

// Finish ends the workflow and its root node in phase ("Succeeded", "Failed" or "Error").
func (b *Builder) Finish(phase string, finishedAt time.Time) *Builder {
	b.wf.Status.Phase, b.wf.Status.FinishedAt = phase, NewTime(finishedAt)
	root := b.wf.Status.Nodes[b.wf.Metadata.Name]
	root.Phase, root.FinishedAt = NodePhase(phase), NewTime(finishedAt)
	b.wf.Status.Nodes[root.ID] = root
	return b
}

// Workflow returns the workflow built so far (a copy: the builder can go on).
func (b *Builder) Workflow() Workflow {
	out, err := copyWorkflow(&b.wf)
	if err != nil {
		panic(err) // the simulator's own types always encode
	}
	return out
}

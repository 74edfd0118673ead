package argo

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/farmobs/farm/pkg/event"
)

// Argo labels and annotations FARM reads.
const (
	LabelCompleted               = "workflows.argoproj.io/completed"
	LabelCronWorkflow            = "workflows.argoproj.io/cron-workflow"
	LabelWorkflowTemplate        = "workflows.argoproj.io/workflow-template"
	LabelClusterWorkflowTemplate = "workflows.argoproj.io/cluster-workflow-template"
	AnnotationPodNameFormat      = "workflows.argoproj.io/pod-name-format"
	argoLabelPrefix              = "workflows.argoproj.io/"
)

// Node types that group other nodes.
const (
	NodeRetry     = "Retry"
	NodeStepGroup = "StepGroup"
	NodeTaskGroup = "TaskGroup"
	NodePod       = "Pod"
)

// keptArgoLabels are the workflows.argoproj.io/ labels copied to events: who ran the run and
// where it came from. The others (phase, completed, archiving status) change with the run's state
// and would only repeat Phase.
var keptArgoLabels = map[string]bool{
	LabelCronWorkflow:                                  true,
	LabelWorkflowTemplate:                              true,
	LabelClusterWorkflowTemplate:                       true,
	"workflows.argoproj.io/creator":                    true,
	"workflows.argoproj.io/creator-preferred-username": true,
	"workflows.argoproj.io/resubmitted-from-workflow":  true,
	"workflows.argoproj.io/workflow-event-binding":     true,
	"workflows.argoproj.io/controller-instanceid":      true,
}

// Mapper turns Argo workflows into FARM's event model. It is a pure function of its input.
type Mapper struct {
	Instance string   // Config.Instance
	UIURL    *url.URL // base of links to runs; nil: no links
	// DefaultPodNameFormat is the controller's POD_NAMES for workflows without the
	// pod-name-format annotation (Argo's default is "v2").
	DefaultPodNameFormat string
}

// Run maps the workflow's identity and state.
func (m Mapper) Run(wf *Workflow) event.Run {
	md, st := &wf.Metadata, &wf.Status
	return event.Run{
		Source:      event.SourceArgo,
		Instance:    m.Instance,
		Namespace:   md.Namespace,
		UID:         md.UID,
		Name:        md.Name,
		Pipeline:    Pipeline(wf),
		Phase:       st.Phase,
		Status:      StatusOf(st.Phase),
		StartedAt:   st.StartedAt.ptr(),
		FinishedAt:  st.FinishedAt.ptr(),
		Message:     st.Message,
		URL:         m.runURL(md.Namespace, md.Name),
		Labels:      keptLabels(md.Labels),
		CreatedAt:   md.CreationTimestamp.ptr(),
		Annotations: keptAnnotations(md.Annotations),
		Parameters:  parameters(wf.Spec.Arguments.Parameters),
	}
}

// annotationLastApplied is kubectl's copy of the whole manifest: large, and nothing a report needs.
const annotationLastApplied = "kubectl.kubernetes.io/last-applied-configuration"

func keptAnnotations(in map[string]string) map[string]string {
	return keepKeys(in, func(k string) bool { return k != annotationLastApplied })
}

func parameters(in []Parameter) []event.Parameter {
	if len(in) == 0 {
		return nil
	}
	out := make([]event.Parameter, len(in))
	for i, p := range in {
		out[i].Name = p.Name
		if p.Value != nil {
			v := string(*p.Value)
			out[i].Value = &v
		}
	}
	return out
}

func (m Mapper) runURL(ns, name string) string {
	if m.UIURL == nil || ns == "" || name == "" {
		return ""
	}
	return m.UIURL.JoinPath("workflows", ns, name).String()
}

// keptLabels are the user's own labels (team, app…) and the Argo labels that say where the run
// came from.
func keptLabels(in map[string]string) map[string]string {
	return keepKeys(in, func(k string) bool { return !strings.HasPrefix(k, argoLabelPrefix) || keptArgoLabels[k] })
}

// keepKeys copies the entries of in whose key passes keep; nil when none does.
func keepKeys(in map[string]string, keep func(string) bool) map[string]string {
	var out map[string]string
	for k, v := range in {
		if !keep(k) {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(in))
		}
		out[k] = v
	}
	return out
}

// Active reports whether the run may still change: its phase is unknown, Pending or Running, or
// the controller has not labelled it completed (an `argo retry` removes that label).
func Active(wf *Workflow) bool {
	switch wf.Status.Phase {
	case "", "Pending", "Running":
		return true
	}
	return wf.Metadata.Labels[LabelCompleted] != "true"
}

// Fingerprint is the workflow's resourceVersion, which changes on every write. Archived rows
// carry none; for them a hash of what can still change (an archived run is finished, but the
// same uid may be listed live after an `argo retry`) stands in.
func Fingerprint(wf *Workflow, nodeCount int) string {
	if rv := wf.Metadata.ResourceVersion; rv != "" {
		return rv
	}
	sum := sha256.Sum256([]byte(wf.Metadata.UID + "\x00" + wf.Status.Phase + "\x00" +
		wf.Status.FinishedAt.UTC().Format("2006-01-02T15:04:05Z07:00") + "\x00" + strconv.Itoa(nodeCount)))
	return "h:" + hex.EncodeToString(sum[:12])
}

// Ref is what Fetch needs to find the run again.
func Ref(wf *Workflow) string {
	return wf.Metadata.Namespace + "/" + wf.Metadata.Name + "/" + wf.Metadata.UID
}

// Pipeline names the workflow that this run is one run of: its cron workflow, else its workflow
// template (namespaced, then cluster), else generateName without its trailing "-" and without a
// suffix that a resubmission or a scheduler generated, else its name.
func Pipeline(wf *Workflow) string {
	md := &wf.Metadata
	for _, l := range []string{LabelCronWorkflow, LabelWorkflowTemplate, LabelClusterWorkflowTemplate} {
		if v := md.Labels[l]; v != "" {
			return v
		}
	}
	if ref := wf.Spec.WorkflowTemplateRef; ref != nil && ref.Name != "" {
		return ref.Name
	}
	if g := strings.TrimRight(md.GenerateName, "-"); g != "" {
		return trimGeneratedSuffix(g)
	}
	return md.Name
}

// trimGeneratedSuffix drops a last dash-separated segment that a machine made: `argo resubmit` of
// a workflow without generateName uses "<name>-" as generateName, so "etl-x7k2p-" and
// "report-1767323045-" (a cron run's timestamp) both stand for their pipeline. A random suffix is
// 5 characters of [a-z0-9] (Kubernetes and Argo generators); it is only trusted when it holds a
// digit, since words like "daily" or "batch" are legitimate names. A timestamp is 9+ digits.
func trimGeneratedSuffix(g string) string {
	i := strings.LastIndexByte(g, '-')
	if i <= 0 {
		return g
	}
	s := g[i+1:]
	digits, letters := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r >= 'a' && r <= 'z':
			letters++
		default:
			return g
		}
	}
	if (len(s) == 5 && digits > 0) || (letters == 0 && digits >= 9) {
		return g[:i]
	}
	return g
}

// Tasks maps every node, the root node included, to a task event (ID, PrevState and PrevStatus
// are the engine's to fill). The order follows nodes' start times, then ids, so it is stable.
func (m Mapper) Tasks(wf *Workflow, nodes map[string]Node) []event.TaskEvent {
	parents := Parents(wf.Metadata.Name, nodes)
	podFormat := m.podNameFormat(wf)
	out := make([]event.TaskEvent, 0, len(nodes))
	for id, n := range nodes {
		if n.ID == "" {
			n.ID = id
		}
		p := parents[n.ID]
		out = append(out, event.TaskEvent{
			NodeID:            n.ID,
			Name:              n.Name,
			DisplayName:       n.DisplayName,
			Type:              n.Type,
			Template:          n.Template(),
			ParentID:          p.id,
			Attempt:           p.attempt,
			State:             n.Phase,
			Status:            StatusOf(n.Phase),
			StartedAt:         n.StartedAt.ptr(),
			FinishedAt:        n.FinishedAt.ptr(),
			Message:           n.Message,
			Pod:               podName(wf.Metadata.Name, &n, podFormat),
			HostNode:          n.HostNodeName,
			ResourcesDuration: n.ResourcesDuration,
		})
	}
	sortTasks(out)
	return out
}

func (m Mapper) podNameFormat(wf *Workflow) string {
	if v := wf.Metadata.Annotations[AnnotationPodNameFormat]; v != "" {
		return v
	}
	if m.DefaultPodNameFormat != "" {
		return m.DefaultPodNameFormat
	}
	return "v2"
}

// Pod name limits of upstream workflow/util/pod_name.go: a Kubernetes name is at most 253
// characters and the hash suffix takes up to 10 of them.
const maxPodNamePrefix = 253 - 10 - 1

// podName is the name of the pod a Pod node ran in. Format v1 names pods after node ids; v2 (the
// default since Argo 3.4) is "<workflow>-<template>-<fnv32a(node name)>", the root node of a
// single-pod workflow keeping the workflow's name.
func podName(wfName string, n *Node, format string) string {
	if n.Type != NodePod {
		return ""
	}
	if format == "v1" {
		return n.ID
	}
	if n.Name == wfName {
		return wfName
	}
	prefix := wfName
	if t := n.Template(); t != "" {
		prefix += "-" + t
	}
	if len(prefix) > maxPodNamePrefix {
		prefix = prefix[:maxPodNamePrefix]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(n.Name))
	return prefix + "-" + strconv.FormatUint(uint64(h.Sum32()), 10)
}

// parent is where a node nests in the trace.
type parent struct {
	id      string
	attempt int
}

// Parents returns, for every node id, the node it nests under, so the trace nests the way the
// workflow does. Argo's `children` cannot be used as such: in a DAG they are dependency edges (a
// task is the child of the tasks it depends on), and in Steps a step's children are the NEXT step
// group. What each group really contains (checked against upstream workflow/controller steps.go,
// dag.go and the testdata workflows steps-failed-retries.yaml and dag_retry_succeeded.yaml):
//
//   - Retry: its attempts, named "<retry name>(N)". Their boundaryID is the enclosing DAG/Steps
//     node, not the Retry node, so they are adopted from the Retry node's children. Attempt = N.
//   - StepGroup "<steps>[i]": its steps, named "<steps>[i].<step>". Its children may also list the
//     next StepGroup (after an empty group), which is not a member and keeps its boundary.
//   - TaskGroup (a DAG task with withItems/withParam): its expansions, "<task>(i:item)". Tasks
//     that depend on an empty TaskGroup become its children too; the name tells them apart.
//   - Everything else nests under its boundaryID, the DAG or Steps node of the template that
//     created it (a StepGroup's boundary is its Steps node).
//   - A node with no boundary (an onExit handler, or a boundary missing from the map) nests under
//     the root node, whose id is the workflow name; the root node itself has no parent.
//
// Membership is decided by name prefix because Argo builds every member's name from its group's.
func Parents(root string, nodes map[string]Node) map[string]parent {
	adopted := make(map[string]string) // member id → group id
	for gid, g := range nodes {
		sep := groupSeparator(g.Type)
		if sep == "" {
			continue
		}
		for _, cid := range g.Children {
			c, ok := nodes[cid]
			if !ok || !strings.HasPrefix(c.Name, g.Name+sep) {
				continue
			}
			// Should two groups claim one node, the innermost (longest name) wins, whatever the
			// map's iteration order.
			if prev, ok := adopted[cid]; !ok || len(nodes[prev].Name) < len(g.Name) {
				adopted[cid] = gid
			}
		}
	}
	_, hasRoot := nodes[root]
	out := make(map[string]parent, len(nodes))
	for id, n := range nodes {
		switch {
		case id == root:
			out[id] = parent{}
		case adopted[id] != "":
			g := adopted[id]
			p := parent{id: g}
			if nodes[g].Type == NodeRetry {
				p.attempt = attemptOf(n.Name, nodes[g].Name)
			}
			out[id] = p
		case n.BoundaryID != "" && n.BoundaryID != id && has(nodes, n.BoundaryID):
			out[id] = parent{id: n.BoundaryID}
		case hasRoot:
			out[id] = parent{id: root}
		default:
			out[id] = parent{}
		}
	}
	return out
}

func has(nodes map[string]Node, id string) bool { _, ok := nodes[id]; return ok }

func groupSeparator(nodeType string) string {
	switch nodeType {
	case NodeRetry, NodeTaskGroup:
		return "("
	case NodeStepGroup:
		return "."
	}
	return ""
}

// attemptOf reads N from a Retry member named "<retry>(N)"; 0 when the name says otherwise.
func attemptOf(name, retryName string) int {
	s, ok := strings.CutPrefix(name, retryName+"(")
	if !ok {
		return 0
	}
	s, ok = strings.CutSuffix(s, ")")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// sortTasks orders tasks by start time (not yet started last), then node id.
func sortTasks(ts []event.TaskEvent) {
	slices.SortFunc(ts, func(a, b event.TaskEvent) int {
		switch {
		case a.StartedAt == nil && b.StartedAt != nil:
			return 1
		case a.StartedAt != nil && b.StartedAt == nil:
			return -1
		case a.StartedAt != nil:
			if c := a.StartedAt.Compare(*b.StartedAt); c != 0 {
				return c
			}
		}
		return strings.Compare(a.NodeID, b.NodeID)
	})
}

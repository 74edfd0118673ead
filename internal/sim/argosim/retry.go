package argosim

import (
	"slices"
	"strings"
)

// retryNodes returns the nodes of a workflow after `argo retry` (workflow/util FormulateRetryWorkflow),
// as seen once the controller has re-created the deleted pods: failed execution nodes keep their
// ids (ids hash node names) but start again, Pending; the failed Retry nodes and group nodes
// above them are reset to Running with a new startedAt; exit-handler nodes are deleted. A
// failure with a succeeded descendant (a DAG failure handler) is not re-run. Of a failed
// Retry node only the last attempt runs again; earlier attempts stay as history.
func retryNodes(wfName string, in Nodes, now Time) Nodes {
	out := make(Nodes, len(in))
	for id, n := range in {
		if !strings.HasPrefix(n.Name, wfName+".onExit") {
			out[id] = n
		}
	}
	for id, n := range out {
		n.Children = slices.DeleteFunc(slices.Clone(n.Children), func(c string) bool { _, ok := out[c]; return !ok })
		out[id] = n
	}
	parents := groupParents(out)
	reset := map[string]bool{}
	var climb func(id string)
	climb = func(id string) {
		for _, p := range parents[id] {
			pn := out[p]
			if reset[p] || !(isGroup(pn.Type) || pn.Type == NodeTypeRetry && pn.Phase.FailedOrError()) {
				continue
			}
			reset[p] = true
			out[p] = resetGroup(pn, now)
			climb(p)
		}
	}
	for id := range in {
		if n, kept := out[id]; kept && isExecution(n.Type) && n.Phase.FailedOrError() &&
			!supersededAttempt(out, parents[id], id) && !descendantSucceeded(out, id) {
			out[id] = resetExecution(n, now)
			climb(id)
		}
	}
	return out
}

// descendantSucceeded reports whether a node reachable through children succeeded (for
// example a DAG failure handler): upstream does not re-run such a failure.
func descendantSucceeded(nodes Nodes, id string) bool {
	seen := map[string]bool{id: true}
	queue := slices.Clone(nodes[id].Children)
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if seen[c] {
			continue
		}
		seen[c] = true
		if nodes[c].Phase == NodeSucceeded {
			return true
		}
		queue = append(queue, nodes[c].Children...)
	}
	return false
}

// supersededAttempt reports whether a failed attempt of a Retry node is not to be run again:
// its Retry node succeeded, or a later attempt exists (only the last attempt is re-run).
func supersededAttempt(nodes Nodes, parents []string, id string) bool {
	for _, p := range parents {
		r := nodes[p]
		if r.Type != NodeTypeRetry {
			continue
		}
		return r.Phase == NodeSucceeded || len(r.Children) == 0 || r.Children[len(r.Children)-1] != id
	}
	return false
}

// groupParents maps a node to the nodes that contain it: its boundary node and any group or
// Retry node listing it as a child (children of pods are dependency edges, not containment).
func groupParents(nodes Nodes) map[string][]string {
	parents := map[string][]string{}
	for id, n := range nodes {
		if n.BoundaryID != "" {
			parents[id] = append(parents[id], n.BoundaryID)
		}
		if isGroup(n.Type) || n.Type == NodeTypeRetry {
			for _, c := range n.Children {
				parents[c] = append(parents[c], id)
			}
		}
	}
	return parents
}

func isGroup(t NodeType) bool {
	switch t {
	case NodeTypeDAG, NodeTypeSteps, NodeTypeStepGroup, NodeTypeTaskGroup:
		return true
	}
	return false
}

func isExecution(t NodeType) bool {
	return t == NodeTypePod || t == NodeTypeContainer || t == NodeTypeSuspend
}

func resetExecution(n NodeStatus, now Time) NodeStatus {
	n.Phase, n.Message, n.StartedAt, n.FinishedAt = NodePending, "", now, Time{}
	n.HostNodeName, n.PodIP, n.ResourcesDuration, n.Outputs, n.Progress = "", "", nil, nil, "0/1"
	return n
}

// resetGroup is upstream resetNode: Skipped stays Skipped, anything else runs again.
func resetGroup(n NodeStatus, now Time) NodeStatus {
	if n.Phase != NodeSkipped {
		n.Phase = NodeRunning
	}
	n.Message, n.StartedAt, n.FinishedAt = "", now, Time{}
	return n
}

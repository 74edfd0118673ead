package argosim

import (
	"bytes"
	"fmt"
	"time"
)

// The types below are the simulator's own, written from Argo's wire format
// (pkg/apis/workflow/v1alpha1/workflow_types.go and k8s.io/apimachinery ObjectMeta/ListMeta).
// Field names, field order and omitempty flags follow upstream, because the Argo Server encodes
// these structs with encoding/json: struct-typed fields are never omitted (`"spec":{}`,
// `"arguments":{}`) and zero times are written as null (`"finishedAt":null`).

// Time is a Kubernetes metav1.Time on the wire: RFC 3339 in UTC with second precision, and
// null when zero (omitempty does not omit it, because it is a struct).
type Time struct{ time.Time }

// NewTime returns t truncated to the second and in UTC, as Kubernetes stores it.
func NewTime(t time.Time) Time {
	if t.IsZero() {
		return Time{}
	}
	return Time{t.UTC().Truncate(time.Second)}
}

// MarshalJSON writes null for the zero time, else "2006-01-02T15:04:05Z".
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	buf := make([]byte, 0, len(time.RFC3339)+2)
	buf = append(buf, '"')
	buf = t.UTC().AppendFormat(buf, time.RFC3339)
	return append(buf, '"'), nil
}

// UnmarshalJSON reads null or an RFC 3339 string.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("time %s is not a JSON string", b)
	}
	p, err := time.Parse(time.RFC3339, string(b[1:len(b)-1]))
	if err != nil {
		return fmt.Errorf("time %s: %w", b, err)
	}
	t.Time = p.UTC()
	return nil
}

// Workflow phases.
const (
	WorkflowUnknown   = ""
	WorkflowPending   = "Pending"
	WorkflowRunning   = "Running"
	WorkflowSucceeded = "Succeeded"
	WorkflowFailed    = "Failed"
	WorkflowError     = "Error"
)

// NodePhase is a node's phase.
type NodePhase string

// Node phases.
const (
	NodePending   NodePhase = "Pending"
	NodeRunning   NodePhase = "Running"
	NodeSucceeded NodePhase = "Succeeded"
	NodeSkipped   NodePhase = "Skipped"
	NodeFailed    NodePhase = "Failed"
	NodeError     NodePhase = "Error"
	NodeOmitted   NodePhase = "Omitted"
)

// Fulfilled reports whether the phase is final.
func (p NodePhase) Fulfilled() bool {
	switch p {
	case NodeSucceeded, NodeSkipped, NodeFailed, NodeError, NodeOmitted:
		return true
	}
	return false
}

// FailedOrError reports Failed or Error.
func (p NodePhase) FailedOrError() bool { return p == NodeFailed || p == NodeError }

// NodeType is a node's type.
type NodeType string

// Node types.
const (
	NodeTypePod       NodeType = "Pod"
	NodeTypeContainer NodeType = "Container"
	NodeTypeSteps     NodeType = "Steps"
	NodeTypeStepGroup NodeType = "StepGroup"
	NodeTypeDAG       NodeType = "DAG"
	NodeTypeTaskGroup NodeType = "TaskGroup"
	NodeTypeRetry     NodeType = "Retry"
	NodeTypeSkipped   NodeType = "Skipped"
	NodeTypeSuspend   NodeType = "Suspend"
)

// Well-known labels and annotations (workflow/common/common.go).
const (
	LabelCompleted               = "workflows.argoproj.io/completed"
	LabelPhase                   = "workflows.argoproj.io/phase"
	LabelArchivingStatus         = "workflows.argoproj.io/workflow-archiving-status"
	LabelWorkflowTemplate        = "workflows.argoproj.io/workflow-template"
	LabelClusterWorkflowTemplate = "workflows.argoproj.io/cluster-workflow-template"
	LabelCronWorkflow            = "workflows.argoproj.io/cron-workflow"
	AnnotationPodNameFormat      = "workflows.argoproj.io/pod-name-format"
	AnnotationScheduledTime      = "workflows.argoproj.io/scheduled-time"
)

// Values of LabelArchivingStatus: Pending (to be archived), Archived (archived, still live),
// Persisted (read back from the archive).
const (
	ArchivingPending   = "Pending"
	ArchivingArchived  = "Archived"
	ArchivingPersisted = "Persisted"
)

// Workflow is an Argo Workflow as the Argo Server returns it. TypeMeta (kind, apiVersion) is not
// part of it: the server's list and get answers leave it empty.
type Workflow struct {
	Metadata ObjectMeta     `json:"metadata"`
	Spec     WorkflowSpec   `json:"spec"`
	Status   WorkflowStatus `json:"status,omitempty"`
}

// ObjectMeta is the part of Kubernetes ObjectMeta that workflows carry.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	GenerateName      string            `json:"generateName,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp Time              `json:"creationTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

// ListMeta is Kubernetes ListMeta.
type ListMeta struct {
	ResourceVersion    string `json:"resourceVersion,omitempty"`
	Continue           string `json:"continue,omitempty"`
	RemainingItemCount *int64 `json:"remainingItemCount,omitempty"`
}

// WorkflowList is the list answer. Items is null (not []) when nothing matched, as upstream.
type WorkflowList struct {
	Metadata ListMeta   `json:"metadata"`
	Items    []Workflow `json:"items"`
}

// WorkflowSpec holds the spec fields the simulator fills in.
type WorkflowSpec struct {
	Templates           []Template           `json:"templates,omitempty"`
	Entrypoint          string               `json:"entrypoint,omitempty"`
	Arguments           Arguments            `json:"arguments,omitempty"`
	ServiceAccountName  string               `json:"serviceAccountName,omitempty"`
	Suspend             *bool                `json:"suspend,omitempty"`
	OnExit              string               `json:"onExit,omitempty"`
	TTLStrategy         *TTLStrategy         `json:"ttlStrategy,omitempty"`
	PodGC               *PodGC               `json:"podGC,omitempty"`
	WorkflowTemplateRef *WorkflowTemplateRef `json:"workflowTemplateRef,omitempty"`
}

// Arguments of a workflow or template invocation.
type Arguments struct {
	Parameters []Parameter `json:"parameters,omitempty"`
}

// Parameter is a named string value.
type Parameter struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

// TTLStrategy says when a completed workflow is deleted.
type TTLStrategy struct {
	SecondsAfterCompletion *int32 `json:"secondsAfterCompletion,omitempty"`
	SecondsAfterSuccess    *int32 `json:"secondsAfterSuccess,omitempty"`
	SecondsAfterFailure    *int32 `json:"secondsAfterFailure,omitempty"`
}

// PodGC says when pods are deleted.
type PodGC struct {
	Strategy string `json:"strategy,omitempty"`
}

// WorkflowTemplateRef names the template a workflow was submitted from.
type WorkflowTemplateRef struct {
	Name         string `json:"name,omitempty"`
	ClusterScope bool   `json:"clusterScope,omitempty"`
}

// Template is a (trimmed) Argo template. Inputs, Outputs and Metadata are structs upstream, so
// they always appear, as {}.
type Template struct {
	Name          string         `json:"name,omitempty"`
	Inputs        Inputs         `json:"inputs,omitempty"`
	Outputs       Outputs        `json:"outputs,omitempty"`
	Metadata      TemplateMeta   `json:"metadata,omitempty"`
	Steps         [][]Step       `json:"steps,omitempty"`
	Container     *Container     `json:"container,omitempty"`
	DAG           *DAG           `json:"dag,omitempty"`
	RetryStrategy *RetryStrategy `json:"retryStrategy,omitempty"`
}

// Inputs of a template.
type Inputs struct {
	Parameters []Parameter `json:"parameters,omitempty"`
}

// Outputs of a template or node. ExitCode is set on completed pod nodes.
type Outputs struct {
	Parameters []Parameter `json:"parameters,omitempty"`
	ExitCode   *string     `json:"exitCode,omitempty"`
}

// TemplateMeta is a template's pod metadata.
type TemplateMeta struct {
	Labels map[string]string `json:"labels,omitempty"`
}

// Step is one step of a steps template.
type Step struct {
	Name     string `json:"name,omitempty"`
	Template string `json:"template,omitempty"`
	When     string `json:"when,omitempty"`
}

// DAG is a dag template.
type DAG struct {
	Tasks []DAGTask `json:"tasks"`
}

// DAGTask is one task of a dag template.
type DAGTask struct {
	Name         string   `json:"name"`
	Template     string   `json:"template,omitempty"`
	Dependencies []string `json:"dependencies,omitempty"`
	Depends      string   `json:"depends,omitempty"`
}

// Container is a container template. Resources is a struct upstream, hence always {}.
type Container struct {
	Name      string    `json:"name"`
	Image     string    `json:"image,omitempty"`
	Command   []string  `json:"command,omitempty"`
	Args      []string  `json:"args,omitempty"`
	Resources Resources `json:"resources"`
}

// Resources of a container.
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
}

// RetryStrategy of a template.
type RetryStrategy struct {
	Limit       *int   `json:"limit,omitempty"`
	RetryPolicy string `json:"retryPolicy,omitempty"`
}

// WorkflowStatus is a workflow's status, fields in upstream order.
type WorkflowStatus struct {
	Phase                    string           `json:"phase,omitempty"`
	StartedAt                Time             `json:"startedAt,omitempty"`
	FinishedAt               Time             `json:"finishedAt,omitempty"`
	EstimatedDuration        int64            `json:"estimatedDuration,omitempty"`
	Progress                 string           `json:"progress,omitempty"`
	Message                  string           `json:"message,omitempty"`
	CompressedNodes          string           `json:"compressedNodes,omitempty"`
	Nodes                    Nodes            `json:"nodes,omitempty"`
	OffloadNodeStatusVersion string           `json:"offloadNodeStatusVersion,omitempty"`
	Conditions               []Condition      `json:"conditions,omitempty"`
	ResourcesDuration        map[string]int64 `json:"resourcesDuration,omitempty"`
	ArtifactRepositoryRef    *ArtifactRepoRef `json:"artifactRepositoryRef,omitempty"`
	TaskResultsCompletion    map[string]bool  `json:"taskResultsCompletionStatus,omitempty"`
}

// ArtifactRepoRef is the artifact repository a workflow resolved.
type ArtifactRepoRef struct {
	Default bool `json:"default,omitempty"`
}

// Condition of a workflow.
type Condition struct {
	Type    string `json:"type,omitempty"`
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// Nodes maps node id to node.
type Nodes map[string]NodeStatus

// NodeStatus is one node of status.nodes, fields in upstream order.
type NodeStatus struct {
	ID                string           `json:"id"`
	Name              string           `json:"name"`
	DisplayName       string           `json:"displayName,omitempty"`
	Type              NodeType         `json:"type"`
	TemplateName      string           `json:"templateName,omitempty"`
	TemplateScope     string           `json:"templateScope,omitempty"`
	Phase             NodePhase        `json:"phase,omitempty"`
	BoundaryID        string           `json:"boundaryID,omitempty"`
	Message           string           `json:"message,omitempty"`
	StartedAt         Time             `json:"startedAt,omitempty"`
	FinishedAt        Time             `json:"finishedAt,omitempty"`
	EstimatedDuration int64            `json:"estimatedDuration,omitempty"`
	Progress          string           `json:"progress,omitempty"`
	ResourcesDuration map[string]int64 `json:"resourcesDuration,omitempty"`
	PodIP             string           `json:"podIP,omitempty"`
	NodeFlag          *NodeFlag        `json:"nodeFlag,omitempty"`
	Outputs           *Outputs         `json:"outputs,omitempty"`
	Children          []string         `json:"children,omitempty"`
	OutboundNodes     []string         `json:"outboundNodes,omitempty"`
	HostNodeName      string           `json:"hostNodeName,omitempty"`
	TaskResultSynced  *bool            `json:"taskResultSynced,omitempty"`
}

// NodeFlag records how a node came to be. Upstream sets a non-nil, often empty, flag on most
// nodes, so `"nodeFlag":{}` is common on the wire.
type NodeFlag struct {
	Hooked  bool `json:"hooked,omitempty"`
	Retried bool `json:"retried,omitempty"`
}

// NodeID is Argo's deterministic node id: the workflow name for the root node, else the workflow
// name and the FNV-32a hash of the node name (Workflow.NodeID upstream).
func NodeID(workflowName, nodeName string) string {
	if nodeName == workflowName {
		return workflowName
	}
	return workflowName + "-" + fmt.Sprint(fnv32a(nodeName))
}

// PodName is the v2 pod name of a pod node (workflow/util/pod_name.go): workflow name, template
// name and the FNV-32a hash of the node name.
func PodName(workflowName, nodeName, templateName string) string {
	if workflowName == nodeName {
		return workflowName
	}
	prefix := workflowName
	if templateName != "" {
		prefix += "-" + templateName
	}
	const maxPrefix = 253 - 10 - 1
	if len(prefix) > maxPrefix {
		prefix = prefix[:maxPrefix]
	}
	return prefix + "-" + fmt.Sprint(fnv32a(nodeName))
}

func fnv32a(s string) uint32 {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime
	}
	return h
}

package argo

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// The shapes below are the parts of the Argo Server's JSON that FARM reads (upstream
// pkg/apis/workflow/v1alpha1/workflow_types.go); everything else is ignored.

// Workflow is an Argo Workflow as the list, get and archive endpoints return it.
type Workflow struct {
	Metadata ObjectMeta     `json:"metadata"`
	Spec     WorkflowSpec   `json:"spec"`
	Status   WorkflowStatus `json:"status"`
}

// ObjectMeta is the Kubernetes metadata FARM uses.
type ObjectMeta struct {
	Name              string            `json:"name"`
	GenerateName      string            `json:"generateName,omitempty"`
	Namespace         string            `json:"namespace"`
	UID               string            `json:"uid"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	CreationTimestamp Time              `json:"creationTimestamp"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

// WorkflowSpec keeps the template reference, a fallback for the pipeline name, and the arguments
// the run was submitted with.
type WorkflowSpec struct {
	WorkflowTemplateRef *WorkflowTemplateRef `json:"workflowTemplateRef,omitempty"`
	Arguments           Arguments            `json:"arguments"`
}

// Arguments of a workflow.
type Arguments struct {
	Parameters []Parameter `json:"parameters,omitempty"`
}

// Parameter is a workflow argument.
type Parameter struct {
	Name  string     `json:"name"`
	Value *AnyString `json:"value,omitempty"`
}

// AnyString is a parameter value: written as a string by the server, but a hand-written manifest
// may hold a number or a boolean, read as Argo reads them. Any other JSON is kept as its text
// rather than failing the page it is on (Argo itself would read it as empty).
type AnyString string

// UnmarshalJSON implements json.Unmarshaler.
func (a *AnyString) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case string:
		*a = AnyString(v)
	case float64:
		*a = AnyString(strconv.FormatFloat(v, 'f', -1, 64))
	case bool:
		*a = AnyString(strconv.FormatBool(v))
	default:
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			return err
		}
		*a = AnyString(c.String())
	}
	return nil
}

// WorkflowTemplateRef names the (cluster) workflow template a workflow runs.
type WorkflowTemplateRef struct {
	Name         string `json:"name"`
	ClusterScope bool   `json:"clusterScope,omitempty"`
}

// WorkflowStatus is the run's state. Nodes stay raw until the run is known to have changed:
// decoding every node of every listed run would cost far more than the poll needs.
type WorkflowStatus struct {
	Phase      string `json:"phase"`
	StartedAt  Time   `json:"startedAt"`
	FinishedAt Time   `json:"finishedAt"`
	Message    string `json:"message,omitempty"`
	// Nodes is the JSON object of nodes by id (absent for archived rows from Argo 3.5.7 on).
	Nodes json.RawMessage `json:"nodes,omitempty"`
	// CompressedNodes is base64 of gzipped Nodes JSON, used by the controller above ~1 MiB.
	CompressedNodes string `json:"compressedNodes,omitempty"`
	// OffloadNodeStatusVersion is set when nodes live in the controller's SQL database.
	OffloadNodeStatusVersion string `json:"offloadNodeStatusVersion,omitempty"`
	// packed is Nodes gzipped while the row waits for Load: a full listing keeps the nodes of
	// every changed row, and node JSON shrinks about tenfold.
	packed []byte
}

// pack gzips Nodes into packed, so a listed row holds a tenth of its nodes' bytes until Load.
func (s *WorkflowStatus) pack() {
	if !hasNodes(s.Nodes) {
		return
	}
	p := packers.Get().(*packer)
	defer packers.Put(p)
	p.buf.Reset()
	p.zw.Reset(&p.buf)
	_, _ = p.zw.Write(s.Nodes)
	_ = p.zw.Close()
	s.packed, s.Nodes = bytes.Clone(p.buf.Bytes()), nil // exactly sized: kept until Load
}

// packer is a reused gzip writer and its buffer: a new writer allocates about a megabyte, which
// a listing of a hundred thousand rows would allocate a hundred thousand times.
type packer struct {
	buf bytes.Buffer
	zw  *gzip.Writer
}

var packers = sync.Pool{New: func() any {
	p := &packer{}
	p.zw, _ = gzip.NewWriterLevel(&p.buf, gzip.BestSpeed)
	return p
}}

// hasNodeData reports whether the status carries nodes in either form.
func (s *WorkflowStatus) hasNodeData() bool {
	return hasNodes(s.Nodes) || s.CompressedNodes != "" || len(s.packed) > 0
}

func hasNodes(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// Node is one entry of status.nodes.
type Node struct {
	ID                string           `json:"id"`
	Name              string           `json:"name"`
	DisplayName       string           `json:"displayName,omitempty"`
	Type              string           `json:"type"`
	TemplateName      string           `json:"templateName,omitempty"`
	TemplateRef       *TemplateRef     `json:"templateRef,omitempty"`
	Phase             string           `json:"phase,omitempty"`
	BoundaryID        string           `json:"boundaryID,omitempty"`
	Message           string           `json:"message,omitempty"`
	StartedAt         Time             `json:"startedAt"`
	FinishedAt        Time             `json:"finishedAt"`
	ResourcesDuration map[string]int64 `json:"resourcesDuration,omitempty"`
	Children          []string         `json:"children,omitempty"`
	HostNodeName      string           `json:"hostNodeName,omitempty"`
}

// TemplateRef points at a template of a (cluster) workflow template.
type TemplateRef struct {
	Name         string `json:"name"`
	Template     string `json:"template"`
	ClusterScope bool   `json:"clusterScope,omitempty"`
}

// Template is the template the node ran: templateRef.template, else templateName (what Argo
// itself uses to name pods).
func (n *Node) Template() string {
	if n.TemplateRef != nil && n.TemplateRef.Template != "" {
		return n.TemplateRef.Template
	}
	return n.TemplateName
}

// Time is a Kubernetes timestamp: RFC 3339, or null (or "") for "not yet".
type Time struct{ time.Time }

// UnmarshalJSON accepts null and "" as the zero time.
func (t *Time) UnmarshalJSON(b []byte) error {
	if s := string(b); s == "null" || s == `""` {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time %s is not a string", b)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("time %q is not RFC 3339", s)
	}
	t.Time = v.UTC()
	return nil
}

// MarshalJSON writes null for the zero time, as Kubernetes does.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

// ptr returns nil for the zero time, so "not yet" is absent in events rather than year 1.
func (t Time) ptr() *time.Time {
	if t.IsZero() {
		return nil
	}
	v := t.Time
	return &v
}

// maxNodesJSON bounds a decompressed compressedNodes: the controller compresses what exceeds
// etcd's ~1.5 MiB limit, so hundreds of MiB can only be a corrupt or hostile payload.
const maxNodesJSON = 512 << 20

// errNoNodes marks a status that carries no nodes at all.
var errNoNodes = errors.New("workflow status has no nodes")

// DecodeNodes returns the status's nodes by id, from status.nodes or status.compressedNodes.
func (s *WorkflowStatus) DecodeNodes() (map[string]Node, error) {
	switch {
	case hasNodes(s.Nodes):
		var nodes map[string]Node
		if err := json.Unmarshal(s.Nodes, &nodes); err != nil {
			return nil, fmt.Errorf("decode status.nodes: %w", err)
		}
		return nodes, nil
	case s.CompressedNodes != "":
		return decodeCompressedNodes(s.CompressedNodes)
	case len(s.packed) > 0:
		return decodeGzipNodes(bytes.NewReader(s.packed), "nodes kept from the listing", "gzip")
	}
	return nil, errNoNodes
}

func decodeCompressedNodes(b64 string) (map[string]Node, error) {
	return decodeGzipNodes(base64.NewDecoder(base64.StdEncoding, bytes.NewReader([]byte(b64))), "status.compressedNodes", "base64 of gzip")
}

// decodeGzipNodes decodes gzipped node JSON; what names the field and format what it should be.
func decodeGzipNodes(r io.Reader, what, format string) (map[string]Node, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("decode %s: not %s: %w", what, format, err)
	}
	defer zr.Close()
	lr := &io.LimitedReader{R: zr, N: maxNodesJSON + 1}
	var nodes map[string]Node
	if err := json.NewDecoder(lr).Decode(&nodes); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("decode %s: more than %d MiB uncompressed", what, maxNodesJSON>>20)
		}
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return nodes, nil
}

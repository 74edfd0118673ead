package argosim

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

// ErrNotFound is returned by the scripting methods for a workflow that does not exist.
var ErrNotFound = errors.New("workflow not found")

// NodeStorage is how a workflow's nodes are stored, which decides how they are served.
type NodeStorage int

const (
	// StoragePlain: status.nodes, as for most workflows.
	StoragePlain NodeStorage = iota
	// StorageCompressed: status.compressedNodes (base64 of gzipped JSON of the nodes map) and no
	// status.nodes, as the controller stores workflows above 1 MiB. The list endpoint serves it
	// as is; GET decompresses.
	StorageCompressed
	// StorageOffloaded: nodes offloaded to the SQL database, status.offloadNodeStatusVersion
	// set. Both list and GET re-attach the nodes (the list keeps the version field).
	StorageOffloaded
)

// Options configure a Server.
type Options struct {
	// Token, when set, must be sent as "Authorization: Bearer <token>"; anything else is 401.
	Token string
	// Seed makes generated uids and names reproducible.
	Seed uint64
	// NoArchiveFallback makes GET /api/v1/workflows/{ns}/{name} answer 404 for a workflow that
	// only the archive still holds, as Argo before 3.5.7 did (and as 3.5.7+ does for a caller
	// without `get` permission). By default GET falls back to the archive, as 3.5.7+ does.
	NoArchiveFallback bool
	// NoTruth turns off the ground-truth record (for benchmarks that do not need it).
	NoTruth bool
}

// Server is a simulated Argo Server: a scriptable store of workflows (live and archived) and
// an http.Handler that serves them exactly like Argo Server 3.6/3.7, pitfalls included.
// All methods are safe for concurrent use.
type Server struct {
	clock clock.Clock
	opts  Options

	mu      sync.RWMutex
	rv      int64              // cluster-wide resourceVersion
	live    map[string]*record // uid → current version of a workflow that exists in the cluster
	names   map[string]string  // namespace/name → uid of the live workflow
	archive map[string]*record // uid → archived copy (survives deletion)
	rng     *rand.Rand

	hookMu    sync.Mutex
	listHooks []func(ListCall)
	syncers   []func()
	listCalls int

	faults faultQueue
	stats  stats
	truth  *truthLog

	writes int64 // changes to live or archive, for the list cache
	cache  listCache

	closeOnce sync.Once
	closed    chan struct{}
	hangHook  func() // tests: called when a request starts hanging
}

// NewServer returns an empty simulated Argo Server on clk.
func NewServer(clk clock.Clock, opts Options) *Server {
	s := &Server{
		clock:   clk,
		opts:    opts,
		live:    map[string]*record{},
		names:   map[string]string{},
		archive: map[string]*record{},
		rng:     rand.New(rand.NewPCG(opts.Seed, 0x5eed)),
		closed:  make(chan struct{}),
	}
	if !opts.NoTruth {
		s.truth = newTruthLog()
	}
	return s
}

// Close releases requests held by a FaultHang. The server keeps answering afterwards.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

// nodeSource supplies a stored version's nodes. Implementations are immutable.
type nodeSource interface {
	nodes() Nodes
}

type plainNodes Nodes

func (p plainNodes) nodes() Nodes { return Nodes(p) }

// record is one stored version of a workflow. It is never modified once stored (a change stores
// a new record), so answers are encoded from records without holding the lock.
type record struct {
	wf      Workflow // without Status.Nodes and CompressedNodes: they come from src when served
	src     nodeSource
	storage NodeStorage
	cache   *nodeCache
	rv      int64
}

// nodeCache holds what is derived from a record's nodes on demand.
type nodeCache struct {
	once       sync.Once
	compressed string
	err        error
}

func newRecord(wf Workflow, src nodeSource, storage NodeStorage) *record {
	wf.Status.Nodes, wf.Status.CompressedNodes = nil, ""
	return &record{wf: wf, src: src, storage: storage, cache: &nodeCache{}}
}

// clone returns a mutable copy that shares the (immutable) nodes and maps until replaced.
func (r *record) clone() *record {
	c := *r
	c.cache = &nodeCache{}
	return &c
}

func (r *record) nodes() Nodes {
	if r.src == nil {
		return nil
	}
	return r.src.nodes()
}

func (r *record) compressedNodes() (string, error) {
	r.cache.once.Do(func() { r.cache.compressed, r.cache.err = compressNodes(r.nodes()) })
	return r.cache.compressed, r.cache.err
}

func (r *record) key() string { return r.wf.Metadata.Namespace + "/" + r.wf.Metadata.Name }

// completed reports whether the controller has marked the workflow completed.
func (r *record) completed() bool { return r.wf.Metadata.Labels[LabelCompleted] == "true" }

// gzipWriters are reused: a gzip writer allocates about a megabyte of compressor state.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// compressNodes encodes nodes like the controller's packer: base64 of gzipped JSON.
func compressNodes(n Nodes) (string, error) {
	raw, err := json.Marshal(n)
	if err != nil {
		return "", fmt.Errorf("encode nodes: %w", err)
	}
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(raw); err != nil {
		return "", fmt.Errorf("compress nodes: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("compress nodes: %w", err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// DecodeCompressedNodes decodes a status.compressedNodes value.
func DecodeCompressedNodes(s string) (Nodes, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("compressedNodes is not base64: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("compressedNodes is not gzip: %w", err)
	}
	defer zr.Close()
	var n Nodes
	if err := json.NewDecoder(zr).Decode(&n); err != nil {
		return nil, fmt.Errorf("compressedNodes is not a JSON nodes map: %w", err)
	}
	return n, nil
}

// offloadVersion is the version string the SQL offload repository gives a node set.
func offloadVersion(n Nodes) string {
	raw, _ := json.Marshal(n)
	return "fnv:" + strconv.FormatUint(uint64(fnv32a(string(raw))), 10)
}

// copyWorkflow deep-copies wf through its JSON form, which also normalises times the way the
// Kubernetes API does (UTC, whole seconds).
func copyWorkflow(wf *Workflow) (Workflow, error) {
	raw, err := json.Marshal(wf)
	if err != nil {
		return Workflow{}, fmt.Errorf("encode workflow: %w", err)
	}
	var out Workflow
	if err := json.Unmarshal(raw, &out); err != nil {
		return Workflow{}, fmt.Errorf("decode workflow: %w", err)
	}
	return out, nil
}

func terminalPhase(p string) bool {
	return p == WorkflowSucceeded || p == WorkflowFailed || p == WorkflowError
}

// setControllerLabels keeps the labels the controller maintains in step with the phase.
func setControllerLabels(labels map[string]string, phase string) map[string]string {
	if phase == WorkflowUnknown {
		return labels
	}
	out := cloneMap(labels)
	out[LabelPhase] = phase
	out[LabelCompleted] = strconv.FormatBool(terminalPhase(phase))
	return out
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// k8sNameChars is the alphabet Kubernetes uses for generateName suffixes.
const k8sNameChars = "bcdfghjklmnpqrstvwxz2456789"

func randomSuffix(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = k8sNameChars[r.IntN(len(k8sNameChars))]
	}
	return string(b)
}

func newUID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Put creates a workflow, or replaces the live one with the same namespace and name, the way
// the controller would have written it: the server assigns uid (unless given), name from
// generateName (unless given), creationTimestamp (unless given), resourceVersion and generation,
// and sets the phase and completed labels from status.phase. Nodes may be given as
// status.compressedNodes (stored compressed) or with status.offloadNodeStatusVersion set
// (stored offloaded). The stored workflow is returned.
func (s *Server) Put(wf Workflow) (Workflow, error) {
	in, err := copyWorkflow(&wf)
	if err != nil {
		return Workflow{}, err
	}
	m := &in.Metadata
	if m.Namespace == "" {
		return Workflow{}, errors.New("put workflow: metadata.namespace is required")
	}
	if m.Name == "" && m.GenerateName == "" {
		return Workflow{}, errors.New("put workflow: metadata.name or metadata.generateName is required")
	}
	src, storage, err := inputNodes(&in.Status)
	if err != nil {
		return Workflow{}, fmt.Errorf("put workflow %s/%s: %w", m.Namespace, m.Name, err)
	}
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Name == "" {
		m.Name = s.uniqueName(m.Namespace, m.GenerateName)
	}
	prev := s.live[s.names[m.Namespace+"/"+m.Name]]
	switch {
	case prev != nil && m.UID != "" && m.UID != prev.wf.Metadata.UID:
		return Workflow{}, fmt.Errorf("put workflow %s/%s: uid %s differs from the live workflow's %s", m.Namespace, m.Name, m.UID, prev.wf.Metadata.UID)
	case prev != nil:
		m.UID = prev.wf.Metadata.UID
	case m.UID == "":
		m.UID = newUID(s.rng)
	}
	if _, taken := s.live[m.UID]; taken && prev == nil {
		return Workflow{}, fmt.Errorf("put workflow %s/%s: uid %s is used by another workflow", m.Namespace, m.Name, m.UID)
	}
	if m.CreationTimestamp.IsZero() {
		m.CreationTimestamp = NewTime(now)
		if prev != nil {
			m.CreationTimestamp = prev.wf.Metadata.CreationTimestamp
		}
	}
	m.Labels = setControllerLabels(m.Labels, in.Status.Phase)
	rec := newRecord(in, src, storage)
	s.commitLocked(prev, rec, now, true)
	return s.viewLocked(rec), nil
}

// inputNodes reads the nodes of a workflow given to Put.
func inputNodes(st *WorkflowStatus) (nodeSource, NodeStorage, error) {
	switch {
	case st.CompressedNodes != "" && len(st.Nodes) == 0:
		n, err := DecodeCompressedNodes(st.CompressedNodes)
		if err != nil {
			return nil, 0, err
		}
		return plainNodes(n), StorageCompressed, nil
	case st.OffloadNodeStatusVersion != "":
		return plainNodes(st.Nodes), StorageOffloaded, nil
	case st.Nodes != nil:
		return plainNodes(st.Nodes), StoragePlain, nil
	}
	return nil, StoragePlain, nil
}

func (s *Server) uniqueName(ns, generateName string) string {
	for {
		name := generateName + randomSuffix(s.rng, 5)
		if _, taken := s.names[ns+"/"+name]; !taken {
			return name
		}
	}
}

// commitLocked stores next as the live version (prev is the version it replaces, or nil),
// bumping the cluster resourceVersion, and records the transitions it exposes.
// statusChange bumps metadata.generation (Workflow has no status subresource, so any spec or
// status write does); label-only writes do not.
func (s *Server) commitLocked(prev, next *record, visibleAt time.Time, statusChange bool) {
	s.rv++
	s.writes++
	next.rv = s.rv
	m := &next.wf.Metadata
	m.ResourceVersion = strconv.FormatInt(s.rv, 10)
	switch {
	case prev == nil:
		m.Generation = 1
	case statusChange:
		m.Generation = prev.wf.Metadata.Generation + 1
	default:
		m.Generation = prev.wf.Metadata.Generation
	}
	if prev != nil && prev.key() != next.key() {
		delete(s.names, prev.key())
	}
	s.live[m.UID] = next
	s.names[next.key()] = m.UID
	if s.truth != nil {
		s.truth.record(prev, next, visibleAt, statusChange)
	}
}

// viewLocked returns a detached copy of a live record with its nodes hydrated.
func (s *Server) viewLocked(r *record) Workflow {
	wf := r.wf
	wf.Status.Nodes = r.nodes()
	out, err := copyWorkflow(&wf)
	if err != nil {
		panic(err) // the simulator's own types always encode
	}
	return out
}

func (s *Server) liveLocked(namespace, name string) (*record, error) {
	r := s.live[s.names[namespace+"/"+name]]
	if r == nil {
		return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, namespace, name)
	}
	return r, nil
}

// Update applies fn to a copy of the live workflow and stores the result as a controller
// write (new resourceVersion and generation, labels following status.phase).
func (s *Server) Update(namespace, name string, fn func(*Workflow) error) (Workflow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, err := s.liveLocked(namespace, name)
	if err != nil {
		return Workflow{}, err
	}
	wf := s.viewLocked(prev)
	if err := fn(&wf); err != nil {
		return Workflow{}, fmt.Errorf("update workflow %s/%s: %w", namespace, name, err)
	}
	in, err := copyWorkflow(&wf)
	if err != nil {
		return Workflow{}, err
	}
	in.Metadata.UID, in.Metadata.Namespace, in.Metadata.Name = prev.wf.Metadata.UID, namespace, name
	in.Metadata.Labels = setControllerLabels(in.Metadata.Labels, in.Status.Phase)
	next := newRecord(in, nil, prev.storage)
	if in.Status.Nodes != nil {
		next.src = plainNodes(in.Status.Nodes)
	}
	if next.storage == StorageOffloaded {
		next.wf.Status.OffloadNodeStatusVersion = offloadVersion(next.nodes())
	}
	s.commitLocked(prev, next, s.clock.Now(), true)
	return s.viewLocked(next), nil
}

// SetNode sets one node's phase and times (zero times are cleared) and stores the workflow.
func (s *Server) SetNode(namespace, name, nodeID string, phase NodePhase, startedAt, finishedAt time.Time) error {
	_, err := s.Update(namespace, name, func(wf *Workflow) error {
		n, ok := wf.Status.Nodes[nodeID]
		if !ok {
			return fmt.Errorf("no node %q", nodeID)
		}
		n.Phase, n.StartedAt, n.FinishedAt = phase, NewTime(startedAt), NewTime(finishedAt)
		wf.Status.Nodes[nodeID] = n
		return nil
	})
	return err
}

// SetNodeStorage changes how the workflow's nodes are stored (a controller write).
func (s *Server) SetNodeStorage(namespace, name string, storage NodeStorage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, err := s.liveLocked(namespace, name)
	if err != nil {
		return err
	}
	next := prev.clone()
	next.storage = storage
	next.wf.Status.OffloadNodeStatusVersion = ""
	if storage == StorageOffloaded {
		next.wf.Status.OffloadNodeStatusVersion = offloadVersion(prev.nodes())
	}
	s.commitLocked(prev, next, s.clock.Now(), true)
	return nil
}

// Delete removes a live workflow, as the TTL controller or garbage collection does. Its archived
// copy, if any, stays.
func (s *Server) Delete(namespace, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.liveLocked(namespace, name)
	if err != nil {
		return err
	}
	s.deleteLocked(r)
	return nil
}

func (s *Server) deleteLocked(r *record) {
	s.rv++ // a deletion is a write in Kubernetes too
	s.writes++
	delete(s.live, r.wf.Metadata.UID)
	delete(s.names, r.key())
}

// Archive copies a completed workflow into the workflow archive (with its nodes, labelled
// Persisted) and labels the live workflow Archived. From then on the list endpoint serves it
// from the archive, without status.nodes and without resourceVersion (Argo 3.5.7+).
func (s *Server) Archive(namespace, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.liveLocked(namespace, name)
	if err != nil {
		return err
	}
	return s.archiveLocked(r, s.clock.Now())
}

func (s *Server) archiveLocked(r *record, at time.Time) error {
	if !r.completed() {
		return fmt.Errorf("archive workflow %s: not completed (phase %q)", r.key(), r.wf.Status.Phase)
	}
	a := r.clone()
	a.wf.Metadata.Labels = cloneMap(r.wf.Metadata.Labels)
	a.wf.Metadata.Labels[LabelArchivingStatus] = ArchivingPersisted
	a.wf.Status.OffloadNodeStatusVersion = ""
	a.storage = StoragePlain // the controller hydrates before archiving
	s.archive[r.wf.Metadata.UID] = a

	next := r.clone()
	next.wf.Metadata.Labels = cloneMap(r.wf.Metadata.Labels)
	next.wf.Metadata.Labels[LabelArchivingStatus] = ArchivingArchived
	s.commitLocked(r, next, at, false)
	return nil
}

// DeleteArchived removes a workflow from the archive (archive TTL).
func (s *Server) DeleteArchived(uid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.archive[uid]; !ok {
		return fmt.Errorf("%w: archived uid %s", ErrNotFound, uid)
	}
	delete(s.archive, uid)
	s.writes++
	return nil
}

// PurgeArchive deletes the archived workflows that finished before t, as the archive TTL
// does, and returns how many it deleted.
func (s *Server) PurgeArchive(t time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for uid, r := range s.archive {
		if r.wf.Status.FinishedAt.Before(t) {
			delete(s.archive, uid)
			n++
		}
	}
	if n > 0 {
		s.writes++
	}
	return n
}

// Retry does what `argo retry` does to a Failed or Error workflow: failed pod nodes are reset
// with the same ids (as the controller re-creates them: Pending, new startedAt), failed Retry
// nodes and the group nodes above them go back to Running, exit-handler nodes are removed, and
// the workflow goes back to Running with a new startedAt and without the completed and
// archiving labels. The same node can then finish a second time.
func (s *Server) Retry(namespace, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, err := s.liveLocked(namespace, name)
	if err != nil {
		return err
	}
	switch prev.wf.Status.Phase {
	case WorkflowFailed, WorkflowError:
	case WorkflowSucceeded:
		return fmt.Errorf("retry %s: to retry a succeeded workflow, set the options restartSuccessful and nodeFieldSelector", prev.key())
	default:
		return fmt.Errorf("retry %s: cannot retry a workflow in phase %s", prev.key(), prev.wf.Status.Phase)
	}
	now := NewTime(s.clock.Now())
	next := prev.clone()
	next.src = plainNodes(retryNodes(name, prev.nodes(), now))
	if next.storage == StorageOffloaded {
		next.wf.Status.OffloadNodeStatusVersion = offloadVersion(next.nodes())
	}
	st := &next.wf.Status
	st.Phase, st.StartedAt, st.FinishedAt, st.Message = WorkflowRunning, now, Time{}, ""
	st.Conditions = []Condition{{Type: "Completed", Status: "False"}}
	labels := cloneMap(prev.wf.Metadata.Labels)
	delete(labels, LabelCompleted)
	delete(labels, LabelArchivingStatus)
	labels[LabelPhase] = WorkflowRunning
	next.wf.Metadata.Labels = labels
	s.commitLocked(prev, next, now.Time, true)
	return nil
}

// Workflow returns the live workflow with its nodes, as stored.
func (s *Server) Workflow(namespace, name string) (Workflow, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, err := s.liveLocked(namespace, name)
	if err != nil {
		return Workflow{}, false
	}
	return s.viewLocked(r), true
}

// ArchivedWorkflow returns the archived copy of a workflow.
func (s *Server) ArchivedWorkflow(uid string) (Workflow, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.archive[uid]
	if !ok {
		return Workflow{}, false
	}
	return s.viewLocked(r), true
}

// ResourceVersion is the cluster's current resourceVersion.
func (s *Server) ResourceVersion() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rv
}

// Count returns how many workflows are live and how many archived.
func (s *Server) Count() (live, archived int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.live), len(s.archive)
}

// ListCall describes a list request, for OnList hooks.
type ListCall struct {
	Call      int // 1 for the first list request the server received
	Namespace string
	Offset    int
	Limit     int
}

// OnList registers a hook called for every list request before its page is computed, outside
// the server's lock: a test can insert a workflow "while a listing is in progress", between
// two page requests, to shift the offsets of later pages.
func (s *Server) OnList(hook func(ListCall)) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.listHooks = append(s.listHooks, hook)
}

// onRequest registers fn to run before every request (estates catching up with the clock).
func (s *Server) onRequest(fn func()) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.syncers = append(s.syncers, fn)
}

func (s *Server) beforeRequest() {
	s.hookMu.Lock()
	fns := slices.Clone(s.syncers)
	s.hookMu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

func (s *Server) beforeList(ns string, o listOptions) {
	s.hookMu.Lock()
	s.listCalls++
	call := ListCall{Call: s.listCalls, Namespace: ns, Offset: o.offset, Limit: o.limit}
	hooks := slices.Clone(s.listHooks)
	s.hookMu.Unlock()
	for _, h := range hooks {
		h(call)
	}
}

package argosim

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// A pipeline is what many runs share: a template tree (nested DAGs and steps, retried and
// skippable tasks, an optional exit handler), the workflow spec built from it, its origin
// (workflow template, cron workflow or plain generateName) and its labels.

type tmplKind uint8

const (
	kindPod tmplKind = iota
	kindDAG
	kindSteps
)

type tmpl struct {
	name    string
	kind    tmplKind
	retries int      // pod templates: retryStrategy.limit
	tasks   []*task  // kindDAG
	groups  [][]task // kindSteps
}

// task is a DAG task or a step.
type task struct {
	name string
	t    *tmpl
	deps []int // DAG: indexes of the tasks it depends on
	// onFail is, for a DAG task, the index of the task whose failure it handles
	// (depends: "x.Failed"): it is Omitted when that task does not fail. -1 otherwise.
	onFail int
	when   string // a step whose `when` evaluates false: Skipped
}

type origin uint8

const (
	originGenerateName origin = iota
	originTemplate
	originCron
)

type pipeline struct {
	name      string
	namespace string
	origin    origin
	root      *tmpl
	onExit    *tmpl
	spec      WorkflowSpec
	labels    map[string]string
	annots    map[string]string
	strs      map[string]string // interned node display names
}

func (p *pipeline) intern(s string) string {
	if v, ok := p.strs[s]; ok {
		return v
	}
	p.strs[s] = s
	return s
}

var podWords = []string{"fetch", "validate", "transform", "train", "score", "load", "publish", "aggregate", "index", "export", "compact", "backup", "enrich", "dedupe", "report"}
var pipelineWords = []string{"etl", "ml", "billing", "search", "ingest", "reporting", "backfill", "features", "events", "catalog"}
var teams = []string{"data", "ml", "platform", "finance"}

// shaper builds the template tree of one pipeline within a node budget.
type shaper struct {
	rng      *rand.Rand
	cfg      *EstateConfig
	pods     []*tmpl // plain pod templates
	retried  []*tmpl // pod templates with a retryStrategy
	nested   int
	template []*tmpl // every template, in creation order
}

func (sh *shaper) podTemplate(retry bool) *tmpl {
	pool := &sh.pods
	if retry {
		pool = &sh.retried
	}
	if len(*pool) < 4 {
		name := []string{"python", "spark", "bq-load", "http-call"}[len(*pool)]
		t := &tmpl{name: name, kind: kindPod}
		if retry {
			t.name, t.retries = name+"-retry", 2
		}
		*pool = append(*pool, t)
		sh.template = append(sh.template, t)
	}
	return (*pool)[sh.rng.IntN(len(*pool))]
}

// cost is the number of nodes one run of t creates when nothing fails.
func cost(t *tmpl) int {
	switch t.kind {
	case kindDAG:
		n := 1
		for _, tk := range t.tasks {
			n += cost(tk.t)
		}
		return n
	case kindSteps:
		n := 1
		for _, g := range t.groups {
			n++
			for _, st := range g {
				n += cost(st.t)
			}
		}
		return n
	}
	if t.retries > 0 {
		return 2 // Retry node and its first attempt
	}
	return 1
}

// child returns the template of a new task: a pod, or a nested DAG or steps template.
func (sh *shaper) child(budget, depth int) *tmpl {
	if depth < 2 && budget >= 6 && sh.rng.Float64() < 0.2 {
		sh.nested++
		sub := 3 + sh.rng.IntN(min(budget-2, 6))
		if sh.rng.IntN(2) == 0 {
			return sh.dag("sub-dag-"+strconv.Itoa(sh.nested), sub, depth+1)
		}
		return sh.steps("sub-steps-"+strconv.Itoa(sh.nested), sub, depth+1)
	}
	return sh.podTemplate(sh.rng.Float64() < sh.cfg.RetryRate)
}

func (sh *shaper) taskName(i int) string {
	return podWords[sh.rng.IntN(len(podWords))] + "-" + strconv.Itoa(i)
}

func (sh *shaper) dag(name string, budget, depth int) *tmpl {
	t := &tmpl{name: name, kind: kindDAG}
	sh.template = append(sh.template, t)
	for used := 1; used < budget || len(t.tasks) == 0; used = cost(t) {
		tk := &task{name: sh.taskName(len(t.tasks)), onFail: -1}
		// Dependencies are on earlier tasks, never on failure handlers.
		var cands []int
		for j, prev := range t.tasks {
			if prev.onFail < 0 {
				cands = append(cands, j)
			}
		}
		if n := len(cands); n > 0 && sh.rng.Float64() < 0.85 {
			tk.deps = append(tk.deps, cands[n-1-sh.rng.IntN(min(n, 3))])
			if n > 2 && sh.rng.Float64() < 0.3 {
				if d := cands[sh.rng.IntN(n)]; d != tk.deps[0] {
					tk.deps = append(tk.deps, d)
				}
			}
		}
		if n := len(cands); n > 0 && sh.rng.Float64() < sh.cfg.SkipRate {
			// A failure handler: runs only if its task fails, else Omitted.
			tk.onFail, tk.deps = cands[n-1], []int{cands[n-1]}
			tk.name = "on-failure-" + strconv.Itoa(len(t.tasks))
			tk.t = sh.podTemplate(false)
		} else {
			tk.t = sh.child(budget-used, depth)
		}
		t.tasks = append(t.tasks, tk)
	}
	return t
}

func (sh *shaper) steps(name string, budget, depth int) *tmpl {
	t := &tmpl{name: name, kind: kindSteps}
	sh.template = append(sh.template, t)
	i := 0
	for used := 1; used < budget || len(t.groups) == 0; used = cost(t) {
		var g []task
		for range 1 + sh.rng.IntN(3) {
			st := task{name: sh.taskName(i), onFail: -1}
			i++
			if sh.rng.Float64() < sh.cfg.SkipRate {
				st.when = "{{workflow.parameters.mode}} == full"
				st.t = sh.podTemplate(false)
			} else {
				st.t = sh.child(budget-used, depth)
			}
			g = append(g, st)
		}
		t.groups = append(t.groups, g)
	}
	return t
}

// newPipeline builds pipeline number i of an estate, of about `tasks` nodes.
func newPipeline(rng *rand.Rand, cfg *EstateConfig, i, tasks int) *pipeline {
	sh := &shaper{rng: rng, cfg: cfg}
	p := &pipeline{
		name:      fmt.Sprintf("%s-%d", pipelineWords[i%len(pipelineWords)], i),
		namespace: cfg.Namespaces[i%len(cfg.Namespaces)],
		origin:    origin(rng.IntN(3)),
		strs:      map[string]string{},
	}
	budget := max(tasks, 2)
	exit := rng.Float64() < cfg.ExitHandlerShare && budget > 3
	if exit {
		budget--
	}
	if rng.IntN(5) < 3 {
		p.root = sh.dag("main", budget, 0)
	} else {
		p.root = sh.steps("main", budget, 0)
	}
	if exit {
		p.onExit = &tmpl{name: "exit-handler", kind: kindPod}
		sh.template = append(sh.template, p.onExit)
	}
	p.labels = map[string]string{"team": teams[i%len(teams)]}
	switch p.origin {
	case originTemplate:
		p.labels[LabelWorkflowTemplate] = p.name
	case originCron:
		p.labels[LabelCronWorkflow] = p.name
	}
	for k, v := range cfg.Labels {
		p.labels[k] = v
	}
	p.annots = map[string]string{AnnotationPodNameFormat: "v2"}
	p.spec = buildSpec(p, sh.template, int(cfg.TTL/time.Second))
	return p
}

// buildSpec renders the template tree as the workflow's spec.
func buildSpec(p *pipeline, all []*tmpl, ttl int) WorkflowSpec {
	spec := WorkflowSpec{
		Entrypoint:         "main",
		Arguments:          Arguments{Parameters: []Parameter{{Name: "mode", Value: ptr("incremental")}}},
		ServiceAccountName: "argo-workflow",
		PodGC:              &PodGC{Strategy: "OnPodSuccess"},
	}
	if ttl > 0 {
		spec.TTLStrategy = &TTLStrategy{SecondsAfterCompletion: ptr(int32(ttl))}
	}
	if p.onExit != nil {
		spec.OnExit = p.onExit.name
	}
	if p.origin == originTemplate || p.origin == originCron {
		// Submitted from a template: the spec references it (the templates live there).
		spec.WorkflowTemplateRef = &WorkflowTemplateRef{Name: p.name}
		return spec
	}
	for _, t := range all {
		spec.Templates = append(spec.Templates, wireTemplate(t))
	}
	return spec
}

func wireTemplate(t *tmpl) Template {
	out := Template{Name: t.name}
	switch t.kind {
	case kindPod:
		out.Container = &Container{Name: "main", Image: "acme/jobs-" + t.name + ":1.4.2", Command: []string{"/bin/run"}, Args: []string{"--task", "{{inputs.parameters.task}}"}}
		out.Inputs = Inputs{Parameters: []Parameter{{Name: "task"}}}
		if t.retries > 0 {
			out.RetryStrategy = &RetryStrategy{Limit: ptr(t.retries), RetryPolicy: "OnFailure"}
		}
	case kindDAG:
		out.DAG = &DAG{}
		for _, tk := range t.tasks {
			dt := DAGTask{Name: tk.name, Template: tk.t.name}
			switch {
			case tk.onFail >= 0:
				dt.Depends = t.tasks[tk.onFail].name + ".Failed"
			default:
				for _, d := range tk.deps {
					dt.Dependencies = append(dt.Dependencies, t.tasks[d].name)
				}
			}
			out.DAG.Tasks = append(out.DAG.Tasks, dt)
		}
	case kindSteps:
		for _, g := range t.groups {
			var ws []Step
			for _, st := range g {
				ws = append(ws, Step{Name: st.name, Template: st.t.name, When: st.when})
			}
			out.Steps = append(out.Steps, ws)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

package deploytest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runService is a planned google_cloud_run_v2_service: with datadog_site, the trace function
// with DataDog's serverless-init agent as a sidecar.
type runService struct {
	Name     string
	Ingress  string
	Template []struct {
		ServiceAccount                string      `json:"service_account"`
		Timeout                       string      `json:"timeout"`
		MaxInstanceRequestConcurrency int         `json:"max_instance_request_concurrency"`
		VPCAccess                     []any       `json:"vpc_access"`
		Containers                    []container `json:"containers"`
	}
}

type container struct {
	Name      string
	Image     string
	DependsOn []string `json:"depends_on"`
	Ports     []struct {
		ContainerPort int `json:"container_port"`
	}
	Env []struct {
		Name        string
		Value       string
		ValueSource []struct {
			SecretKeyRef []struct{ Secret, Version string } `json:"secret_key_ref"`
		} `json:"value_source"`
	}
	Resources []struct {
		Limits  map[string]string
		CPUIdle *bool `json:"cpu_idle"`
	}
	StartupProbe []struct {
		TCPSocket []struct{ Port int } `json:"tcp_socket"`
		HTTPGet   []struct{ Port int } `json:"http_get"`
	} `json:"startup_probe"`
}

// ingress returns the container that receives the requests: the one with a port.
func (s *runService) ingress() *container {
	for i, c := range s.Template[0].Containers {
		if len(c.Ports) > 0 {
			return &s.Template[0].Containers[i]
		}
	}
	return &container{}
}

// sidecars returns the other containers.
func (s *runService) sidecars() []*container {
	var out []*container
	for i, c := range s.Template[0].Containers {
		if len(c.Ports) == 0 {
			out = append(out, &s.Template[0].Containers[i])
		}
	}
	return out
}

func (s *runService) entryPoint() string { return s.ingress().env()["FUNCTION_TARGET"] }

// env returns the container's plain variables.
func (c *container) env() map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		if len(e.ValueSource) == 0 {
			out[e.Name] = e.Value
		}
	}
	return out
}

// secretEnv returns the container's variables that come from Secret Manager: name -> secret.
func (c *container) secretEnv() map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		for _, vs := range e.ValueSource {
			for _, ref := range vs.SecretKeyRef {
				out[e.Name] = ref.Secret
			}
		}
	}
	return out
}

// asServiceConfig gives the container's environment the shape of a function's, for checkEnv.
func (c *container) asServiceConfig() serviceConfig {
	sc := serviceConfig{EnvironmentVariables: c.env()}
	for name, secret := range c.secretEnv() {
		sc.SecretEnvironmentVariables = append(sc.SecretEnvironmentVariables, struct{ Key, Secret, Version string }{name, secret, "latest"})
	}
	return sc
}

func (c *container) probePort() int {
	for _, p := range c.StartupProbe {
		for _, s := range p.TCPSocket {
			return s.Port
		}
		for _, h := range p.HTTPGet {
			return h.Port
		}
	}
	return 0
}

// timeoutOf returns the request timeout of the function or service called name.
func (d *deployment) timeoutOf(name string) (int, bool) {
	if f := d.functions[name]; f != nil {
		return f.ServiceConfig[0].TimeoutSeconds, true
	}
	if s := d.services[name]; s != nil {
		timeout, err := time.ParseDuration(s.Template[0].Timeout)
		return int(timeout.Seconds()), err == nil
	}
	return 0, false
}

// variable decodes a variable of the plan; it reports whether the variable is set (not null).
func (d *deployment) variable(t *testing.T, name string, v any) bool {
	t.Helper()
	raw, ok := d.plan.Variables[name]
	if !ok {
		t.Fatalf("the plan has no variable %s", name)
	}
	if string(raw.Value) == "null" {
		return false
	}
	if err := json.Unmarshal(raw.Value, v); err != nil {
		t.Fatalf("variable %s: %v", name, err)
	}
	return true
}

// traceTarget returns the name of what Pub/Sub pushes run deltas for traces to: the pushed
// function or service whose entry point is Trace.
func (d *deployment) traceTarget(t *testing.T) string {
	t.Helper()
	var out []string
	for name := range d.pushed() {
		if f := d.functions[name]; f != nil && f.BuildConfig[0].EntryPoint == "Trace" {
			out = append(out, name)
		}
		if s := d.services[name]; s != nil && s.entryPoint() == "Trace" {
			out = append(out, name)
		}
	}
	if len(out) != 1 {
		t.Fatalf("Pub/Sub pushes to %d trace functions (%v), want 1", len(out), out)
	}
	return out[0]
}

// checkDataDog checks the trace function's agent in the configured mode: the serverless-init
// sidecar (datadog_site) or an agent the team runs (datadog_agent_url).
func (d *deployment) checkDataDog(t *testing.T) {
	var site, agentURL string
	sidecar := d.variable(t, "datadog_site", &site)
	external := d.variable(t, "datadog_agent_url", &agentURL)
	if sidecar == external {
		t.Fatalf("datadog_site set: %v, datadog_agent_url set: %v; exactly one must be (variables.tf should have refused this plan)", sidecar, external)
	}
	target := d.traceTarget(t)
	env := d.tracerEnv(t, target)
	d.checkUnifiedTags(t, target, env)
	if sidecar {
		d.checkSidecar(t, target, site)
		return
	}
	// An agent the team runs: the function of old, on the VPC when one is configured.
	if len(d.services) != 0 {
		t.Errorf("datadog_agent_url is set, yet the plan creates Cloud Run services %v", mapKeys(d.services))
	}
	f := d.functions[target]
	if f == nil {
		t.Fatalf("the trace target %s is not a function", target)
	}
	if env["DD_TRACE_AGENT_URL"] != agentURL {
		t.Errorf("%s sends to DD_TRACE_AGENT_URL=%q, want datadog_agent_url %q", target, env["DD_TRACE_AGENT_URL"], agentURL)
	}
	if _, ok := env["DD_SITE"]; ok {
		t.Errorf("%s sets DD_SITE: only the agent talks to DataDog", target)
	}
	var vpc any
	if sc := f.ServiceConfig[0]; d.variable(t, "vpc_access", &vpc) && sc.VPCConnector == "" && sc.DirectVPCEgress == "" {
		t.Errorf("%s has no VPC access: it cannot reach the agent at %s", target, agentURL)
	}
}

// tracerEnv returns the plain environment of the trace target's code.
func (d *deployment) tracerEnv(t *testing.T, target string) map[string]string {
	t.Helper()
	if f := d.functions[target]; f != nil {
		return f.ServiceConfig[0].EnvironmentVariables
	}
	return d.services[target].ingress().env()
}

// checkUnifiedTags requires DataDog's unified service tagging on the tracer: DD_SERVICE named
// after the function, DD_ENV the deployment's environment, DD_VERSION the source archive.
func (d *deployment) checkUnifiedTags(t *testing.T, target string, env map[string]string) {
	t.Helper()
	var environment string
	d.variable(t, "environment", &environment)
	version := archiveVersion(t)
	want := map[string]string{"DD_SERVICE": target, "DD_ENV": environment, "DD_VERSION": version}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s: %s=%q, want %q", target, k, env[k], v)
		}
	}
}

// archiveVersion is the DD_VERSION of the plan's source archive: its SHA-256, shortened.
func archiveVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(os.Getenv(sourceArchiveVar))
	if err != nil {
		t.Fatalf("the archive the plan was made with (%s): %v", sourceArchiveVar, err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:12]
}

func (d *deployment) checkSidecar(t *testing.T, target, site string) {
	s := d.services[target]
	if s == nil {
		t.Fatalf("datadog_site is set, but the trace target %s is not a Cloud Run service with a sidecar", target)
	}
	tmpl := s.Template[0]
	if s.Ingress != "INGRESS_TRAFFIC_INTERNAL_ONLY" {
		t.Errorf("%s has ingress %s; only Pub/Sub push may reach it (INGRESS_TRAFFIC_INTERNAL_ONLY)", target, s.Ingress)
	}
	if len(tmpl.VPCAccess) != 0 {
		t.Errorf("%s has VPC access: the agent beside it needs none", target)
	}
	if tmpl.MaxInstanceRequestConcurrency <= 1 {
		t.Errorf("%s takes %d requests at a time per instance, want more than 1: deliveries that arrive together share an instance's time and the tracer's session", target, tmpl.MaxInstanceRequestConcurrency)
	}
	app, sidecars := s.ingress(), s.sidecars()
	if len(app.Ports) != 1 || len(app.Resources) != 1 {
		t.Fatalf("%s has no container serving one port with resources", target)
	}
	if len(sidecars) != 1 {
		t.Fatalf("%s has %d sidecars, want the DataDog agent only", target, len(sidecars))
	}
	agent := sidecars[0]
	var image string
	d.variable(t, "datadog_serverless_init_image", &image)
	if agent.Image != image || !strings.Contains(image, "/serverless-init") || strings.HasSuffix(image, ":latest") {
		t.Errorf("%s's sidecar runs %q; want the pinned serverless-init image of datadog_serverless_init_image (%q)", target, agent.Image, image)
	}

	// The tracer sends to the agent beside it, which is started and listening first.
	u, err := url.Parse(app.env()["DD_TRACE_AGENT_URL"])
	if err != nil || u.Scheme != "http" || (u.Hostname() != "localhost" && !net.ParseIP(u.Hostname()).IsLoopback()) {
		t.Fatalf("%s's tracer sends to DD_TRACE_AGENT_URL=%q, not to the sidecar on localhost", target, app.env()["DD_TRACE_AGENT_URL"])
	}
	agentPort, _ := strconv.Atoi(u.Port())
	if !slices.Contains(app.DependsOn, agent.Name) {
		t.Errorf("%s's container %s does not depend on the agent %s: a cold start could deliver before the agent listens", target, app.Name, agent.Name)
	}
	if got := agent.probePort(); got != agentPort {
		t.Errorf("%s's agent is healthy on a startup probe of port %d, want its trace intake %d", target, got, agentPort)
	}
	if got := app.probePort(); got != app.Ports[0].ContainerPort {
		t.Errorf("%s's container %s has a startup probe on port %d, want its serving port %d", target, app.Name, got, app.Ports[0].ContainerPort)
	}

	// Unified service tagging on the agent as on the tracer; the site and the key for the agent
	// only, the key from Secret Manager.
	tags, appTags := agent.env(), app.env()
	for _, k := range []string{"DD_SERVICE", "DD_ENV", "DD_VERSION"} {
		if tags[k] == "" || tags[k] != appTags[k] {
			t.Errorf("%s: the agent's %s=%q differs from the tracer's %q", target, k, tags[k], appTags[k])
		}
	}
	if tags["DD_SITE"] != site {
		t.Errorf("%s's agent sends to DD_SITE=%q, want datadog_site %q", target, tags["DD_SITE"], site)
	}
	if _, plain := tags["DD_API_KEY"]; plain {
		t.Errorf("%s gives the agent DD_API_KEY as a plain value", target)
	}
	if key := app.secretEnv()["DD_API_KEY"]; key != "" {
		t.Errorf("%s gives the API key to the function's container too", target)
	}
	secret := agent.secretEnv()["DD_API_KEY"]
	if secret == "" {
		t.Fatalf("%s's agent has no DD_API_KEY from Secret Manager", target)
	}
	d.checkSecretReaders(t, secret, tmpl.ServiceAccount)

	// CPU always allocated: the agent forwards the spans it accepted between requests.
	for _, c := range tmpl.Containers {
		if len(c.Resources) != 1 || c.Resources[0].CPUIdle == nil || *c.Resources[0].CPUIdle {
			t.Errorf("%s's container %s may be throttled between requests (cpu_idle is not false): the agent would hold accepted spans until the next request", target, c.Name)
		}
	}
	if cpu, _ := strconv.ParseFloat(app.Resources[0].Limits["cpu"], 64); cpu < 1 {
		t.Errorf("%s's container %s has %q vCPU; CPU always allocated needs at least 1", target, app.Name, app.Resources[0].Limits["cpu"])
	}

	// The image is the one the function of the same archive was built into.
	if refs := d.plan.References("google_cloud_run_v2_service.trace", "template", "containers", "image"); !slices.Contains(refs, "data.google_cloud_run_v2_service.trace_build") {
		t.Errorf("%s's image does not come from the trace function's build (refs %v)", target, refs)
	}
	if refs := d.plan.References("data.google_cloud_run_v2_service.trace_build", "name"); !slices.Contains(refs, `google_cloudfunctions2_function.function["trace"]`) {
		t.Errorf("the trace image is not read from the trace function's service (refs %v)", refs)
	}
	d.checkImageBuilder(t, target)
	d.checkInvokers(t, target)
}

// checkImageBuilder requires that the functions other than the pushed and scheduled ones (the
// trace image's build) serve nothing: internal ingress, one instance at most.
func (d *deployment) checkImageBuilder(t *testing.T, target string) {
	t.Helper()
	pushed := d.pushed()
	builders := 0
	for name, f := range d.functions {
		if pushed[name] || d.jobs[name] != nil {
			continue
		}
		builders++
		sc := f.ServiceConfig[0]
		if f.BuildConfig[0].EntryPoint != d.services[target].entryPoint() {
			t.Errorf("function %s builds entry point %s, not the trace service's", name, f.BuildConfig[0].EntryPoint)
		}
		if sc.IngressSettings != "ALLOW_INTERNAL_ONLY" {
			t.Errorf("function %s only builds the trace image, yet its ingress is %s", name, sc.IngressSettings)
		}
		if sc.MaxInstanceCount != 1 {
			t.Errorf("function %s only builds the trace image, yet may scale to %d instances", name, sc.MaxInstanceCount)
		}
		if sc.VPCConnector != "" || sc.DirectVPCEgress != "" {
			t.Errorf("function %s only builds the trace image, yet is attached to the VPC", name)
		}
	}
	if builders != 1 {
		t.Errorf("%d functions serve nothing, want 1 (the trace image's build)", builders)
	}
}

// checkInvokers requires that only the push identity may invoke the trace service.
func (d *deployment) checkInvokers(t *testing.T, target string) {
	t.Helper()
	push := ""
	for _, s := range d.subs {
		if s.Name == target && len(s.PushConfig) == 1 && len(s.PushConfig[0].OIDCToken) == 1 {
			push = "serviceAccount:" + s.PushConfig[0].OIDCToken[0].ServiceAccountEmail
		}
	}
	type binding struct{ Name, Role, Member string }
	var grants []string
	for addr, b := range resources[binding](t, d.plan, "google_cloud_run_v2_service_iam_member") {
		if b.Name != target {
			continue
		}
		grants = append(grants, addr)
		// A member known only at apply is checked by what it refers to.
		known := b.Member == push || (b.Member == "" && slices.Contains(d.plan.References(configAddress(addr), "member"), "google_service_account.push.member"))
		if b.Role != "roles/run.invoker" || !known {
			t.Errorf("%s grants %s to %q on %s; only the push identity %s may invoke it", addr, b.Role, b.Member, target, push)
		}
	}
	if len(grants) != 1 {
		t.Errorf("%s has invoker grants %v, want exactly the push identity's", target, grants)
	}
	type binding2 struct{ Role string }
	for addr := range resources[binding2](t, d.plan, "google_cloud_run_v2_service_iam_policy") {
		t.Errorf("%s replaces the IAM policy of a service", addr)
	}
}

// checkSecretReaders requires that the secret be readable by the trace service's account only:
// secrets.tf grants each read as "<secret>/<reader>".
func (d *deployment) checkSecretReaders(t *testing.T, secret, serviceAccount string) {
	t.Helper()
	type grant struct{ Role, Member string }
	var readers []string
	for addr, g := range resources[grant](t, d.plan, "google_secret_manager_secret_iam_member") {
		key := indexOf(d.plan, addr)
		reader, ok := strings.CutPrefix(key, secret+"/")
		if !ok {
			continue
		}
		readers = append(readers, reader)
		if g.Role != "roles/secretmanager.secretAccessor" || (g.Member != "" && g.Member != "serviceAccount:"+serviceAccount) {
			t.Errorf("%s grants %s on %s to %s; only %s reads it", addr, g.Role, secret, g.Member, serviceAccount)
		}
	}
	if len(readers) != 1 || readers[0] != "trace" {
		t.Errorf("secret %s is read by %v; want the trace service's account alone", secret, readers)
	}
	var manage bool
	d.variable(t, "manage_secrets", &manage)
	if manage {
		type managed struct {
			SecretID string `json:"secret_id"`
		}
		found := false
		for _, m := range resources[managed](t, d.plan, "google_secret_manager_secret") {
			found = found || m.SecretID == secret
		}
		if !found {
			t.Errorf("manage_secrets is true, but the plan does not create the DataDog API key's secret %s", secret)
		}
	}
}

// checkAlerting requires that the function-errors policy watch every function and service that
// serves requests (pushed or scheduled), whatever shape the trace function has, and that dead
// letters alert.
func (d *deployment) checkAlerting(t *testing.T) {
	type policy struct {
		Conditions []struct {
			ConditionThreshold []struct{ Filter string } `json:"condition_threshold"`
		}
	}
	var errorsFilter, deadLetterFilter string
	for _, p := range resources[policy](t, d.plan, "google_monitoring_alert_policy") {
		for _, c := range p.Conditions {
			for _, th := range c.ConditionThreshold {
				switch {
				case strings.Contains(th.Filter, `"run.googleapis.com/request_count"`):
					errorsFilter = th.Filter
				case strings.Contains(th.Filter, `"pubsub.googleapis.com/subscription/num_undelivered_messages"`):
					deadLetterFilter = th.Filter
				}
			}
		}
	}
	if errorsFilter == "" || deadLetterFilter == "" {
		t.Fatalf("the plan has no function-errors (%t) or dead-letter (%t) alert policy", errorsFilter != "", deadLetterFilter != "")
	}
	serving := d.pushed()
	for name := range d.jobs {
		serving[name] = true
	}
	for name := range serving {
		if !strings.Contains(errorsFilter, strconv.Quote(name)) {
			t.Errorf("the function-errors alert does not watch %s (filter %s)", name, errorsFilter)
		}
	}
	for _, s := range d.subs {
		if len(s.PushConfig) == 0 && !strings.Contains(deadLetterFilter, strconv.Quote(s.Name)) {
			t.Errorf("the dead-letter alert does not watch subscription %s", s.Name)
		}
	}
}

// indexOf returns the for_each key of a planned resource instance.
func indexOf(p *Plan, addr string) string {
	for _, r := range p.PlannedValues.RootModule.Resources {
		if r.Address == addr {
			return fmt.Sprint(r.Index)
		}
	}
	return ""
}

// configAddress is the configuration address of a resource instance: without its index.
func configAddress(addr string) string {
	if i := strings.IndexByte(addr, '['); i >= 0 {
		return addr[:i]
	}
	return addr
}

func mapKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

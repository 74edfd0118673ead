package deploytest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/farmobs/farm/internal/packaging"
	"github.com/farmobs/farm/pkg/config"
	"github.com/farmobs/farm/pkg/sink"
	"github.com/farmobs/farm/pkg/state/firestore"
)

// The plan checks read the JSON of an offline plan of terraform/ on terraform.tfvars.example;
// .ci/terraform.sh (make tf-validate) produces it and sets these variables.
const (
	planJSONVar      = "FARM_TF_PLAN_JSON"
	sourceArchiveVar = "FARM_TF_SOURCE_ARCHIVE"
)

type function struct {
	Name        string
	BuildConfig []struct {
		EntryPoint string `json:"entry_point"`
		Runtime    string
		Source     []struct {
			StorageSource []struct{ Bucket, Object string } `json:"storage_source"`
		}
	} `json:"build_config"`
	ServiceConfig []serviceConfig `json:"service_config"`
}

type serviceConfig struct {
	ServiceAccountEmail        string                                  `json:"service_account_email"`
	EnvironmentVariables       map[string]string                       `json:"environment_variables"`
	IngressSettings            string                                  `json:"ingress_settings"`
	TimeoutSeconds             int                                     `json:"timeout_seconds"`
	MaxInstanceCount           int                                     `json:"max_instance_count"`
	VPCConnector               string                                  `json:"vpc_connector"`
	DirectVPCEgress            string                                  `json:"direct_vpc_egress"`
	SecretEnvironmentVariables []struct{ Key, Secret, Version string } `json:"secret_environment_variables"`
	SecretVolumes              []struct {
		MountPath string `json:"mount_path"`
		Secret    string
		Versions  []struct{ Path, Version string }
	} `json:"secret_volumes"`
}

type subscription struct {
	Name               string
	AckDeadlineSeconds int `json:"ack_deadline_seconds"`
	PushConfig         []struct {
		OIDCToken []struct {
			ServiceAccountEmail string `json:"service_account_email"`
		} `json:"oidc_token"`
	} `json:"push_config"`
	DeadLetterPolicy []struct {
		MaxDeliveryAttempts int `json:"max_delivery_attempts"`
	} `json:"dead_letter_policy"`
	RetryPolicy      []struct{ MinimumBackoff, MaximumBackoff string } `json:"retry_policy"`
	ExpirationPolicy []struct{ TTL string }                            `json:"expiration_policy"`
}

type schedulerJob struct {
	Name            string
	AttemptDeadline string `json:"attempt_deadline"`
	RetryConfig     []struct {
		RetryCount int `json:"retry_count"`
	} `json:"retry_config"`
	HTTPTarget []struct {
		HTTPMethod string `json:"http_method"`
		OIDCToken  []struct {
			ServiceAccountEmail string `json:"service_account_email"`
		} `json:"oidc_token"`
	} `json:"http_target"`
}

type bigqueryTable struct {
	TableID          string `json:"table_id"`
	Schema           string
	Clustering       []string
	TimePartitioning []struct{ Type, Field string } `json:"time_partitioning"`
	View             []struct {
		Query        string
		UseLegacySQL bool `json:"use_legacy_sql"`
	}
}

// deployment is the decoded plan with what the checks compare it to.
type deployment struct {
	plan      *Plan
	root      string
	project   string
	functions map[string]*function   // by function name
	services  map[string]*runService // Cloud Run services declared as such (the trace function with its DataDog sidecar), by name
	subs      map[string]*subscription
	jobs      map[string]*schedulerJob
	topics    map[string]string // resource address -> topic name
}

func loadDeployment(t *testing.T) *deployment {
	t.Helper()
	file := os.Getenv(planJSONVar)
	if file == "" {
		t.Skipf("%s is not set: these checks run on the offline terraform plan of `make tf-validate` (.ci/terraform.sh)", planJSONVar)
	}
	p, err := ReadPlan(file)
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{plan: p, root: repoRoot(t), functions: map[string]*function{}, services: map[string]*runService{}, subs: map[string]*subscription{}, jobs: map[string]*schedulerJob{}, topics: map[string]string{}}
	if err := json.Unmarshal(p.Variables["project_id"].Value, &d.project); err != nil {
		t.Fatalf("the plan has no project_id: %v", err)
	}
	fns := resources[function](t, p, "google_cloudfunctions2_function")
	for _, f := range fns {
		d.functions[f.Name] = f
	}
	for _, s := range resources[runService](t, p, "google_cloud_run_v2_service") {
		d.services[s.Name] = s
	}
	for addr, s := range resources[subscription](t, p, "google_pubsub_subscription") {
		d.subs[addr] = s
	}
	for _, j := range resources[schedulerJob](t, p, "google_cloud_scheduler_job") {
		d.jobs[j.Name] = j
	}
	for addr, tp := range resources[named](t, p, "google_pubsub_topic") {
		d.topics[addr] = tp.Name
	}
	if len(d.functions) == 0 {
		t.Fatal("the plan creates no functions")
	}
	return d
}

// resources decodes the planned instances of a resource type, by address.
func resources[T any](t *testing.T, p *Plan, typ string) map[string]*T {
	t.Helper()
	m, err := Resources[T](p, typ)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type named struct{ Name string }

type dataset struct {
	DatasetID string `json:"dataset_id"`
}

func TestPlan(t *testing.T) {
	d := loadDeployment(t)
	t.Run("nothing is public", d.checkNothingPublic)
	t.Run("entry points are registered", d.checkEntryPoints)
	t.Run("settings are read by the code and load", d.checkSettings)
	t.Run("one source archive named by its hash", d.checkSourceArchive)
	t.Run("identities are per function", d.checkIdentities)
	t.Run("the dataset's readers and writer are explicit", d.checkDatasetAccess)
	t.Run("the tracer's settings are the README's", d.checkTracerSettings)
	t.Run("firestore TTL on the code's fields", d.checkFirestore)
	t.Run("bigquery tables and views as pkg/sink lays them out", d.checkBigQuery)
	t.Run("push delivery retries then dead-letters", d.checkDelivery)
	t.Run("one authenticated schedule per poll function", d.checkSchedules)
	t.Run("the trace function and its DataDog agent", d.checkDataDog)
	t.Run("alerting covers every function that serves", d.checkAlerting)
}

func (d *deployment) checkNothingPublic(t *testing.T) {
	for _, r := range d.plan.PlannedValues.RootModule.Resources {
		var v any
		if err := json.Unmarshal(r.Values, &v); err != nil {
			t.Fatal(err)
		}
		walkStrings(v, func(s string) {
			if s == "allUsers" || s == "allAuthenticatedUsers" {
				t.Errorf("%s grants %s: FARM's resources are never public", r.Address, s)
			}
		})
	}
	for name, f := range d.functions {
		if ingress := f.ServiceConfig[0].IngressSettings; ingress == "" {
			t.Errorf("function %s has no explicit ingress setting", name)
		}
	}
	for name, s := range d.services {
		if s.Ingress == "" {
			t.Errorf("service %s has no explicit ingress setting", name)
		}
	}
}

func walkStrings(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case []any:
		for _, x := range v {
			walkStrings(x, fn)
		}
	case map[string]any:
		for _, x := range v {
			walkStrings(x, fn)
		}
	}
}

// pushed returns the names of the functions a push subscription delivers to (a subscription is
// named after its function).
func (d *deployment) pushed() map[string]bool {
	out := map[string]bool{}
	for _, s := range d.subs {
		if len(s.PushConfig) > 0 {
			out[s.Name] = true
		}
	}
	return out
}

func (d *deployment) checkEntryPoints(t *testing.T) {
	regs, err := RegisteredFunctions(d.root)
	if err != nil {
		t.Fatal(err)
	}
	pushed := d.pushed()
	for name, f := range d.functions {
		entry := f.BuildConfig[0].EntryPoint
		reg, ok := regs[entry]
		switch {
		case !ok:
			t.Errorf("function %s has entry point %s, which the root package does not register (it registers %v)", name, entry, slices.Sorted(maps.Keys(regs)))
		case pushed[name] && reg.Kind != "HTTP":
			// FARM reads the push envelope itself: a CloudEvent function would leave a malformed
			// delivery to the Functions Framework's 400 (redelivered until Pub/Sub gives up).
			t.Errorf("function %s receives Pub/Sub pushes, but %s is registered with functions.%s, not HTTP", name, entry, reg.Kind)
		case d.jobs[name] != nil && reg.Kind != "HTTP":
			t.Errorf("function %s is called by Cloud Scheduler, but %s is registered with functions.%s, not HTTP", name, entry, reg.Kind)
		}
	}
	for name, s := range d.services {
		entry := s.entryPoint()
		reg, ok := regs[entry]
		switch {
		case !ok:
			t.Errorf("service %s serves entry point %q (FUNCTION_TARGET), which the root package does not register (it registers %v)", name, entry, slices.Sorted(maps.Keys(regs)))
		case pushed[name] && reg.Kind != "HTTP":
			// As for functions: FARM reads the push envelope itself.
			t.Errorf("service %s receives Pub/Sub pushes, but %s is registered with functions.%s, not HTTP", name, entry, reg.Kind)
		}
	}
}

// checkSettings loads every function's environment through pkg/config, with the secret files it
// mounts, and requires that the load succeeds, that every variable set is one the code reads,
// that secrets only come from Secret Manager, and that the settings name this plan's resources.
func (d *deployment) checkSettings(t *testing.T) {
	root, files, err := packaging.Files(t.Context(), d.root)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := EnvReadsInSource(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range d.functions {
		t.Run(name, func(t *testing.T) {
			sc := f.ServiceConfig[0]
			d.checkEnv(t, name, &sc, f.BuildConfig[0].EntryPoint, direct)
		})
	}
	for name, s := range d.services {
		t.Run(name, func(t *testing.T) {
			sc := s.ingress().asServiceConfig()
			d.checkEnv(t, name, &sc, s.entryPoint(), direct)
		})
	}
}

// runtimeEnv are variables a deployment may set that no FARM code reads: FUNCTION_TARGET tells
// the Functions Framework of a function image which entry point to serve; GOMEMLIMIT and GOGC are
// read by the Go runtime (the poll functions' soft memory limit, the trace function's GC target).
var runtimeEnv = map[string]bool{"FUNCTION_TARGET": true, "GOMEMLIMIT": true, "GOGC": true}

// checkEnv loads one function's environment through pkg/config (see checkSettings).
func (d *deployment) checkEnv(t *testing.T, name string, sc *serviceConfig, entry string, direct map[string]bool) {
	t.Helper()
	env, secretFiles := mountSecrets(t, sc)
	asked := map[string]bool{}
	cfg, err := config.LoadFrom(func(k string) (string, bool) {
		asked[k] = true
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatalf("pkg/config refuses the settings terraform gives %s: %v", name, err)
	}
	for k, v := range sc.EnvironmentVariables {
		switch {
		case !asked[k] && !direct[k] && !strings.HasPrefix(k, "DD_") && !runtimeEnv[k]: // DD_*: read by the tracer
			t.Errorf("%s sets %s, which FARM's code never reads", name, k)
		case asked[k+"_FILE"] || k == "DD_API_KEY":
			t.Errorf("%s sets the secret %s as a plain variable: it must come from Secret Manager", name, k)
		case strings.HasSuffix(k, "_FILE") && asked[k] && !secretFiles[k]:
			t.Errorf("%s: %s=%s is not a file of a mounted secret", name, k, v)
		}
	}
	d.checkTargets(t, name, entry, cfg)
}

// mountSecrets returns the function's environment as the code sees it at run time: mounted
// secrets become local files with a placeholder value, secret variables placeholder values. It
// also returns which variables point at a mounted secret.
func mountSecrets(t *testing.T, sc *serviceConfig) (env map[string]string, secretFiles map[string]bool) {
	t.Helper()
	env, secretFiles = maps.Clone(sc.EnvironmentVariables), map[string]bool{}
	dir := t.TempDir()
	for _, v := range sc.SecretVolumes {
		for _, ver := range v.Versions {
			mounted := v.MountPath + "/" + ver.Path
			local := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(mounted, "/"), "/", "_"))
			if err := os.WriteFile(local, []byte("placeholder-"+v.Secret), 0o600); err != nil {
				t.Fatal(err)
			}
			for k, val := range env {
				if val == mounted {
					env[k], secretFiles[k] = local, true
				}
			}
		}
	}
	for _, s := range sc.SecretEnvironmentVariables {
		env[s.Key] = "placeholder-" + s.Secret
	}
	return env, secretFiles
}

// checkTargets requires that a function's settings name the topic, database and dataset this
// plan creates, and for the sink the subscription that pushes to it.
func (d *deployment) checkTargets(t *testing.T, name, entry string, cfg config.Config) {
	t.Helper()
	deltas := d.topics[firstResource(d.plan.References("google_pubsub_subscription.consumer", "topic"))]
	c := cfg.Common
	if c.ProjectID != d.project || c.StateStore != "firestore" || c.Topic != deltas {
		t.Errorf("%s: project %q, store %q, topic %q; want %q, firestore, %q", name, c.ProjectID, c.StateStore, c.Topic, d.project, deltas)
	}
	databases := resources[named](t, d.plan, "google_firestore_database")
	if !slices.ContainsFunc(slices.Collect(maps.Values(databases)), func(db *named) bool { return db.Name == c.FirestoreDatabase }) {
		t.Errorf("%s uses Firestore database %q, which the plan does not create", name, c.FirestoreDatabase)
	}
	if entry != "BigQuerySink" {
		return
	}
	datasets := resources[dataset](t, d.plan, "google_bigquery_dataset")
	if cfg.Sink.Mode != "bigquery" || !slices.ContainsFunc(slices.Collect(maps.Values(datasets)), func(ds *dataset) bool { return ds.DatasetID == cfg.Sink.Dataset }) {
		t.Errorf("%s writes to %s dataset %q, not the one the plan creates", name, cfg.Sink.Mode, cfg.Sink.Dataset)
	}
	// The Functions Framework drops the push envelope's subscription: the sink's rows name the
	// subscription that pushes to it only through its settings.
	var pushers []string
	for _, s := range d.subs {
		if len(s.PushConfig) > 0 && s.Name == name {
			pushers = append(pushers, "projects/"+d.project+"/subscriptions/"+s.Name)
		}
	}
	if len(pushers) != 1 || cfg.Sink.Subscription != pushers[0] {
		t.Errorf("%s names its subscription %q (FARM_SINK_SUBSCRIPTION); the plan's push subscriptions to it are %v", name, cfg.Sink.Subscription, pushers)
	}
}

// firstResource returns the resource address among references (the one without an attribute).
func firstResource(refs []string) string {
	for _, r := range refs {
		if strings.Count(r, ".") == 1 {
			return r
		}
	}
	return ""
}

func (d *deployment) checkSourceArchive(t *testing.T) {
	file := os.Getenv(sourceArchiveVar)
	if file == "" {
		t.Fatalf("%s is not set: the archive the plan was made with", sourceArchiveVar)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := "farm-source-" + hex.EncodeToString(sum[:]) + ".zip"
	objects := resources[struct{ Name, Bucket string }](t, d.plan, "google_storage_bucket_object")
	if len(objects) != 1 {
		t.Fatalf("the plan uploads %d objects, want the one source archive", len(objects))
	}
	for _, o := range objects {
		if o.Name != want {
			t.Errorf("the archive's object is %s, want %s", o.Name, want)
		}
		for name, f := range d.functions {
			src := f.BuildConfig[0].Source[0].StorageSource[0]
			if src.Object != o.Name || src.Bucket != o.Bucket {
				t.Errorf("function %s builds from gs://%s/%s, not the archive gs://%s/%s", name, src.Bucket, src.Object, o.Bucket, o.Name)
			}
		}
	}
}

func (d *deployment) checkIdentities(t *testing.T) {
	owner := map[string]string{}
	for name, f := range d.functions {
		sa := f.ServiceConfig[0].ServiceAccountEmail
		switch {
		case sa == "" || strings.HasSuffix(sa, "-compute@developer.gserviceaccount.com") || strings.HasSuffix(sa, "@appspot.gserviceaccount.com"):
			t.Errorf("function %s runs as %q, not a service account of its own", name, sa)
		case owner[sa] != "":
			t.Errorf("functions %s and %s share the service account %s", owner[sa], name, sa)
		}
		owner[sa] = name
	}
	// A service may run as the identity of the function that only builds its image (the trace
	// image with the DataDog sidecar): that function serves nothing (checkDataDog).
	pushed := d.pushed()
	for name, s := range d.services {
		sa := s.Template[0].ServiceAccount
		if sa == "" || strings.HasSuffix(sa, "-compute@developer.gserviceaccount.com") {
			t.Errorf("service %s runs as %q, not a service account of its own", name, sa)
			continue
		}
		if other := owner[sa]; other != "" && (pushed[other] || d.jobs[other] != nil) {
			t.Errorf("service %s shares the service account %s with function %s, which serves requests", name, sa, other)
		}
		owner[sa] = name
	}
	type member struct {
		Role, Member string
		Condition    []struct{ Expression string }
	}
	// Project-level grants FARM may make. Only writing logs has no narrower scope; the others must
	// carry an IAM condition naming the resources they are for. Everything else is granted on the
	// resource itself.
	unconditioned := map[string]bool{"roles/logging.logWriter": true}
	conditioned := map[string]bool{"roles/datastore.user": true, "roles/artifactregistry.writer": true, "roles/storage.objectViewer": true}
	build := map[string]bool{"roles/logging.logWriter": true, "roles/artifactregistry.writer": true, "roles/storage.objectViewer": true}
	for addr, m := range resources[member](t, d.plan, "google_project_iam_member") {
		switch {
		case unconditioned[m.Role]:
		case conditioned[m.Role] && len(m.Condition) == 1 && strings.Contains(m.Condition[0].Expression, "resource.name"):
		case conditioned[m.Role]:
			t.Errorf("%s grants %s on the whole project without a condition limiting it to FARM's resources", addr, m.Role)
		default:
			t.Errorf("%s grants %s on the whole project", addr, m.Role)
		}
		if owner[m.Member] != "" && build[m.Role] {
			t.Errorf("%s gives the runtime identity of %s a build role (%s)", addr, owner[m.Member], m.Role)
		}
	}
}

// checkDatasetAccess: the dataset's access list is explicit — project owners, the sink as its only
// writer, the configured readers — never the project's viewers or editors as a whole.
func (d *deployment) checkDatasetAccess(t *testing.T) {
	type access struct {
		Role         string
		SpecialGroup string `json:"special_group"`
		UserByEmail  string `json:"user_by_email"`
		GroupByEmail string `json:"group_by_email"`
		Domain       string
	}
	var sinkSA string
	for _, f := range d.functions {
		if f.BuildConfig[0].EntryPoint == "BigQuerySink" {
			sinkSA = f.ServiceConfig[0].ServiceAccountEmail
		}
	}
	var readers []string
	if v, ok := d.plan.Variables["bigquery_readers"]; ok {
		_ = json.Unmarshal(v.Value, &readers)
	}
	for addr, ds := range resources[struct{ Access []access }](t, d.plan, "google_bigquery_dataset") {
		if len(ds.Access) == 0 {
			t.Errorf("%s has no access list: BigQuery would let every project viewer read it", addr)
		}
		var writers, got []string
		for _, a := range ds.Access {
			switch {
			case a.SpecialGroup == "projectReaders" || a.SpecialGroup == "projectWriters" || a.SpecialGroup == "allAuthenticatedUsers":
				t.Errorf("%s grants %s to %s", addr, a.Role, a.SpecialGroup)
			case a.Role == "WRITER":
				writers = append(writers, a.UserByEmail+a.GroupByEmail+a.Domain+a.SpecialGroup)
			case a.Role == "READER":
				got = append(got, a.UserByEmail+a.GroupByEmail+a.Domain)
			}
		}
		if !slices.Equal(writers, []string{sinkSA}) {
			t.Errorf("%s writers %v, want only the sink's account %s", addr, writers, sinkSA)
		}
		var want []string
		for _, r := range readers {
			_, id, _ := strings.Cut(r, ":")
			want = append(want, id)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s readers %v, want bigquery_readers %v", addr, got, want)
		}
	}
}

// checkTracerSettings: what the README says terraform sets for the trace function's tracer.
func (d *deployment) checkTracerSettings(t *testing.T) {
	for name, f := range d.functions {
		env := f.ServiceConfig[0].EnvironmentVariables
		if _, ok := env["DD_TRACE_AGENT_URL"]; !ok {
			continue
		}
		for _, k := range []string{"DD_INSTRUMENTATION_TELEMETRY_ENABLED", "DD_REMOTE_CONFIGURATION_ENABLED"} {
			if env[k] != "false" {
				t.Errorf("function %s has %s=%q, want false (README)", name, k, env[k])
			}
		}
	}
}

func (d *deployment) checkFirestore(t *testing.T) {
	dbs := resources[struct{ Name, Type string }](t, d.plan, "google_firestore_database")
	for addr, db := range dbs {
		if db.Type != "FIRESTORE_NATIVE" {
			t.Errorf("%s is a %s database, want FIRESTORE_NATIVE", addr, db.Type)
		}
	}
	type field struct {
		Collection, Field string
		TTLConfig         []any `json:"ttl_config"`
	}
	got := map[string]bool{}
	for addr, f := range resources[field](t, d.plan, "google_firestore_field") {
		if len(f.TTLConfig) == 0 {
			t.Errorf("%s has no TTL policy", addr)
		}
		got[f.Collection+"."+f.Field] = true
	}
	want := map[string]bool{
		firestore.RunsCollection + "." + firestore.ExpireAtField:   true,
		firestore.LedgerCollection + "." + firestore.ExpireAtField: true,
	}
	if !maps.Equal(got, want) {
		t.Errorf("TTL policies on %v; pkg/state/firestore expires documents by %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

func (d *deployment) checkBigQuery(t *testing.T) {
	datasets := resources[dataset](t, d.plan, "google_bigquery_dataset")
	if len(datasets) != 1 {
		t.Fatalf("the plan creates %d datasets, want 1", len(datasets))
	}
	var datasetID string
	for _, ds := range datasets {
		datasetID = ds.DatasetID
	}
	tables := map[string]*bigqueryTable{}
	for _, tb := range resources[bigqueryTable](t, d.plan, "google_bigquery_table") {
		tables[tb.TableID] = tb
	}
	schemas := os.DirFS(filepath.Join(d.root, "schemas"))
	for _, spec := range sink.Tables {
		tb := tables[spec.Name]
		if tb == nil {
			t.Errorf("no table %s", spec.Name)
			continue
		}
		if len(tb.TimePartitioning) != 1 || tb.TimePartitioning[0].Type != "DAY" || tb.TimePartitioning[0].Field != spec.Partition {
			t.Errorf("table %s is partitioned %+v, want DAY on %s", spec.Name, tb.TimePartitioning, spec.Partition)
		}
		if !slices.Equal(tb.Clustering, spec.Clustering) {
			t.Errorf("table %s is clustered on %v, want %v", spec.Name, tb.Clustering, spec.Clustering)
		}
		want, err := os.ReadFile(filepath.Join(d.root, "schemas", spec.SchemaFile))
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, tb.Schema, string(want)) {
			t.Errorf("table %s's schema is not schemas/%s", spec.Name, spec.SchemaFile)
		}
	}
	for _, name := range sink.Views {
		tb := tables[name]
		if tb == nil || len(tb.View) != 1 {
			t.Errorf("no view %s", name)
			continue
		}
		want, err := sink.ViewSQL(schemas, name, d.project, datasetID)
		if err != nil {
			t.Fatal(err)
		}
		if tb.View[0].Query != want || tb.View[0].UseLegacySQL {
			t.Errorf("view %s is not schemas/views/%s.sql in standard SQL, templated as pkg/sink does", name, name)
		}
	}
	views := 0
	for _, tb := range tables {
		if len(tb.View) > 0 {
			views++
		}
	}
	if views != len(sink.Views) {
		t.Errorf("the plan creates %d views; pkg/sink knows %d (%v)", views, len(sink.Views), sink.Views)
	}
}

func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	return reflect.DeepEqual(x, y)
}

func (d *deployment) checkDelivery(t *testing.T) {
	pushed := d.pushed()
	if len(pushed) == 0 {
		t.Fatal("no push subscriptions")
	}
	runtime := map[string]bool{}
	for _, f := range d.functions {
		runtime[f.ServiceConfig[0].ServiceAccountEmail] = true
	}
	for _, s := range d.services {
		runtime[s.Template[0].ServiceAccount] = true
	}
	deadLetter := d.topics[firstResource(d.plan.References("google_pubsub_subscription.consumer", "dead_letter_policy", "dead_letter_topic"))]
	if deadLetter == "" {
		t.Fatal("the push subscriptions have no dead-letter topic of this plan")
	}
	if refs := d.plan.References("google_pubsub_subscription.dead_letter", "topic"); d.topics[firstResource(refs)] != deadLetter {
		t.Errorf("nothing subscribes to the dead-letter topic %s: its messages would be dropped", deadLetter)
	}
	for addr, s := range d.subs {
		if len(s.PushConfig) == 0 {
			continue
		}
		timeout, ok := d.timeoutOf(s.Name)
		if !ok {
			t.Errorf("%s pushes to %s, which is not a function of this plan", addr, s.Name)
			continue
		}
		if len(s.DeadLetterPolicy) != 1 || s.DeadLetterPolicy[0].MaxDeliveryAttempts < 5 {
			t.Errorf("%s has no dead-letter policy with a maximum delivery count", addr)
		}
		if len(s.RetryPolicy) != 1 {
			t.Errorf("%s has no retry policy", addr)
		}
		if len(s.ExpirationPolicy) != 1 || s.ExpirationPolicy[0].TTL != "" {
			t.Errorf("%s may expire when idle", addr)
		}
		if s.AckDeadlineSeconds < timeout {
			t.Errorf("%s: ack deadline %ds is shorter than %s's timeout %ds: slow deliveries would be redelivered while running", addr, s.AckDeadlineSeconds, s.Name, timeout)
		}
		if len(s.PushConfig[0].OIDCToken) != 1 || runtime[s.PushConfig[0].OIDCToken[0].ServiceAccountEmail] {
			t.Errorf("%s must push with an identity token of its own push service account", addr)
		}
	}
}

// buildsServiceImage: f only builds the image a Cloud Run service runs (the trace function with the
// DataDog sidecar); it serves nothing, so it needs no schedule (checkImageBuilder).
func (d *deployment) buildsServiceImage(f *function) bool {
	for _, s := range d.services {
		if s.entryPoint() == f.BuildConfig[0].EntryPoint {
			return true
		}
	}
	return false
}

func (d *deployment) checkSchedules(t *testing.T) {
	regs, err := RegisteredFunctions(d.root)
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range d.functions {
		if reg, ok := regs[f.BuildConfig[0].EntryPoint]; ok && reg.Kind == "HTTP" && d.jobs[name] == nil && !d.pushed()[name] && !d.buildsServiceImage(f) {
			t.Errorf("poll function %s has no Cloud Scheduler job", name)
		}
	}
	for name, j := range d.jobs {
		f := d.functions[name]
		if f == nil {
			t.Errorf("job %s is not named after a poll function of this plan", name)
			continue
		}
		if refs := d.plan.References("google_cloud_scheduler_job.poll", "http_target", "uri"); !slices.Contains(refs, "google_cloudfunctions2_function.function") {
			t.Errorf("the jobs' uri does not come from the poll functions (refs %v)", refs)
		}
		if len(j.HTTPTarget) != 1 || j.HTTPTarget[0].HTTPMethod != "POST" || len(j.HTTPTarget[0].OIDCToken) != 1 {
			t.Errorf("job %s must POST with an OIDC token", name)
			continue
		}
		deadline, err := time.ParseDuration(j.AttemptDeadline)
		if err != nil || deadline < time.Duration(f.ServiceConfig[0].TimeoutSeconds)*time.Second || deadline > 30*time.Minute {
			t.Errorf("job %s waits %q for a poll that may take %ds (Cloud Scheduler allows at most 30m)", name, j.AttemptDeadline, f.ServiceConfig[0].TimeoutSeconds)
		}
		if len(j.RetryConfig) != 1 {
			t.Errorf("job %s has no retry config", name)
		}
	}
}

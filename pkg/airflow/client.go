package airflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farmobs/farm/pkg/clock"
	"github.com/farmobs/farm/pkg/httpx"
)

// Client reads one Airflow's REST API, v1 or v2. Safe for concurrent use; nothing is dialled before
// the first call.
type Client struct {
	hc     *httpx.Client
	auth   authorizer
	cfg    Config
	log    *slog.Logger
	forced string // API forced by configuration, "" to detect

	mu   sync.Mutex
	info *ServerInfo
}

// NewClient returns a client of the Airflow in cfg (the Source's own: New builds one).
// Configuration problems are reported here, not at the first call.
func NewClient(cfg Config, deps Deps) (*Client, error) {
	if cfg.URL == nil {
		return nil, errors.New("airflow: no URL (FARM_AIRFLOW_URL)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("airflow: %w", err)
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	base := []httpx.Option{httpx.WithClock(deps.Clock), httpx.WithLogger(deps.Log),
		httpx.WithTimeout(cfg.HTTPTimeout), httpx.WithRetries(cfg.HTTPRetries), httpx.WithUserAgent("farm-airflow")}
	hc, err := httpx.New(cfg.URL, append(base, deps.HTTP...)...)
	if err != nil {
		return nil, fmt.Errorf("airflow: %w", err)
	}
	c := &Client{hc: hc, cfg: cfg, log: deps.Log}
	switch cfg.APIVersion {
	case "", "auto":
	case "v1", "v2":
		c.forced = cfg.APIVersion
	default:
		return nil, fmt.Errorf("airflow: API version %q: want auto, v1 or v2", cfg.APIVersion)
	}
	o := cfg
	mode := ResolveAuth(o.Auth, o.URL)
	switch mode {
	case AuthNone:
		c.auth = noAuth{}
	case AuthBasic:
		if o.Username == "" || o.Password == "" {
			return nil, errors.New("airflow: basic auth needs a username and a password")
		}
		c.auth = newBasicAuth(o.Username, o.Password)
	case AuthBearer:
		if o.Token == "" {
			return nil, errors.New("airflow: bearer auth needs a token")
		}
		c.auth = bearerAuth{o.Token}
	case AuthGoogle:
		c.auth = newGoogleAuth(deps.TokenSource)
	case AuthJWT:
		if o.Username == "" || o.Password == "" {
			return nil, errors.New("airflow: jwt auth needs a username and a password for /auth/token")
		}
		c.auth = &jwtAuth{hc: hc, user: o.Username, pwd: o.Password, clk: deps.Clock}
	default:
		return nil, fmt.Errorf("airflow: auth mode %q: want auto, none, basic, bearer, google or jwt", o.Auth)
	}
	return c, nil
}

// AuthMode returns the auth mode in use (auto resolved).
func (c *Client) AuthMode() string { return c.auth.mode() }

// Stats returns the cumulative API calls, bytes and retries.
func (c *Client) Stats() httpx.Stats { return c.hc.Stats() }

// do sends one call with the auth header; a 401 gets one more try with fresh credentials when the
// auth mode can renew them. 401 and 403 become an *AuthError naming the mode.
func (c *Client) do(ctx context.Context, req httpx.Request, decode func(io.Reader) error) error {
	for attempt := 0; ; attempt++ {
		hdr, err := c.auth.header(ctx)
		if err != nil {
			return err
		}
		if req.Header == nil {
			req.Header = http.Header{}
		}
		if hdr != "" {
			req.Header.Set("Authorization", hdr)
		}
		err = c.hc.Do(ctx, req, decode)
		switch httpx.StatusCode(err) {
		case http.StatusUnauthorized:
			if attempt == 0 && c.auth.refresh(ctx, hdr) {
				c.log.DebugContext(ctx, "airflow refused the token; retrying with a fresh one", "path", req.Path)
				continue
			}
			return &AuthError{Mode: c.auth.mode(), Err: err}
		case http.StatusForbidden:
			return &AuthError{Mode: c.auth.mode(), Err: err}
		}
		return err
	}
}

// decodeInto decodes a response into a fresh T on every attempt (a retried read never merges
// into a half-decoded value) and stores it in out.
func decodeInto[T any](out *T) func(io.Reader) error {
	return func(r io.Reader) error {
		var v T
		if err := json.NewDecoder(r).Decode(&v); err != nil {
			return err
		}
		*out = v
		return nil
	}
}

func getJSON[T any](ctx context.Context, c *Client, path string, q url.Values) (T, error) {
	var out T
	err := c.do(ctx, httpx.Request{Path: path, Query: q}, decodeInto(&out))
	return out, err
}

func postJSON[T any](ctx context.Context, c *Client, path string, body any) (T, error) {
	var out T
	raw, err := json.Marshal(body)
	if err != nil {
		return out, err
	}
	req := httpx.Request{Method: http.MethodPost, Path: path, Body: raw, Header: http.Header{"Content-Type": {"application/json"}}}
	err = c.do(ctx, req, decodeInto(&out))
	return out, err
}

// ServerInfo is what the server is: the API it speaks and its Airflow release.
type ServerInfo struct {
	API     string // v1 or v2
	Version string // as /version reports it, e.g. 2.10.5+composer
	release [3]int
}

// AtLeast reports whether the release is at least major.minor.patch (false when unreadable).
func (i ServerInfo) AtLeast(major, minor, patch int) bool {
	want := [3]int{major, minor, patch}
	for k := range want {
		if i.release[k] != want[k] {
			return i.release[k] > want[k]
		}
	}
	return true
}

// UpdatedAtFilter: updated_at_gte exists on v2 and on v1 from Airflow 2.6.
func (i ServerInfo) UpdatedAtFilter() bool { return i.API == "v2" || i.AtLeast(2, 6, 0) }

// TriesEndpoint: the tries history exists on v2 and on v1 from Airflow 2.10 (which is also when
// the scheduler started incrementing try_number as FARM expects).
func (i ServerInfo) TriesEndpoint() bool { return i.API == "v2" || i.AtLeast(2, 10, 0) }

func (i ServerInfo) prefix() string { return "api/" + i.API + "/" }

func parseRelease(v string) [3]int {
	var out [3]int
	core := v
	if k := strings.IndexAny(core, "+-"); k >= 0 {
		core = core[:k]
	}
	for k, p := range strings.SplitN(core, ".", 3) {
		n, err := strconv.Atoi(p)
		if err != nil {
			return [3]int{}
		}
		out[k] = n
	}
	return out
}

// Server detects, once, which API the server speaks: /api/v2/version answers on Airflow 3, and
// Airflow 2 answers it 404 (so does Airflow 3 for /api/v1). A failed detection is tried again on
// the next call.
func (c *Client) Server(ctx context.Context) (ServerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.info != nil {
		return *c.info, nil
	}
	apis := []string{"v2", "v1"}
	if c.forced != "" {
		apis = []string{c.forced}
	}
	var errs []error
	for _, api := range apis {
		v, err := getJSON[struct {
			Version string `json:"version"`
		}](ctx, c, "api/"+api+"/version", nil)
		if err != nil {
			if httpx.IsNotFound(err) {
				errs = append(errs, err)
				continue
			}
			return ServerInfo{}, fmt.Errorf("airflow: read the server version: %w", err)
		}
		info := ServerInfo{API: api, Version: v.Version, release: parseRelease(v.Version)}
		if info.release == [3]int{} {
			c.log.WarnContext(ctx, "airflow version unreadable: assuming the oldest features (no updated_at filter, no tries endpoint)", "version", v.Version)
		}
		c.log.InfoContext(ctx, "airflow detected", "api", api, "version", v.Version)
		c.info = &info
		return info, nil
	}
	return ServerInfo{}, fmt.Errorf("airflow: %s answers neither /api/v2/version nor /api/v1/version (is FARM_AIRFLOW_URL the web server's base URL?): %w", c.cfg.URL.Redacted(), errors.Join(errs...))
}

// stamp formats a datetime argument: always UTC with an offset (Z), which both APIs require.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// pageAll follows offset pages to total_entries, whatever page size the server really applied.
// Rows are de-duplicated by key (a row inserted before the offset shifts later pages). When the
// total shrank during the walk, rows may have moved before the offset and been skipped: the walk
// starts over, twice at most, then keeps what it has (the next poll's overlap sees the rest).
func pageAll[T any](ctx context.Context, what string, fetch func(ctx context.Context, offset int) ([]T, int, error), key func(T) string) ([]T, error) {
	for attempt := 0; ; attempt++ {
		var out []T
		seen := map[string]bool{}
		offset, prevTotal, shrank := 0, -1, false
		for {
			items, total, err := fetch(ctx, offset)
			if err != nil {
				return nil, fmt.Errorf("%s (offset %d): %w", what, offset, err)
			}
			if prevTotal >= 0 && total < prevTotal {
				shrank = true
			}
			prevTotal = total
			for _, it := range items {
				if k := key(it); !seen[k] {
					seen[k] = true
					out = append(out, it)
				}
			}
			offset += len(items)
			if offset >= total {
				break
			}
			if len(items) == 0 {
				shrank = true // fewer rows than total_entries promised
				break
			}
		}
		if !shrank || attempt == 2 {
			return out, nil
		}
	}
}

func totalOf(p *int, what string) (int, error) {
	if p == nil {
		return 0, fmt.Errorf("%s: the answer has no total_entries, so its pages cannot be followed", what)
	}
	return *p, nil
}

// RunFilter selects DAG runs. Zero fields do not filter.
type RunFilter struct {
	States     []string
	UpdatedGTE time.Time // updated_at_gte (v1 2.6+, v2)
	UpdatedLTE time.Time
	StartGTE   time.Time
	StartLTE   time.Time
	EndGTE     time.Time
}

func (f RunFilter) values() url.Values {
	q := url.Values{}
	for _, s := range f.States {
		q.Add("state", s)
	}
	set := func(name string, t time.Time) {
		if !t.IsZero() {
			q.Set(name, stamp(t))
		}
	}
	set("updated_at_gte", f.UpdatedGTE)
	set("updated_at_lte", f.UpdatedLTE)
	set("start_date_gte", f.StartGTE)
	set("start_date_lte", f.StartLTE)
	set("end_date_gte", f.EndGTE)
	return q
}

// ListRuns lists the DAG runs of every DAG (dag_id ~) matching f, ordered by id (the primary
// key: a stable order), page after page.
func (c *Client) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	info, err := c.Server(ctx)
	if err != nil {
		return nil, err
	}
	base := f.values()
	return pageAll(ctx, "list DAG runs", func(ctx context.Context, offset int) ([]Run, int, error) {
		q := cloneValues(base)
		q.Set("order_by", "id")
		q.Set("limit", strconv.Itoa(c.cfg.PageSize))
		q.Set("offset", strconv.Itoa(offset))
		page, err := getJSON[runPage](ctx, c, info.prefix()+"dags/~/dagRuns", q)
		if err != nil {
			return nil, 0, err
		}
		total, err := totalOf(page.TotalEntries, "list DAG runs")
		if err != nil {
			return nil, 0, err
		}
		runs := make([]Run, 0, len(page.DagRuns))
		for i := range page.DagRuns {
			r, err := page.DagRuns[i].decode()
			if err != nil {
				return nil, 0, err
			}
			runs = append(runs, r)
		}
		return runs, total, nil
	}, func(r Run) string { return r.RunRef.String() })
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v)+3)
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// GetRun reads one DAG run; nil without error when it no longer exists.
func (c *Client) GetRun(ctx context.Context, ref RunRef) (*Run, error) {
	info, err := c.Server(ctx)
	if err != nil {
		return nil, err
	}
	w, err := getJSON[wireRun](ctx, c, info.prefix()+"dags/"+url.PathEscape(ref.DagID)+"/dagRuns/"+url.PathEscape(ref.RunID), nil)
	if httpx.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := w.decode()
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func decodeTIs(page []wireTI) ([]TaskInstance, error) {
	out := make([]TaskInstance, 0, len(page))
	for i := range page {
		t, err := page[i].decode()
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func tiKey(t TaskInstance) string {
	return t.DagID + "\x00" + t.RunID + "\x00" + t.TaskID + "\x00" + strconv.Itoa(t.MapIndex)
}

// TaskInstancesUpdatedSince lists the task instances of every DAG and run (~/~) updated at or
// after since: the estate's change feed. It needs updated_at_gte (v2, v1 from 2.6). v2 orders by
// the task-instance id; v1 servers before 2.10.1 refuse order_by and return rows unordered, which
// pageAll's de-duplication and restarts make do with.
func (c *Client) TaskInstancesUpdatedSince(ctx context.Context, since time.Time) ([]TaskInstance, error) {
	info, err := c.Server(ctx)
	if err != nil {
		return nil, err
	}
	if !info.UpdatedAtFilter() {
		return nil, fmt.Errorf("airflow %s has no updated_at filter (2.6+)", info.Version)
	}
	return pageAll(ctx, "list task instances updated since "+stamp(since), func(ctx context.Context, offset int) ([]TaskInstance, int, error) {
		q := url.Values{}
		q.Set("updated_at_gte", stamp(since))
		q.Set("limit", strconv.Itoa(c.cfg.PageSize))
		q.Set("offset", strconv.Itoa(offset))
		if info.API == "v2" {
			q.Set("order_by", "id")
		}
		page, err := getJSON[tiPage](ctx, c, info.prefix()+"dags/~/dagRuns/~/taskInstances", q)
		if err != nil {
			return nil, 0, err
		}
		total, err := totalOf(page.TotalEntries, "list task instances")
		if err != nil {
			return nil, 0, err
		}
		tis, err := decodeTIs(page.TaskInstances)
		return tis, total, err
	}, tiKey)
}

// RunTaskInstances reads every task instance of runs through the batch endpoint, BatchRuns runs
// per call (never one call per DAG). v1's batch is unpaginated (and refuses paging fields); v2's
// is paged by page_offset/page_limit, ordered by id.
func (c *Client) RunTaskInstances(ctx context.Context, runs []RunRef) (map[RunRef][]TaskInstance, error) {
	info, err := c.Server(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[RunRef][]TaskInstance, len(runs))
	for _, r := range runs {
		out[r] = nil
	}
	for _, chunk := range batchChunks(runs, c.cfg.BatchRuns) {
		tis, err := c.batch(ctx, info, chunk)
		if err != nil {
			return nil, err
		}
		for _, t := range tis {
			// dag_ids x dag_run_ids is a cross product: keep only the runs asked for.
			if _, ok := out[t.Run()]; ok {
				out[t.Run()] = append(out[t.Run()], t)
			}
		}
	}
	return out, nil
}

// batchChunks splits runs into batch requests whose dag_ids x dag_run_ids names no other run.
// The batch query filters each list on its own, so a request for (a, X) and (b, Y) also returns
// the task instances of (a, Y) and (b, X) when they exist — with run ids made of a date
// (scheduled__2026-01-05T00:00:00+00:00), every DAG on the same schedule has them, and with
// thousands of DAGs the rows of other runs would dwarf the ones asked for. Runs of such an id are
// asked together, one id per request (every DAG asked with it is wanted); runs of ids unique to a
// DAG (manual__ with a timestamp, or named by hand) share requests. Calls stay bounded by the
// dates of the runs that changed, not by DAGs or runs.
func batchChunks(runs []RunRef, size int) [][]RunRef {
	var out [][]RunRef
	byDate := map[string][]RunRef{}
	var dates []string
	var unique []RunRef
	for _, r := range runs {
		if !dateRunID(r.RunID) {
			unique = append(unique, r)
			continue
		}
		if _, ok := byDate[r.RunID]; !ok {
			dates = append(dates, r.RunID)
		}
		byDate[r.RunID] = append(byDate[r.RunID], r)
	}
	for _, id := range dates {
		out = append(out, slices.Collect(slices.Chunk(byDate[id], size))...)
	}
	return append(out, slices.Collect(slices.Chunk(unique, size))...)
}

// dateRunID reports whether a run id is one the scheduler makes from a date, which other DAGs'
// runs share: scheduled__, backfill__, dataset_triggered__ (Airflow 2), asset_triggered__ (3).
func dateRunID(id string) bool {
	kind, _, ok := strings.Cut(id, "__")
	if !ok {
		return false
	}
	switch kind {
	case "scheduled", "backfill", "dataset_triggered", "asset_triggered":
		return true
	}
	return false
}

func (c *Client) batch(ctx context.Context, info ServerInfo, runs []RunRef) ([]TaskInstance, error) {
	var dags, ids []string
	for _, r := range runs {
		if !slices.Contains(dags, r.DagID) {
			dags = append(dags, r.DagID)
		}
		if !slices.Contains(ids, r.RunID) {
			ids = append(ids, r.RunID)
		}
	}
	path := info.prefix() + "dags/~/dagRuns/~/taskInstances/list"
	what := fmt.Sprintf("list the task instances of %d runs", len(runs))
	if info.API == "v1" {
		page, err := postJSON[tiPage](ctx, c, path, map[string]any{"dag_ids": dags, "dag_run_ids": ids})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return decodeTIs(page.TaskInstances)
	}
	return pageAll(ctx, what, func(ctx context.Context, offset int) ([]TaskInstance, int, error) {
		page, err := postJSON[tiPage](ctx, c, path, map[string]any{
			"dag_ids": dags, "dag_run_ids": ids, "order_by": "id", "page_offset": offset, "page_limit": c.cfg.BatchPage,
		})
		if err != nil {
			return nil, 0, err
		}
		total, err := totalOf(page.TotalEntries, what)
		if err != nil {
			return nil, 0, err
		}
		tis, err := decodeTIs(page.TaskInstances)
		return tis, total, err
	}, tiKey)
}

// Tries reads every try of one task instance (history rows, then the current row), oldest first.
// It needs the tries endpoint (v2, v1 from 2.10). A task instance that no longer exists has none.
func (c *Client) Tries(ctx context.Context, ref RunRef, taskID string, mapIndex int) ([]TaskInstance, error) {
	info, err := c.Server(ctx)
	if err != nil {
		return nil, err
	}
	if !info.TriesEndpoint() {
		return nil, fmt.Errorf("airflow %s has no tries endpoint (2.10+)", info.Version)
	}
	path := info.prefix() + "dags/" + url.PathEscape(ref.DagID) + "/dagRuns/" + url.PathEscape(ref.RunID) + "/taskInstances/" + url.PathEscape(taskID)
	if mapIndex >= 0 {
		path += "/" + strconv.Itoa(mapIndex)
	}
	// The endpoint answers every try at once (total_entries is their count; it ignores paging).
	page, err := getJSON[tiPage](ctx, c, path+"/tries", nil)
	if httpx.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tries of %s/%s: %w", ref, taskID, err)
	}
	tis, err := decodeTIs(page.TaskInstances)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(tis, func(a, b TaskInstance) int { return a.TryNumber - b.TryNumber })
	return tis, nil
}

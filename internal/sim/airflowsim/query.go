package airflowsim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

// badRequest is a client error the server answers with its version's error shape: 400 problem
// JSON on v1, 400 {"detail"} or 422 validation details on v2.
type badRequest struct {
	status int
	detail any
}

func (e *badRequest) Error() string { return fmt.Sprint(e.detail) }

func (v version) invalidTime(loc, name, value string) *badRequest {
	if v.api == "v1" {
		return &badRequest{400, fmt.Sprintf("'%s' is not a 'date-time'", value)}
	}
	return &badRequest{422, []map[string]any{{
		"type": "timezone_aware", "loc": []string{loc, name}, "msg": "Input should have timezone info", "input": value,
	}}}
}

// parseTime reads a datetime argument. Naive datetimes are refused, as both APIs do. v1 turns a
// space back into "+" (an unescaped "+00:00" arrives as " 00:00"), as Airflow's format_datetime does.
func (v version) parseTime(loc, name, value string) (time.Time, *badRequest) {
	s := strings.TrimSpace(value)
	if v.api == "v1" && !strings.HasSuffix(s, "Z") {
		s = strings.ReplaceAll(s, " ", "+")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, v.invalidTime(loc, name, value)
	}
	return t.UTC(), nil
}

// timeRange is a gte/gt/lte/lt filter on one datetime column.
type timeRange struct {
	gte, gt, lte, lt *time.Time
}

func (r timeRange) set() bool { return r.gte != nil || r.gt != nil || r.lte != nil || r.lt != nil }

// match applies the bounds as SQL does: a null column matches no bound.
func (r timeRange) match(t time.Time) bool {
	if !r.set() {
		return true
	}
	if t.IsZero() {
		return false
	}
	return (r.gte == nil || !t.Before(*r.gte)) && (r.gt == nil || t.After(*r.gt)) &&
		(r.lte == nil || !t.After(*r.lte)) && (r.lt == nil || t.Before(*r.lt))
}

// query is every filter, order and page the list endpoints take.
type query struct {
	times      map[string]timeRange // by column: start_date, end_date, updated_at, logical_date, run_after
	durGTE     *float64
	durLTE     *float64
	states     []string // "" is null
	statesSet  bool
	dagIDs     []string
	runIDs     []string
	taskIDs    []string
	pools      []string
	queues     []string
	orderBy    []string
	limit      int
	offset     int
	paginate   bool
	defaultLim int
}

func newQuery() *query { return &query{times: map[string]timeRange{}, paginate: true} }

// columns accepted as datetime filters, with the name of the column they filter.
var timeParams = map[string]string{
	"start_date": "start_date", "end_date": "end_date", "updated_at": "updated_at",
	"execution_date": "logical_date", "logical_date": "logical_date", "run_after": "run_after",
}

func (q *query) setTime(v version, loc, name, value string) *badRequest {
	i := strings.LastIndex(name, "_")
	col, op := timeParams[name[:i]], name[i+1:]
	t, bad := v.parseTime(loc, name, value)
	if bad != nil {
		return bad
	}
	r := q.times[col]
	switch op {
	case "gte":
		r.gte = &t
	case "gt":
		r.gt = &t
	case "lte":
		r.lte = &t
	case "lt":
		r.lt = &t
	}
	q.times[col] = r
	return nil
}

func isTimeParam(name string) bool {
	i := strings.LastIndex(name, "_")
	if i < 0 {
		return false
	}
	_, ok := timeParams[name[:i]]
	switch name[i+1:] {
	case "gte", "gt", "lte", "lt":
		return ok
	}
	return false
}

func normState(s string) string {
	if s == "none" || s == "null" {
		return None
	}
	return s
}

// fromValues reads a GET list's query. allowed is the v1 spec's parameter list: v1 validates
// strictly and refuses any other parameter; v2 (FastAPI) silently ignores unknown parameters.
func (q *query) fromValues(v version, vals url.Values, allowed []string, maxLimit, defLimit int, capLimit bool) *badRequest {
	if v.api == "v1" {
		var extra []string
		for k := range vals {
			if !slices.Contains(allowed, k) {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			return &badRequest{400, fmt.Sprintf("Extra query parameter(s) %s not in spec", strings.Join(extra, ", "))}
		}
	}
	for k, vs := range vals {
		if v.api == "v2" && !slices.Contains(allowed, k) {
			continue
		}
		switch {
		case isTimeParam(k):
			if bad := q.setTime(v, "query", k, vs[0]); bad != nil {
				return bad
			}
		case k == "state":
			q.statesSet = true
			for _, s := range vs {
				q.states = append(q.states, normState(s))
			}
		case k == "pool":
			q.pools = vs
		case k == "queue":
			q.queues = vs
		case k == "task_id":
			q.taskIDs = vs
		case k == "order_by":
			q.orderBy = vs
		case k == "duration_gte" || k == "duration_lte":
			f, err := strconv.ParseFloat(vs[0], 64)
			if err != nil {
				return v.typeError("query", k, vs[0], "number")
			}
			if k == "duration_gte" {
				q.durGTE = &f
			} else {
				q.durLTE = &f
			}
		}
	}
	return q.page(v, vals.Get("limit"), vals.Get("offset"), maxLimit, defLimit, capLimit)
}

func (v version) typeError(loc, name, value, want string) *badRequest {
	if v.api == "v1" {
		return &badRequest{400, fmt.Sprintf("'%s' is not of type '%s'", value, want)}
	}
	return &badRequest{422, []map[string]any{{"type": want + "_parsing", "loc": []string{loc, name}, "msg": "Input should be a valid " + want, "input": value}}}
}

// page reads limit and offset. capLimit is Airflow's check_limit: a limit above the maximum is
// silently lowered to it, and 0 means the fallback.
func (q *query) page(v version, limit, offset string, maxLimit, defLimit int, capLimit bool) *badRequest {
	q.limit, q.defaultLim = defLimit, defLimit
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil {
			return v.typeError("query", "limit", limit, "integer")
		}
		if n < 0 {
			return &badRequest{400, "Page limit must be a positive integer"}
		}
		q.limit = n
	}
	if capLimit {
		if q.limit == 0 {
			q.limit = defLimit
		}
		q.limit = min(q.limit, maxLimit)
	}
	if offset != "" {
		n, err := strconv.Atoi(offset)
		if err != nil || n < 0 {
			return v.typeError("query", "offset", offset, "integer")
		}
		q.offset = n
	}
	return nil
}

// fromBody reads a batch endpoint's JSON body. strictUnknown refuses unknown keys (the v1
// task-instance batch with marshmallow's RAISE, every v2 body with extra="forbid"); the v1
// DAG-run batch ignores them, so a filter it does not know is silently not applied.
func (q *query) fromBody(v version, body []byte, allowed []string, strictUnknown bool) *badRequest {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		if v.api == "v1" {
			return &badRequest{400, "Request body must be a JSON object: " + err.Error()}
		}
		return &badRequest{422, []map[string]any{{"type": "json_invalid", "loc": []any{"body", 0}, "msg": "JSON decode error", "input": map[string]any{}}}}
	}
	var unknown []string
	for k := range raw {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	if strictUnknown && len(unknown) > 0 {
		if v.api == "v1" {
			parts := make([]string, len(unknown))
			for i, k := range unknown {
				parts[i] = fmt.Sprintf("'%s': ['Unknown field.']", k)
			}
			return &badRequest{400, "{" + strings.Join(parts, ", ") + "}"}
		}
		var details []map[string]any
		for _, k := range unknown {
			details = append(details, map[string]any{"type": "extra_forbidden", "loc": []string{"body", k}, "msg": "Extra inputs are not permitted", "input": raw[k]})
		}
		return &badRequest{422, details}
	}
	for k, msg := range raw {
		if !slices.Contains(allowed, k) || string(msg) == "null" {
			continue
		}
		if bad := q.bodyField(v, k, msg); bad != nil {
			return bad
		}
	}
	return nil
}

func (q *query) bodyField(v version, k string, msg json.RawMessage) *badRequest {
	strs := func() ([]string, *badRequest) {
		var out []string
		if err := json.Unmarshal(msg, &out); err != nil {
			return nil, v.typeError("body", k, string(msg), "list")
		}
		return out, nil
	}
	var bad *badRequest
	switch {
	case isTimeParam(k):
		var s string
		if err := json.Unmarshal(msg, &s); err != nil {
			return v.typeError("body", k, string(msg), "datetime")
		}
		return q.setTime(v, "body", k, s)
	case k == "dag_ids":
		q.dagIDs, bad = strs()
	case k == "dag_run_ids":
		q.runIDs, bad = strs()
	case k == "task_ids":
		q.taskIDs, bad = strs()
	case k == "pool":
		q.pools, bad = strs()
	case k == "queue":
		q.queues, bad = strs()
	case k == "state" || k == "states":
		var ss []*string
		if err := json.Unmarshal(msg, &ss); err != nil {
			return v.typeError("body", k, string(msg), "list")
		}
		q.statesSet = true
		for _, s := range ss {
			if s == nil {
				q.states = append(q.states, None)
			} else {
				q.states = append(q.states, normState(*s))
			}
		}
	case k == "order_by":
		var s string
		if err := json.Unmarshal(msg, &s); err != nil {
			return v.typeError("body", k, string(msg), "string")
		}
		q.orderBy = []string{s}
	case k == "page_limit" || k == "page_offset":
		var n int
		if err := json.Unmarshal(msg, &n); err != nil || n < 0 {
			return v.typeError("body", k, string(msg), "integer")
		}
		if k == "page_limit" {
			q.limit = n
		} else {
			q.offset = n
		}
	}
	return bad
}

func contains(list []string, s string) bool { return len(list) == 0 || slices.Contains(list, s) }

func (q *query) matchRun(r *dagRun) bool {
	if !contains(q.dagIDs, r.dagID) || (q.statesSet && !slices.Contains(q.states, r.state)) {
		return false
	}
	var ld time.Time
	if r.logicalDate != nil {
		ld = *r.logicalDate
	}
	return q.times["start_date"].match(r.start) && q.times["end_date"].match(r.end) &&
		q.times["updated_at"].match(r.updatedAt) && q.times["logical_date"].match(ld) &&
		q.times["run_after"].match(r.runAfter)
}

func (q *query) matchTI(t *taskInstance, r *dagRun) bool {
	if !contains(q.dagIDs, t.key.dag) || !contains(q.runIDs, t.key.run) || !contains(q.taskIDs, t.key.task) ||
		!contains(q.pools, t.pool) || !contains(q.queues, t.queue) || (q.statesSet && !slices.Contains(q.states, t.state)) {
		return false
	}
	if q.durGTE != nil || q.durLTE != nil {
		d := t.duration()
		if d == nil || (q.durGTE != nil && *d < *q.durGTE) || (q.durLTE != nil && *d > *q.durLTE) {
			return false
		}
	}
	var ld time.Time
	if r.logicalDate != nil {
		ld = *r.logicalDate
	}
	return q.times["start_date"].match(t.start) && q.times["end_date"].match(t.end) &&
		q.times["updated_at"].match(t.updatedAt) && q.times["logical_date"].match(ld) &&
		q.times["run_after"].match(r.runAfter)
}

// sortKey compares two rows on one column; a zero time is null. Nulls sort last ascending and
// first descending, as PostgreSQL does (Airflow 3 forces nulls last either way).
type sortKey[T any] func(a, b T) (cmp int, aNull, bNull bool)

func timeKey[T any](get func(T) time.Time) sortKey[T] {
	return func(a, b T) (int, bool, bool) {
		ta, tb := get(a), get(b)
		return ta.Compare(tb), ta.IsZero(), tb.IsZero()
	}
}

func valKey[T any, V cmp.Ordered](get func(T) V) sortKey[T] {
	return func(a, b T) (int, bool, bool) { return cmp.Compare(get(a), get(b)), false, false }
}

var runKeys = map[string]sortKey[*dagRun]{
	"id":             valKey(func(r *dagRun) int64 { return r.id }),
	"state":          valKey(func(r *dagRun) string { return r.state }),
	"dag_id":         valKey(func(r *dagRun) string { return r.dagID }),
	"dag_run_id":     valKey(func(r *dagRun) string { return r.runID }),
	"run_id":         valKey(func(r *dagRun) string { return r.runID }),
	"start_date":     timeKey(func(r *dagRun) time.Time { return r.start }),
	"end_date":       timeKey(func(r *dagRun) time.Time { return r.end }),
	"updated_at":     timeKey(func(r *dagRun) time.Time { return r.updatedAt }),
	"run_after":      timeKey(func(r *dagRun) time.Time { return r.runAfter }),
	"execution_date": timeKey(func(r *dagRun) time.Time { return derefTime(r.logicalDate) }),
	"logical_date":   timeKey(func(r *dagRun) time.Time { return derefTime(r.logicalDate) }),
}

var tiKeys = map[string]sortKey[*taskInstance]{
	"id":          valKey(func(t *taskInstance) string { return t.uuid }),
	"state":       valKey(func(t *taskInstance) string { return t.state }),
	"map_index":   valKey(func(t *taskInstance) int { return t.key.mapIndex }),
	"try_number":  valKey(func(t *taskInstance) int { return t.tryNumber }),
	"start_date":  timeKey(func(t *taskInstance) time.Time { return t.start }),
	"end_date":    timeKey(func(t *taskInstance) time.Time { return t.end }),
	"updated_at":  timeKey(func(t *taskInstance) time.Time { return t.updatedAt }),
	"duration":    valKey(func(t *taskInstance) float64 { return derefFloat(t.duration()) }),
	"heap":        valKey(func(t *taskInstance) int64 { return t.heap }),
	"dag_run_id":  valKey(func(t *taskInstance) string { return t.key.run }),
	"task_id":     valKey(func(t *taskInstance) string { return t.key.task }),
	"dag_id":      valKey(func(t *taskInstance) string { return t.key.dag }),
	"primary_key": valKey(func(t *taskInstance) string { return t.uuid }),
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func derefFloat(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}

// order sorts rows by the order_by columns then tiebreak, refusing columns not in allowed with
// the server's message.
func order[T any](v version, rows []T, orderBy, allowed []string, keys map[string]sortKey[T], tiebreak string) *badRequest {
	type step struct {
		key  sortKey[T]
		desc bool
	}
	var steps []step
	for _, o := range orderBy {
		name := strings.TrimPrefix(o, "-")
		k, ok := keys[name]
		if !ok || !slices.Contains(allowed, name) {
			return &badRequest{400, fmt.Sprintf("Ordering with '%s' is disallowed or the attribute does not exist on the model", name)}
		}
		steps = append(steps, step{k, strings.HasPrefix(o, "-")})
	}
	if tiebreak != "" {
		desc := len(steps) > 0 && steps[0].desc && v.api == "v2"
		steps = append(steps, step{keys[tiebreak], desc})
	}
	slices.SortStableFunc(rows, func(a, b T) int {
		for _, s := range steps {
			c, an, bn := s.key(a, b)
			switch {
			case an && bn:
				continue
			case an != bn:
				last := 1
				if s.desc && v.api == "v1" {
					last = -1
				}
				if an {
					return last
				}
				return -last
			}
			if s.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	return nil
}

func window[T any](rows []T, q *query) []T {
	if !q.paginate {
		return rows
	}
	if q.offset >= len(rows) {
		return rows[:0]
	}
	return rows[q.offset:min(len(rows), q.offset+q.limit)]
}

func slicesSortHeap(rows []*taskInstance) {
	slices.SortFunc(rows, func(a, b *taskInstance) int { return cmp.Compare(a.heap, b.heap) })
}

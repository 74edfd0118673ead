package airflowsim

import (
	"fmt"
	"net/http"
	"net/url"
)

// Parameters each list accepts. v1 refuses any other (strict validation); v2 ignores them.
var (
	runParamsV1 = []string{"limit", "offset", "order_by", "state", "fields",
		"execution_date_gte", "execution_date_lte", "start_date_gte", "start_date_lte", "end_date_gte", "end_date_lte"}
	runParamsV2 = withRanges([]string{"limit", "offset", "order_by", "state", "run_type"},
		"run_after", "logical_date", "start_date", "end_date", "updated_at")
	runOrderV1 = []string{"id", "state", "dag_id", "execution_date", "dag_run_id", "start_date", "end_date", "updated_at"}
	runOrderV2 = []string{"id", "state", "dag_id", "run_id", "dag_run_id", "logical_date", "run_after", "start_date", "end_date", "updated_at"}

	tiParamsV1 = []string{"limit", "offset", "state", "pool", "queue", "duration_gte", "duration_lte",
		"execution_date_gte", "execution_date_lte", "start_date_gte", "start_date_lte", "end_date_gte", "end_date_lte"}
	tiParamsV2 = withRanges([]string{"limit", "offset", "order_by", "state", "pool", "queue", "executor", "task_id", "duration_gte", "duration_lte"},
		"run_after", "logical_date", "start_date", "end_date", "updated_at")
	tiOrderV1      = []string{"state", "duration", "start_date", "end_date", "map_index"}
	tiOrderV2      = []string{"id", "state", "duration", "start_date", "end_date", "map_index", "try_number"}
	tiBatchOrderV2 = []string{"id", "state", "duration", "start_date", "end_date", "map_index"}

	runBatchV1 = []string{"dag_ids", "states", "order_by", "page_offset", "page_limit",
		"execution_date_gte", "execution_date_lte", "start_date_gte", "start_date_lte", "end_date_gte", "end_date_lte"}
	runBatchV2 = withRanges([]string{"dag_ids", "states", "order_by", "page_offset", "page_limit"},
		"run_after", "logical_date", "start_date", "end_date")
	tiBatchV1 = []string{"dag_ids", "dag_run_ids", "task_ids", "state", "pool", "queue", "executor", "duration_gte", "duration_lte",
		"execution_date_gte", "execution_date_lte", "start_date_gte", "start_date_lte", "end_date_gte", "end_date_lte"}
	tiBatchV2 = withRanges([]string{"dag_ids", "dag_run_ids", "task_ids", "state", "pool", "queue", "executor",
		"order_by", "page_offset", "page_limit", "duration_gte", "duration_lte"},
		"run_after", "logical_date", "start_date", "end_date")
)

func withRanges(base []string, cols ...string) []string {
	out := append([]string(nil), base...)
	for _, c := range cols {
		out = append(out, c+"_gte", c+"_gt", c+"_lte", c+"_lt")
	}
	return out
}

func (s *Server) runParams() ([]string, []string) {
	if s.v.api == "v2" {
		return runParamsV2, runOrderV2
	}
	params := runParamsV1
	if s.v.updatedAt() {
		params = append(append([]string(nil), params...), "updated_at_gte", "updated_at_lte")
	}
	return params, runOrderV1
}

func (s *Server) tiParams() ([]string, []string) {
	if s.v.api == "v2" {
		return tiParamsV2, tiOrderV2
	}
	params := append([]string(nil), tiParamsV1...)
	if s.v.updatedAt() {
		params = append(params, "updated_at_gte", "updated_at_lte")
	}
	if s.v.atLeast(2, 10, 0) {
		params = append(params, "executor")
	}
	if s.v.tiOrderBy() {
		params = append(params, "order_by")
	}
	return params, tiOrderV1
}

type runCollection struct {
	DagRuns      []any `json:"dag_runs"`
	TotalEntries int   `json:"total_entries"`
}

type tiCollection struct {
	TaskInstances []any `json:"task_instances"`
	TotalEntries  int   `json:"total_entries"`
}

// defaultGETLimit is what a GET list returns without limit: fallback_page_limit (100) on v1,
// 50 on v2.
func (s *Server) defaultGETLimit() int {
	if s.v.api == "v2" {
		return 50
	}
	return 100
}

func (s *Server) listRuns(dag string, vals url.Values) (int, any) {
	params, orderable := s.runParams()
	q := newQuery()
	if bad := q.fromValues(s.v, vals, params, s.maxLimit, s.defaultGETLimit(), true); bad != nil {
		return 0, bad
	}
	if dag != "~" {
		q.dagIDs = []string{dag}
	}
	return s.runPage(q, orderable)
}

func (s *Server) listRunsBatch(body []byte) (int, any) {
	q := newQuery()
	allowed, orderable := runBatchV1, runOrderV1
	if s.v.api == "v2" {
		allowed, orderable = runBatchV2, runOrderV2
	}
	q.limit = 100
	// v1's DAG-run batch form ignores keys it does not know; v2 refuses them.
	if bad := q.fromBody(s.v, body, allowed, s.v.api == "v2"); bad != nil {
		return 0, bad
	}
	if s.v.api == "v1" {
		if q.limit == 0 {
			q.limit = 100
		}
		q.limit = min(q.limit, s.maxLimit)
	}
	return s.runPage(q, orderable)
}

func (s *Server) runPage(q *query, orderable []string) (int, any) {
	now := s.instant() // not a second reading: updated_at must not claim a later instant than the states shown
	var rows []*dagRun
	for _, r := range s.w.runs {
		if r.state == RunRunning && now.After(r.updatedAt) {
			// The scheduler examines running runs on every loop: their last_scheduling_decision,
			// hence updated_at, is always recent.
			r.updatedAt, r.lastSchedulingCheck = now, now
		}
		if q.matchRun(r) {
			rows = append(rows, r)
		}
	}
	orderBy := q.orderBy
	if len(orderBy) == 0 {
		orderBy = []string{"id"}
	}
	if bad := order(s.v, rows, orderBy, orderable, runKeys, "id"); bad != nil {
		return 0, bad
	}
	out := runCollection{DagRuns: []any{}, TotalEntries: len(rows)}
	for _, r := range window(rows, q) {
		out.DagRuns = append(out.DagRuns, s.v.encodeRun(r))
	}
	return http.StatusOK, out
}

func (s *Server) getRun(dag, run string) (int, any) {
	r, ok := s.w.runIdx[runKey{dag, run}]
	if !ok {
		if s.v.api == "v2" {
			return http.StatusNotFound, fmt.Sprintf("The DagRun with dag_id: `%s` and run_id: `%s` was not found", dag, run)
		}
		return http.StatusNotFound, fmt.Sprintf("DAGRun with DAG ID: '%s' and DagRun ID: '%s' not found", dag, run)
	}
	return http.StatusOK, s.v.encodeRun(r)
}

func (s *Server) listTIs(dag, run string, vals url.Values) (int, any) {
	params, orderable := s.tiParams()
	q := newQuery()
	if bad := q.fromValues(s.v, vals, params, s.maxLimit, s.defaultGETLimit(), s.v.api == "v2"); bad != nil {
		return 0, bad
	}
	if dag != "~" {
		q.dagIDs = []string{dag}
	}
	if run != "~" {
		if _, ok := s.w.runIdx[runKey{dag, run}]; !ok && dag != "~" {
			return http.StatusNotFound, fmt.Sprintf("DagRun with run_id: `%s` was not found", run)
		}
		q.runIDs = []string{run}
	}
	return s.tiPage(q, orderable, s.defaultTIOrder(), s.tiTiebreak())
}

// defaultTIOrder: v2 and v1 from 2.10.1 sort by map_index; older v1 servers do not sort at all.
func (s *Server) defaultTIOrder() []string {
	if s.v.tiOrderBy() {
		return []string{"map_index"}
	}
	return nil
}

// tiTiebreak: Airflow 3 always ends with the primary key; v1 leaves ties in physical order.
func (s *Server) tiTiebreak() string {
	if s.v.api == "v2" {
		return "id"
	}
	return "heap"
}

func (s *Server) listTIsBatch(body []byte) (int, any) {
	q := newQuery()
	if s.v.api == "v2" {
		q.limit = 100
		if bad := q.fromBody(s.v, body, tiBatchV2, true); bad != nil {
			return 0, bad
		}
		return s.tiPage(q, tiBatchOrderV2, []string{"id"}, "id")
	}
	allowed := tiBatchV1
	if s.v.tiOrderBy() {
		allowed = append(append([]string(nil), allowed...), "order_by")
	}
	if bad := q.fromBody(s.v, body, allowed, true); bad != nil {
		return 0, bad
	}
	q.paginate = false // the v1 batch returns every matching row
	return s.tiPage(q, tiOrderV1, s.defaultTIOrder(), "heap")
}

func (s *Server) tiPage(q *query, orderable, defaultOrder []string, tiebreak string) (int, any) {
	now := s.instant()
	var rows []*taskInstance
	runOf := map[*taskInstance]*dagRun{}
	for _, r := range s.w.runs {
		if len(q.dagIDs) > 0 && !contains(q.dagIDs, r.dagID) || len(q.runIDs) > 0 && !contains(q.runIDs, r.runID) {
			continue
		}
		for _, t := range r.tis {
			if s.v.heartbeats() && t.state == Running && now.After(t.updatedAt) {
				// Airflow 3's task runner heartbeats a running task instance every few seconds
				// (last_heartbeat_at), which moves its updated_at as well: it is always recent.
				t.updatedAt = now
			}
			if q.matchTI(t, r) {
				rows = append(rows, t)
				runOf[t] = r
			}
		}
	}
	orderBy := q.orderBy
	if len(orderBy) == 0 {
		orderBy = defaultOrder
	}
	if tiebreak == "heap" {
		// Physical order first: without ORDER BY, or for ties, PostgreSQL returns rows as stored.
		slicesSortHeap(rows)
	}
	if bad := order(s.v, rows, orderBy, orderable, tiKeys, tiebreak); bad != nil {
		return 0, bad
	}
	out := tiCollection{TaskInstances: []any{}, TotalEntries: len(rows)}
	for _, t := range window(rows, q) {
		out.TaskInstances = append(out.TaskInstances, s.v.encodeTI(t, runOf[t]))
	}
	return http.StatusOK, out
}

func (s *Server) tries(k tiKey, vals url.Values) (int, any) {
	if s.v.api == "v1" {
		if bad := newQuery().fromValues(s.v, vals, []string{"limit", "offset", "order_by"}, s.maxLimit, 100, false); bad != nil {
			return 0, bad
		}
	}
	r := s.w.runIdx[runKey{k.dag, k.run}]
	if r == nil {
		return http.StatusNotFound, fmt.Sprintf("DagRun with run_id: `%s` was not found", k.run)
	}
	var rows []any
	for i := range s.w.history[k] {
		rows = append(rows, s.v.encodeTry(&s.w.history[k][i], r))
	}
	if ti, ok := s.w.tiIdx[k]; ok {
		// A row waiting to retry is already in the history: Airflow 3 and 2.10.4+ leave it out
		// (apache/airflow #43891); earlier 2.10 releases list that try twice.
		if ti.state != UpForRetry || (s.v.api == "v1" && !s.v.atLeast(2, 10, 4)) {
			rows = append(rows, s.v.encodeTry(ti, r))
		}
	}
	if len(rows) == 0 && s.v.api == "v2" {
		return http.StatusNotFound, fmt.Sprintf("The Task Instance with dag_id: `%s`, run_id: `%s`, task_id: `%s` and map_index: `%d` was not found", k.dag, k.run, k.task, k.mapIndex)
	}
	if rows == nil {
		rows = []any{}
	}
	return http.StatusOK, tiCollection{TaskInstances: rows, TotalEntries: len(rows)}
}

-- task_events: every task transition of both sources, deduplicated, in source-neutral columns.
-- task is the name a task keeps from run to run: Argo's display name without the retry suffix
-- "(N)", Airflow's task_id. attempt is Argo's retry index or Airflow's try number. The Argo
-- workflow's own root node is left out: the run itself is in the runs view.
-- attempt_started_at is when the attempt first started and attempt_duration_seconds runs from it to
-- this event's end: an Airflow sensor in reschedule mode runs one try as several pokes, and
-- Airflow 2.0 to 3.2 overwrite start_date with each poke's start, so a try's first start is the
-- earliest start among its events (what its span in APM starts with). Elsewhere they are
-- started_at and duration_seconds.
SELECT
  'argo' AS source,
  tenant,
  environment,
  instance,
  pipeline,
  run_uid,
  event_id,
  publish_time,
  REGEXP_REPLACE(COALESCE(node_display_name, node_name, node_id), r'\(\d+\)$', '') AS task,
  node_type AS task_type,
  node_attempt AS attempt,
  node_phase AS state,
  status,
  node_started_at AS started_at,
  node_finished_at AS finished_at,
  node_duration_seconds AS duration_seconds,
  CAST(NULL AS FLOAT64) AS queue_seconds,
  node_started_at AS attempt_started_at,
  node_duration_seconds AS attempt_duration_seconds
FROM `${project}.${dataset}.argo_dedup`
WHERE node_id IS DISTINCT FROM name
UNION ALL
SELECT
  'airflow' AS source,
  tenant,
  environment,
  instance,
  pipeline,
  run_uid,
  event_id,
  publish_time,
  task_id AS task,
  task_type,
  try_number AS attempt,
  task_state AS state,
  status,
  task_start_date AS started_at,
  task_end_date AS finished_at,
  task_duration_seconds AS duration_seconds,
  queue_seconds,
  attempt_started_at,
  TIMESTAMP_DIFF(task_end_date, attempt_started_at, MICROSECOND) / 1e6 AS attempt_duration_seconds
FROM (
  SELECT
    *,
    -- Task-instance tries only: FARM's task-group and mapped-task nodes (try 0) have no tries.
    IF(try_number > 0, MIN(task_start_date) OVER (PARTITION BY run_uid, task_id, map_index, try_number), task_start_date)
      AS attempt_started_at
  FROM `${project}.${dataset}.airflow_dedup`
)

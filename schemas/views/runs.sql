-- runs: one row per workflow run (Argo workflow, Airflow DAG run) of both sources, in the latest
-- state FARM observed (latest observed_at). duration_seconds is set once the run has finished.
WITH observations AS (
  SELECT
    'argo' AS source, tenant, environment, instance, pipeline, run_uid,
    name AS run_name, phase, run_status, started_at, finished_at, observed_at, publish_time, event_id
  FROM `${project}.${dataset}.argo_dedup`
  UNION ALL
  SELECT
    'airflow' AS source, tenant, environment, instance, pipeline, run_uid,
    dag_run_id AS run_name, state AS phase, run_status, start_date AS started_at, end_date AS finished_at,
    observed_at, publish_time, event_id
  FROM `${project}.${dataset}.airflow_dedup`
)
SELECT
  source, tenant, environment, instance, pipeline, run_uid, run_name, phase, run_status,
  started_at, finished_at,
  TIMESTAMP_DIFF(finished_at, started_at, MICROSECOND) / 1e6 AS duration_seconds,
  observed_at
FROM (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY source, tenant, environment, instance, run_uid
      ORDER BY observed_at DESC, publish_time DESC, event_id DESC
    ) AS latest
  FROM observations
)
WHERE latest = 1

-- task_duration_daily: how long task attempts take, per pipeline, task and day (UTC day the attempt
-- finished). Counts attempts that ran and ended: succeeded, failed, errored, or an Airflow try
-- that ended up_for_retry. Skipped, omitted, removed and upstream_failed tasks never ran and are
-- left out. A sensor in reschedule mode is one attempt per try from its first poke's start to its
-- end, as its span in APM: its pokes (up_for_reschedule) are not attempts. Percentiles are exact
-- (PERCENTILE_CONT, interpolated).
WITH attempts AS (
  SELECT
    source, tenant, environment, pipeline, task, task_type,
    DATE(finished_at) AS day,
    attempt_duration_seconds AS duration_seconds,
    status IN ('failed', 'errored', 'up_for_retry') AS failed
  FROM `${project}.${dataset}.task_events`
  WHERE status IN ('succeeded', 'failed', 'errored', 'up_for_retry')
    AND attempt_duration_seconds IS NOT NULL
),
ranked AS (
  SELECT
    *,
    PERCENTILE_CONT(duration_seconds, 0.5) OVER w AS p50,
    PERCENTILE_CONT(duration_seconds, 0.9) OVER w AS p90,
    PERCENTILE_CONT(duration_seconds, 0.99) OVER w AS p99
  FROM attempts
  WINDOW w AS (PARTITION BY source, tenant, environment, pipeline, task, task_type, day)
)
SELECT
  source, tenant, environment, pipeline, task, task_type, day,
  COUNT(*) AS attempts,
  COUNTIF(failed) AS failed_attempts,
  ANY_VALUE(p50) AS p50_seconds,
  ANY_VALUE(p90) AS p90_seconds,
  ANY_VALUE(p99) AS p99_seconds,
  MAX(duration_seconds) AS max_seconds,
  AVG(duration_seconds) AS avg_seconds
FROM ranked
GROUP BY source, tenant, environment, pipeline, task, task_type, day

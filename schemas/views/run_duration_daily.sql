-- run_duration_daily: how long finished runs take, per pipeline and day (UTC day the run
-- finished). Percentiles are exact (PERCENTILE_CONT, interpolated).
WITH finished AS (
  SELECT
    source, tenant, environment, pipeline,
    DATE(finished_at) AS day,
    duration_seconds,
    run_status IN ('failed', 'errored') AS failed
  FROM `${project}.${dataset}.runs`
  WHERE run_status IN ('succeeded', 'failed', 'errored')
    AND duration_seconds IS NOT NULL
),
ranked AS (
  SELECT
    *,
    PERCENTILE_CONT(duration_seconds, 0.5) OVER w AS p50,
    PERCENTILE_CONT(duration_seconds, 0.9) OVER w AS p90,
    PERCENTILE_CONT(duration_seconds, 0.99) OVER w AS p99
  FROM finished
  WINDOW w AS (PARTITION BY source, tenant, environment, pipeline, day)
)
SELECT
  source, tenant, environment, pipeline, day,
  COUNT(*) AS runs,
  COUNTIF(failed) AS failed_runs,
  ANY_VALUE(p50) AS p50_seconds,
  ANY_VALUE(p90) AS p90_seconds,
  ANY_VALUE(p99) AS p99_seconds,
  MAX(duration_seconds) AS max_seconds,
  AVG(duration_seconds) AS avg_seconds
FROM ranked
GROUP BY source, tenant, environment, pipeline, day

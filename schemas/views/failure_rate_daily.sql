-- failure_rate_daily: share of finished runs that failed, per pipeline and day (UTC day the run
-- finished). Sum runs and failed_runs over a range of days for a weekly or monthly rate.
SELECT
  source, tenant, environment, pipeline,
  DATE(finished_at) AS day,
  COUNT(*) AS runs,
  COUNTIF(run_status IN ('failed', 'errored')) AS failed_runs,
  SAFE_DIVIDE(COUNTIF(run_status IN ('failed', 'errored')), COUNT(*)) AS failure_rate
FROM `${project}.${dataset}.runs`
WHERE run_status IN ('succeeded', 'failed', 'errored')
  AND finished_at IS NOT NULL
GROUP BY source, tenant, environment, pipeline, day

-- queue_time_daily: how long Airflow task tries wait between queued (or scheduled) and start, per
-- pipeline, pool, queue and day (UTC day the try started). Each try counts once, however many of
-- its transitions were observed. Argo has no queue time of its own: a pod's wait for scheduling
-- is inside its startedAt..finishedAt.
WITH tries AS (
  SELECT
    tenant, environment, pipeline, pool, queue,
    DATE(MIN(task_start_date)) AS day,
    MAX(queue_seconds) AS queue_seconds
  FROM `${project}.${dataset}.airflow_dedup`
  WHERE queue_seconds IS NOT NULL
    AND task_start_date IS NOT NULL
  GROUP BY tenant, environment, pipeline, pool, queue, run_uid, task_id, map_index, try_number
),
ranked AS (
  SELECT
    *,
    PERCENTILE_CONT(queue_seconds, 0.5) OVER w AS p50,
    PERCENTILE_CONT(queue_seconds, 0.9) OVER w AS p90,
    PERCENTILE_CONT(queue_seconds, 0.99) OVER w AS p99
  FROM tries
  WINDOW w AS (PARTITION BY tenant, environment, pipeline, pool, queue, day)
)
SELECT
  'airflow' AS source, tenant, environment, pipeline, pool, queue, day,
  COUNT(*) AS tries,
  ANY_VALUE(p50) AS p50_seconds,
  ANY_VALUE(p90) AS p90_seconds,
  ANY_VALUE(p99) AS p99_seconds,
  MAX(queue_seconds) AS max_seconds,
  AVG(queue_seconds) AS avg_seconds
FROM ranked
GROUP BY tenant, environment, pipeline, pool, queue, day

-- airflow_dedup: the airflow table with exactly one row per event_id.
-- Every path into BigQuery is at least once (Pub/Sub redelivery, streaming insert ids deduped only
-- best-effort, backfill replays), so a task transition can have several rows; they share the
-- event_id. This keeps its first delivery (earliest publish_time, then message_id).
-- Reads the whole table: filter on the base table's publish_time when only recent rows matter.
SELECT * EXCEPT (delivery)
FROM (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY publish_time, message_id) AS delivery
  FROM `${project}.${dataset}.airflow`
)
WHERE delivery = 1

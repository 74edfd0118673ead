# One Cloud Scheduler job per source: an empty, authenticated POST to its poll function runs an
# incremental poll. Delivery is at least once; the poll's lease makes an overlap harmless (the
# second call answers 409 at once).

resource "google_cloud_scheduler_job" "poll" {
  for_each = local.sources

  name        = "${local.prefix}-poll-${each.key}"
  region      = var.region
  description = "FARM: polls ${each.value.kind} source ${each.key}."
  schedule    = each.value.schedule
  time_zone   = each.value.time_zone

  # Cloud Scheduler allows at most 30 minutes; variables.tf keeps the poll timeout below that.
  attempt_deadline = "${local.poll_scheduler_deadline_sec}s"

  retry_config {
    retry_count          = var.scheduler_retry_count
    min_backoff_duration = "10s"
    max_backoff_duration = "60s"
    max_doublings        = 2
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.function[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.function[each.key].service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.poll_invoker]
}

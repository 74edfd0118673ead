# FARM's own health in Google Cloud: log-based metrics read from the one summary line each poll
# logs (pkg/poll logResult: message "poll finished", or "poll failed" with severity ERROR, or
# WARNING when another poll held the lease or a backfill was refused), and alert policies for a
# poll that stopped
# succeeding, function errors, dead letters and failing Cloud Scheduler jobs. The pipelines'
# own monitors are DataDog's: see datadog/.
#
# internal/alerting evaluates local.log_metrics and checks each filter and extractor against the
# lines the real poll handler writes.

resource "google_project_service" "monitoring" {
  for_each = toset(["logging.googleapis.com", "monitoring.googleapis.com"])

  service            = each.key
  disable_on_destroy = false
}

locals {
  # The poll functions' log lines (their Cloud Run services are the poll functions).
  poll_log_scope = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=~\"^${local.prefix}-poll-\"",
  ])
  # The mode of a scheduled poll's summary line (backfills log "backfill" or "replay").
  scheduled_poll_mode = "incremental"
  # A poll that ran, successful or not (not one skipped because another held the lease).
  poll_ran = "(jsonPayload.message=\"poll finished\" OR (jsonPayload.message=\"poll failed\" AND severity=ERROR))"

  # Log-based metrics, named "<prefix>/<key>": labels are extracted from jsonPayload fields; a
  # metric with a value is a distribution of that field, else a count of matching lines.
  log_metrics = {
    poll_finished = {
      description = "Polls that succeeded: the \"poll finished\" summary lines."
      filter      = "${local.poll_log_scope} AND jsonPayload.message=\"poll finished\""
      labels      = { source = "jsonPayload.source", mode = "jsonPayload.mode" }
      value       = null
      unit        = "1"
    }
    poll_failed = {
      description = "Polls that failed (orchestrator, Pub/Sub or Firestore errors); a poll skipped because another held the lease is not counted."
      filter      = "${local.poll_log_scope} AND severity=ERROR AND jsonPayload.message=\"poll failed\""
      labels      = { source = "jsonPayload.source", mode = "jsonPayload.mode" }
      value       = null
      unit        = "1"
    }
    poll_cursor_lag = {
      description = "How stale FARM's view of a source was when a poll started: the time since the end of the last successful poll. It grows while polls fail."
      filter      = "${local.poll_log_scope} AND ${local.poll_ran} AND jsonPayload.cursor_lag_seconds>=0"
      labels      = { source = "jsonPayload.source" }
      value       = "jsonPayload.cursor_lag_seconds"
      unit        = "s"
    }
    poll_runs_changed = {
      description = "Runs whose state changed, per successful poll."
      filter      = "${local.poll_log_scope} AND jsonPayload.message=\"poll finished\""
      labels      = { source = "jsonPayload.source" }
      value       = "jsonPayload.runs_changed"
      unit        = "1"
    }
    poll_events = {
      description = "Task events published, per successful poll."
      filter      = "${local.poll_log_scope} AND jsonPayload.message=\"poll finished\""
      labels      = { source = "jsonPayload.source" }
      value       = "jsonPayload.events"
      unit        = "1"
    }
    poll_duration = {
      description = "Duration of each poll, successful or not."
      filter      = "${local.poll_log_scope} AND ${local.poll_ran}"
      labels      = { source = "jsonPayload.source" }
      value       = "jsonPayload.duration_seconds"
      unit        = "s"
    }
    scheduler_failed = {
      description = "Failed attempts of the poll functions' Cloud Scheduler jobs (409: a poll was already running, is not a failure)."
      filter = join(" AND ", [
        "resource.type=\"cloud_scheduler_job\"",
        "resource.labels.job_id=~\"^${local.prefix}-poll-\"",
        "severity>=ERROR",
        "NOT httpRequest.status=409",
      ])
      labels = {}
      value  = null
      unit   = "1"
    }
  }

  # Minutes between two scheduled polls of each source, read from its cron schedule.
  poll_cron = { for name, s in local.sources : name => split(" ", trimspace(s.schedule)) }
  poll_interval_minutes = { for name, f in local.poll_cron : name => (
    f[0] == "*" && f[1] == "*" ? 1 :
    can(regex("^\\*/[0-9]+$", f[0])) && f[1] == "*" ? tonumber(trimprefix(f[0], "*/")) :
    f[1] == "*" ? 60 :
    can(regex("^\\*/[0-9]+$", f[1])) ? 60 * tonumber(trimprefix(f[1], "*/")) :
    1440
  ) }

  # How long a source may go without a successful poll: Cloud Monitoring's absence window is 2
  # minutes to a day, in whole minutes.
  poll_stalled_minutes = { for name, minutes in local.poll_interval_minutes : name => min(1440, max(2,
    lookup(var.alert_poll_stalled.minutes, name, minutes * var.alert_poll_stalled.intervals),
  )) }

  farm_services = concat(
    [for f in local.poll_functions : f.name],
    [local.trace_endpoint.name, google_cloudfunctions2_function.function["sink"].name],
  )

  # Names in alert titles: "[farm prod] …".
  alert_title = "[${local.prefix} ${var.environment}]"
}

resource "google_logging_metric" "farm" {
  for_each = local.log_metrics

  name        = "${local.prefix}/${each.key}"
  description = "FARM: ${each.value.description}"
  filter      = each.value.filter

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = each.value.value == null ? "INT64" : "DISTRIBUTION"
    unit         = each.value.unit
    display_name = "FARM ${local.prefix} ${replace(each.key, "_", " ")}"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key         = labels.key
        value_type  = "STRING"
        description = "The summary line's ${labels.value}."
      }
    }
  }

  label_extractors = { for key, field in each.value.labels : key => "EXTRACT(${field})" }
  value_extractor  = each.value.value == null ? null : "EXTRACT(${each.value.value})"

  dynamic "bucket_options" {
    for_each = each.value.value == null ? [] : [each.value.value]
    content {
      exponential_buckets {
        num_finite_buckets = 24
        growth_factor      = 2
        scale              = 1
      }
    }
  }

  depends_on = [google_project_service.monitoring]
}

# --- A poll that stopped succeeding ----------------------------------------------------------------

resource "google_monitoring_alert_policy" "poll_stalled" {
  for_each = { for name, s in local.sources : name => s if var.alert_poll_stalled.enabled }

  display_name = "${local.alert_title} No successful poll of source ${each.key} for ${local.poll_stalled_minutes[each.key]} min"
  combiner     = "OR"
  severity     = "ERROR"

  conditions {
    display_name = "No \"poll finished\" from ${google_cloudfunctions2_function.function[each.key].name}"
    condition_absent {
      filter = join(" AND ", [
        "metric.type=\"logging.googleapis.com/user/${google_logging_metric.farm["poll_finished"].name}\"",
        "resource.type=\"cloud_run_revision\"",
        "resource.label.service_name=\"${google_cloudfunctions2_function.function[each.key].name}\"",
        "metric.label.mode=\"${local.scheduled_poll_mode}\"",
      ])
      duration = "${local.poll_stalled_minutes[each.key] * 60}s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_COUNT"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    subject   = "FARM stopped observing ${each.value.kind} source ${each.key}"
    mime_type = "text/markdown"
    content   = <<-EOT
      No incremental poll of source `${each.key}` (${each.value.url}) has succeeded for
      ${local.poll_stalled_minutes[each.key]} minutes: new runs are not traced and not written to
      BigQuery until one does. Nothing is lost while the orchestrator keeps its history: the next
      successful poll resumes from the last cursor.

      The poll's failures, in Logs Explorer:
      `resource.type="cloud_run_revision" AND resource.labels.service_name="${google_cloudfunctions2_function.function[each.key].name}" AND severity>=WARNING`
      (the `error` field says which side failed: the orchestrator, Pub/Sub or Firestore). Check also
      the Cloud Scheduler job `${google_cloud_scheduler_job.poll[each.key].name}`.
    EOT
  }

  notification_channels = var.notification_channels
  user_labels           = local.labels

  lifecycle {
    precondition {
      condition     = alltrue([for name in keys(var.alert_poll_stalled.minutes) : contains(keys(local.sources), name)])
      error_message = "alert_poll_stalled.minutes names a source that is not in sources (${join(", ", keys(var.alert_poll_stalled.minutes))}); use the sources' names."
    }
  }
}

# --- Function errors -------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "function_errors" {
  for_each = var.alert_function_errors.enabled ? toset(["functions"]) : toset([])

  display_name = "${local.alert_title} FARM functions answer errors"
  combiner     = "OR"
  severity     = "WARNING"

  conditions {
    display_name = "More than ${var.alert_function_errors.threshold} 5xx answers in ${var.alert_function_errors.window_minutes} min"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"run.googleapis.com/request_count\"",
        "resource.type=\"cloud_run_revision\"",
        "metric.label.response_code_class=\"5xx\"",
        "resource.label.service_name=one_of(${join(", ", [for s in local.farm_services : "\"${s}\""])})",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_function_errors.threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "${var.alert_function_errors.window_minutes * 60}s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "FARM function $${resource.label.service_name} answers errors"
    mime_type = "text/markdown"
    content   = <<-EOT
      A FARM function answered requests with a 5xx status. A poll function answers 502 when the
      orchestrator failed and 503 when Pub/Sub or Firestore did; the trace and BigQuery sink
      functions answer an error when the DataDog agent or BigQuery is unreachable, and Pub/Sub
      delivers the message again (until max_delivery_attempts, then to the dead-letter topic).

      Logs Explorer: `resource.type="cloud_run_revision" AND resource.labels.service_name="<service>" AND severity>=ERROR`.
    EOT
  }

  notification_channels = var.notification_channels
  user_labels           = local.labels
}

# --- Dead letters ----------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "dead_letters" {
  for_each = var.alert_dead_letters.enabled ? toset(["dead_letters"]) : toset([])

  display_name = "${local.alert_title} Run deltas in the dead-letter subscription"
  combiner     = "OR"
  severity     = "ERROR"

  conditions {
    display_name = "${google_pubsub_subscription.dead_letter.name} holds more than ${var.alert_dead_letters.threshold} messages"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\"",
        "resource.type=\"pubsub_subscription\"",
        "resource.label.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_dead_letters.threshold
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "FARM run deltas in the dead-letter subscription"
    mime_type = "text/markdown"
    content   = <<-EOT
      The trace or BigQuery sink function failed some run deltas ${var.max_delivery_attempts} times;
      Pub/Sub moved them to `${google_pubsub_subscription.dead_letter.name}`. Their spans or rows are
      missing until they are delivered again. Read them with
      `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.name} --limit=10`
      (the `source` and `batch_id` attributes name the batch, the data its runs; messages of releases before batches carry `delta_id`), fix the cause (the functions' error
      logs), then replay the window with a backfill ({"since", "until", "replay": true}) and
      acknowledge the dead letters. The incident closes when the subscription is empty.
    EOT
  }

  notification_channels = var.notification_channels
  user_labels           = local.labels
}

# --- Cloud Scheduler -------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "scheduler_failures" {
  for_each = var.alert_scheduler_failures.enabled ? toset(["scheduler"]) : toset([])

  display_name = "${local.alert_title} Scheduled polls fail"
  combiner     = "OR"
  severity     = "WARNING"

  conditions {
    display_name = "More than ${var.alert_scheduler_failures.threshold} failed attempts of a poll job in ${var.alert_scheduler_failures.window_minutes} min"
    condition_threshold {
      filter = join(" AND ", [
        "metric.type=\"logging.googleapis.com/user/${google_logging_metric.farm["scheduler_failed"].name}\"",
        "resource.type=\"cloud_scheduler_job\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_scheduler_failures.threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "${var.alert_scheduler_failures.window_minutes * 60}s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.job_id"]
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    subject   = "FARM poll job $${resource.label.job_id} fails"
    mime_type = "text/markdown"
    content   = <<-EOT
      Cloud Scheduler could not run a poll: the function answered an error, refused the call
      (403: the scheduler's service account lost roles/run.invoker), was not found, or did not
      answer within the attempt deadline.

      Logs Explorer: `${local.log_metrics.scheduler_failed.filter}`.
    EOT
  }

  notification_channels = var.notification_channels
  user_labels           = local.labels
}

# The run-delta topic, its two push subscriptions (trace, BigQuery sink) with retry and a maximum
# delivery count, and the dead-letter topic with a subscription that keeps what it receives.

resource "google_pubsub_topic" "deltas" {
  name = "${local.prefix}-run-deltas"

  # A delta not consumed within a week is replayable from the orchestrator (backfill), not here.
  message_retention_duration = "604800s"

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  name       = "${local.prefix}-dead-letter"
  depends_on = [google_project_service.apis]
}

# Messages published to a topic without subscriptions are dropped: this one keeps dead letters for
# inspection (gcloud pubsub subscriptions pull) and replay.
resource "google_pubsub_subscription" "dead_letter" {
  name  = "${local.prefix}-dead-letter"
  topic = google_pubsub_topic.dead_letter.id

  message_retention_duration = "604800s"
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = "" # never expires, however quiet
  }
}

locals {
  # Name and URL of each consumer; the trace consumer is a function or, with the DataDog sidecar,
  # a Cloud Run service (trace.tf).
  consumers = {
    trace = { name = local.trace_endpoint.name, uri = local.trace_endpoint.uri }
    sink  = { name = google_cloudfunctions2_function.function["sink"].name, uri = google_cloudfunctions2_function.function["sink"].service_config[0].uri }
  }
}

resource "google_pubsub_subscription" "consumer" {
  for_each = local.consumers

  name  = each.value.name
  topic = google_pubsub_topic.deltas.id

  ack_deadline_seconds    = var.consumer_timeout_seconds
  enable_message_ordering = var.message_ordering

  push_config {
    # The path names the topic, for the request logs; the functions read the push body itself.
    push_endpoint = "${each.value.uri}/${google_pubsub_topic.deltas.id}"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = each.value.uri
    }
  }

  # A failed delivery (the function answered an error: agent or BigQuery unreachable) comes back
  # with backoff, up to max_delivery_attempts, then goes to the dead-letter topic.
  retry_policy {
    minimum_backoff = var.retry_backoff.minimum
    maximum_backoff = var.retry_backoff.maximum
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_service_account_iam_member.push_token_creator,
  ]
}

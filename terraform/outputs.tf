output "function_urls" {
  description = "URL of every FARM function (each needs an identity token with roles/run.invoker)."
  value = merge(
    { for name, f in local.poll_functions : f.name => f.service_config[0].uri },
    { (local.trace_endpoint.name) = local.trace_endpoint.uri },
    { (google_cloudfunctions2_function.function["sink"].name) = google_cloudfunctions2_function.function["sink"].service_config[0].uri },
  )
}

output "poll_urls" {
  description = "Poll function URL per source."
  value       = { for name, f in local.poll_functions : name => f.service_config[0].uri }
}

output "backfill_commands" {
  description = "Per source, an authenticated call that re-reads a window of the orchestrator's history (edit since/until; RFC 3339). The caller needs roles/run.invoker (backfill_invokers)."
  value = { for name, f in local.poll_functions : name => join(" ", [
    "curl -sS -X POST '${f.service_config[0].uri}'",
    "-H \"Authorization: Bearer $(gcloud auth print-identity-token)\"",
    "-H 'Content-Type: application/json'",
    "-d '{\"since\":\"2026-01-01T00:00:00Z\",\"until\":\"2026-01-02T00:00:00Z\"}'",
  ]) }
}

output "first_poll_log_query" {
  description = "Per source, the Cloud Logging query of the poll's summary line (message \"poll finished\")."
  value = { for name, f in local.poll_functions : name => join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${f.name}\"",
    "jsonPayload.message=\"poll finished\"",
  ]) }
}

output "secrets_to_fill" {
  description = "Secret Manager secrets FARM reads, and what each must hold. Add the value with: printf '%s' VALUE | gcloud secrets versions add SECRET --data-file=-"
  value       = { for id, what in local.secrets : id => join("; ", distinct(what)) }
}

output "source_object" {
  description = "The deployed source archive (gs://bucket/object); its name carries the archive's SHA-256."
  value       = "gs://${google_storage_bucket.source.name}/${google_storage_bucket_object.source.name}"
}

output "topic" {
  description = "Pub/Sub topic of run deltas."
  value       = google_pubsub_topic.deltas.id
}

output "dead_letter_subscription" {
  description = "Subscription holding messages the consumers could not process after max_delivery_attempts."
  value       = google_pubsub_subscription.dead_letter.id
}

output "service_accounts" {
  description = "Service account email of each FARM identity."
  value = merge(
    { for name, sa in google_service_account.poll : "poll-${name}" => sa.email },
    {
      trace     = google_service_account.trace.email
      sink      = google_service_account.sink.email
      build     = google_service_account.build.email
      scheduler = google_service_account.scheduler.email
      push      = google_service_account.push.email
    },
  )
}

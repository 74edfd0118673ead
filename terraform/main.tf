# Names and settings derived from the variables, shared by the files of each concern.

locals {
  prefix = var.name_prefix

  labels = merge(var.labels, {
    app         = "farm"
    tenant      = var.tenant
    environment = var.environment
  })

  # The repository's schemas directory: BigQuery tables and views are defined there, next to the
  # code that writes them (pkg/sink).
  schemas_dir = "${path.module}/../schemas"

  # Names the code knows: pkg/state/firestore (collections, TTL field) and farm.go (entry points).
  # internal/deploytest checks them against the code on every offline plan (make tf-validate).
  firestore_ttl_field       = "expire_at"
  firestore_ttl_collections = ["runs", "farm_ledger"]
  entry_points              = { argo = "PollArgo", airflow = "PollAirflow", trace = "Trace", sink = "BigQuerySink" }

  firestore_database          = coalesce(var.firestore_database, var.name_prefix)
  firestore_location          = coalesce(var.firestore_location, var.region)
  bigquery_location           = coalesce(var.bigquery_location, var.region)
  run_retention               = "${var.run_retention_days * 24}h"
  partition_expiration_ms     = var.bigquery_partition_expiration_days == null ? null : var.bigquery_partition_expiration_days * 86400000
  archive_sha256              = filesha256(var.source_archive)
  poll_scheduler_deadline_sec = var.poll_timeout_seconds + 30

  # Sources keyed by name, with the per-kind default of auth.
  sources = { for s in var.sources : s.name => merge(s, {
    auth = coalesce(s.auth, s.kind == "argo" ? "bearer" : "auto")
  }) }

  # Secret files a poll function reads: Secret Manager volumes, one per secret, each holding one
  # file the matching *_FILE variable points to (config.Reader.Secret reads it).
  source_secrets = { for name, s in local.sources : name => concat(
    s.kind == "argo" && s.auth == "bearer" ? [{
      purpose = "token", secret = coalesce(s.token_secret, "${local.prefix}-${name}-token"),
      env     = "FARM_ARGO_TOKEN_FILE", what = "Argo Server bearer token (a Kubernetes service account token) of source ${name}"
    }] : [],
    s.kind == "argo" && s.ca_secret != null ? [{
      purpose = "ca", secret = s.ca_secret,
      env     = "FARM_ARGO_CA_FILE", what = "PEM bundle trusted for the Argo Server of source ${name}"
    }] : [],
    s.kind == "airflow" && contains(["basic", "jwt"], s.auth) ? [{
      purpose = "password", secret = coalesce(s.password_secret, "${local.prefix}-${name}-password"),
      env     = "FARM_AIRFLOW_PASSWORD_FILE", what = "Airflow password of user ${coalesce(s.username, "-")} for source ${name}"
    }] : [],
    s.kind == "airflow" && s.auth == "bearer" ? [{
      purpose = "token", secret = coalesce(s.token_secret, "${local.prefix}-${name}-token"),
      env     = "FARM_AIRFLOW_TOKEN_FILE", what = "Airflow API bearer token of source ${name}"
    }] : [],
  ) }

  # Every read of a secret: which secret, what it holds, and which function's service account
  # reads it (a secret may be shared by several sources).
  secret_reads = concat(
    flatten([for name, list in local.source_secrets : [for s in list : {
      secret = s.secret, what = s.what, reader = "poll-${name}"
    }]]),
    local.datadog_api_key_secret == null ? [] : [{
      secret = local.datadog_api_key_secret, what = "DataDog API key", reader = "trace"
    }],
  )
  secrets = { for r in local.secret_reads : r.secret => r.what... }

  # Settings every function reads (pkg/config Common).
  common_env = {
    FARM_PROJECT_ID         = var.project_id
    FARM_TENANT             = var.tenant
    FARM_ENVIRONMENT        = var.environment
    FARM_TOPIC              = google_pubsub_topic.deltas.name
    FARM_STATE_STORE        = "firestore"
    FARM_FIRESTORE_DATABASE = google_firestore_database.farm.name
    FARM_RUN_RETENTION      = local.run_retention
  }
}

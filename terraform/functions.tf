# The four functions, built from ONE source archive of the module (the root package registers all
# four; each function picks its entry point): one poll function per configured source, the trace
# function and the BigQuery sink.
#
# The trace and sink functions have no Eventarc trigger: an Eventarc subscription cannot carry a
# dead-letter policy or a maximum delivery count, so pubsub.tf owns push subscriptions that deliver
# to the functions' URLs. Both are HTTP functions that read the push envelope themselves
# (pkg/push): a malformed delivery is dead-lettered by FARM (FARM_DEAD_LETTER_TOPIC, with the
# reason) and acknowledged, instead of being refused by the Functions Framework and redelivered.

# --- Source archive ------------------------------------------------------------------------------
# Its object is named by the archive's SHA-256: a code change uploads a new object and redeploys
# the functions; anything else (a variable, a re-package of the same tree) rebuilds nothing.

resource "google_storage_bucket" "source" {
  name     = "${replace(var.project_id, "/[:.]/", "-")}-${local.prefix}-source"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true # holds only build inputs, uploaded again by every apply

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  name         = "farm-source-${local.archive_sha256}.zip"
  bucket       = google_storage_bucket.source.name
  source       = var.source_archive
  content_type = "application/zip"

  # The previous archive is deleted only after the functions have moved to the new one.
  lifecycle {
    create_before_destroy = true
  }
}

locals {
  build_source = {
    bucket = google_storage_bucket.source.name
    object = google_storage_bucket_object.source.name
  }

  # Secret volumes mount under this directory, one sub-directory per secret.
  secrets_dir = "/etc/secrets"

  # Go's soft memory limit, 90% of the poll function's memory: a backstop only (a poll's memory is
  # bounded by design: batches, FARM_POLL_MAX_RUNS), so that the collector works harder before
  # the instance would run out rather than after.
  poll_memory_mib = tonumber(regex("^[0-9]+", var.function_memory.poll)) * (can(regex("Gi$", var.function_memory.poll)) ? 1024 : 1)

  poll_env = { for name, s in local.sources : name => merge(
    local.common_env,
    { GOMEMLIMIT = "${floor(local.poll_memory_mib * 0.9)}MiB" },
    s.kind == "argo" ? {
      FARM_ARGO_URL            = s.url
      FARM_ARGO_INSTANCE       = name
      FARM_ARGO_UI_URL         = s.ui_url
      FARM_ARGO_NAMESPACE      = length(s.namespaces) > 0 ? join(",", s.namespaces) : null
      FARM_ARGO_LABEL_SELECTOR = s.label_selector
      } : {
      FARM_AIRFLOW_URL         = s.url
      FARM_AIRFLOW_INSTANCE    = name
      FARM_AIRFLOW_UI_URL      = s.ui_url
      FARM_AIRFLOW_AUTH        = s.auth
      FARM_AIRFLOW_USERNAME    = s.username
      FARM_AIRFLOW_API_VERSION = s.api_version
      FARM_AIRFLOW_DAG_INCLUDE = s.dag_include
      FARM_AIRFLOW_DAG_EXCLUDE = s.dag_exclude
    },
    { for f in local.source_secrets[name] : f.env => "${local.secrets_dir}/${f.purpose}/${f.purpose}" },
    var.function_env.poll,
    s.env,
  ) }

  # The tracer's settings (trace.tf: the agent it sends to; DataDog's unified service tagging).
  trace_env = merge(local.common_env, {
    DD_TRACE_AGENT_URL                   = local.trace_agent_url
    DD_SERVICE                           = local.trace_name
    DD_ENV                               = var.environment
    DD_VERSION                           = local.trace_version
    DD_INSTRUMENTATION_TELEMETRY_ENABLED = "false"
    DD_REMOTE_CONFIGURATION_ENABLED      = "false" # a tracer per group of deliveries: no remote config to poll
    # The tracer's own health metrics cost ~13% of the CPU per session and go to a statsd FARM does
    # not run; a larger GC target halves the collector's share. The bench measures the trace
    # throughput with both (pkg/apm/doc.go, BENCHMARKS.md).
    DD_TRACE_INTERNAL_METRICS_ENABLED = "false"
    GOGC                              = "400"
    FARM_TRACE_SERVICE_ARGO           = var.trace_service_argo
    FARM_TRACE_SERVICE_AIRFLOW        = var.trace_service_airflow
    FARM_DEAD_LETTER_TOPIC            = google_pubsub_topic.dead_letter.name
  }, var.function_env.trace)

  # The sink's push subscription (pubsub.tf) is named after the function. The push envelope names
  # it; the sink is also told its full name (a fallback for deliveries that do not), built from strings:
  # the subscription refers to the function's URI, so its id would make a cycle.
  sink_name         = "${local.prefix}-bigquery-sink"
  sink_subscription = "projects/${var.project_id}/subscriptions/${local.sink_name}"

  sink_env = merge(local.common_env, {
    FARM_SINK              = "bigquery"
    FARM_BIGQUERY_PROJECT  = var.project_id
    FARM_BIGQUERY_DATASET  = google_bigquery_dataset.farm.dataset_id
    FARM_SINK_SUBSCRIPTION = local.sink_subscription
    FARM_DEAD_LETTER_TOPIC = google_pubsub_topic.dead_letter.name
  }, var.function_env.sink)

  direct_vpc = try(coalesce(var.vpc_access.network, var.vpc_access.subnetwork), null) != null
  # Private network access of the poll and trace functions: a connector or Direct VPC egress.
  vpc = {
    connector         = try(var.vpc_access.connector, null)
    connector_egress  = try(var.vpc_access.connector, null) == null ? null : var.vpc_access.egress
    direct_egress     = local.direct_vpc ? "VPC_EGRESS_${var.vpc_access.egress}" : null
    direct_interfaces = local.direct_vpc ? [var.vpc_access] : []
  }
}

# --- The functions: one block for the three kinds ---------------------------------------------
# Keyed by source name for the poll functions, and "trace" and "sink" for the consumers (variables.tf
# keeps those two names from sources). The poll functions keep the keys they had as
# google_cloudfunctions2_function.poll, so the moved blocks below carry an existing deployment
# over without replacing any function.
#
# Poll functions are HTTP, called by Cloud Scheduler and by people for backfills. With
# datadog_agent_url the "trace" instance is the trace function, pushed to by Pub/Sub; with
# datadog_site it only builds the trace image from the source archive (trace.tf explains why) and
# serves nothing: nobody may invoke it, and the Cloud Run service of trace.tf runs its image beside
# the DataDog agent. The sink writes task events to BigQuery rows.

locals {
  # The functions' names depend on variables only, so that tests which evaluate the configuration
  # without planning it (internal/alerting) can compute them.
  function_names = merge(
    { for name in keys(local.sources) : name => "${local.prefix}-poll-${name}" },
    { trace = local.datadog_sidecar ? "${local.trace_name}-build" : local.trace_name, sink = local.sink_name },
  )

  functions = merge(
    { for name, s in local.sources : name => {
      description     = "FARM: polls ${s.kind} source ${name} (${s.url}) and publishes run deltas."
      entry_point     = local.entry_points[s.kind]
      service_account = google_service_account.poll[name].email
      memory          = var.function_memory.poll
      cpu             = null
      # One poll at a time per instance: a poll holds its source's lease.
      concurrency   = 1
      timeout       = var.poll_timeout_seconds
      max_instances = var.poll_max_instances
      # Backfills come from people's machines; IAM (run.invoker) still guards every call.
      ingress        = "ALLOW_ALL"
      env            = local.poll_env[name]
      secret_volumes = local.source_secrets[name]
      secret_env     = []
      vpc            = true
    } },
    {
      trace = {
        description     = local.datadog_sidecar ? "FARM: builds the trace image that Cloud Run service ${local.trace_name} runs beside the DataDog agent; receives no traffic." : "FARM: turns run deltas into DataDog APM spans (push subscription ${local.prefix}-trace)."
        entry_point     = local.entry_points.trace
        service_account = google_service_account.trace.email
        memory          = var.function_memory.trace
        cpu             = var.consumer_cpu.trace
        # Deliveries that arrive together share an instance's billed time and the tracer's session.
        concurrency   = var.consumer_concurrency.trace
        timeout       = var.consumer_timeout_seconds
        max_instances = local.datadog_sidecar ? 1 : var.consumer_max_instances
        # Only Pub/Sub push (from inside Google Cloud) calls the consumers.
        ingress        = "ALLOW_INTERNAL_ONLY"
        env            = local.trace_env
        secret_volumes = []
        secret_env     = local.datadog_sidecar || local.datadog_api_key_secret == null ? [] : [local.datadog_api_key_secret]
        # The agent is on the VPC only in the external-agent mode.
        vpc = !local.datadog_sidecar
      }
      sink = {
        description     = "FARM: writes task events to BigQuery dataset ${var.bigquery_dataset} (push subscription ${local.sink_name})."
        entry_point     = local.entry_points.sink
        service_account = google_service_account.sink.email
        memory          = var.function_memory.sink
        cpu             = var.consumer_cpu.sink
        # Deliveries that arrive together share an instance's billed time and insert requests.
        concurrency    = var.consumer_concurrency.sink
        timeout        = var.consumer_timeout_seconds
        max_instances  = var.consumer_max_instances
        ingress        = "ALLOW_INTERNAL_ONLY"
        env            = local.sink_env
        secret_volumes = []
        secret_env     = []
        vpc            = false
      }
    },
  )
}

# The poll functions alone, by source name.
locals {
  poll_functions = { for name in keys(local.sources) : name => google_cloudfunctions2_function.function[name] }
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name        = local.function_names[each.key]
  location    = var.region
  description = each.value.description

  build_config {
    runtime         = var.go_runtime
    entry_point     = each.value.entry_point
    service_account = google_service_account.build.id
    source {
      storage_source {
        bucket = local.build_source.bucket
        object = local.build_source.object
      }
    }
  }

  service_config {
    service_account_email            = each.value.service_account
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    environment_variables            = { for k, v in each.value.env : k => v if v != null }

    dynamic "secret_volumes" {
      for_each = each.value.secret_volumes
      content {
        mount_path = "${local.secrets_dir}/${secret_volumes.value.purpose}"
        project_id = var.project_id
        secret     = secret_volumes.value.secret
        versions {
          version = "latest"
          path    = secret_volumes.value.purpose
        }
      }
    }

    dynamic "secret_environment_variables" {
      for_each = each.value.secret_env
      content {
        key        = "DD_API_KEY"
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }

    vpc_connector                 = each.value.vpc ? local.vpc.connector : null
    vpc_connector_egress_settings = each.value.vpc ? local.vpc.connector_egress : null
    direct_vpc_egress             = each.value.vpc ? local.vpc.direct_egress : null
    dynamic "direct_vpc_network_interface" {
      for_each = each.value.vpc ? local.vpc.direct_interfaces : []
      content {
        network    = direct_vpc_network_interface.value.network
        subnetwork = direct_vpc_network_interface.value.subnetwork
      }
    }
  }

  depends_on = [
    google_project_iam_member.build_logs,
    google_project_iam_member.build_images,
    google_project_iam_member.build_source,
    google_secret_manager_secret_iam_member.reader,
  ]
}

# The three blocks this one replaced. A whole-resource move keeps the poll functions' keys (the
# source names); the consumers move to their own keys.
moved {
  from = google_cloudfunctions2_function.poll
  to   = google_cloudfunctions2_function.function
}

moved {
  from = google_cloudfunctions2_function.trace
  to   = google_cloudfunctions2_function.function["trace"]
}

moved {
  from = google_cloudfunctions2_function.sink
  to   = google_cloudfunctions2_function.function["sink"]
}

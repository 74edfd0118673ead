# The trace function and its DataDog agent. Two modes (variables.tf: exactly one is set):
#
#   datadog_site       the default path. The trace function runs as a Cloud Run service with
#                      DataDog's serverless-init agent as a sidecar: the tracer sends to it on
#                      localhost:8126 and it forwards to the site with the API key from Secret
#                      Manager. Nothing else to run, no VPC for DataDog.
#   datadog_agent_url  an agent the team already runs: the trace function is the Cloud Run function
#                      of functions.tf, reaching the agent through vpc_access.
#
# Why the image comes from a Cloud Functions build: a google_cloud_run_v2_service's build_config
# only records how an image was built; setting it builds nothing (terraform-provider-google
# issues 22263 and 23057), and the Cloud Functions API, which does build, cannot add a sidecar. So
# the function of functions.tf builds the trace image from the same source archive as the other
# functions, and this service runs that image (read from the function's own Cloud Run service).
#
# CPU is always allocated (cpu_idle = false, instance-based billing): the sidecar holds the spans
# it accepted and forwards them on a 3-second timer, which a CPU throttled between requests would
# stall until the next request or the shutdown. pkg/apm/doc.go ("Delivery through the sidecar")
# has the details; the README ("The DataDog agent") its cost.

locals {
  datadog_sidecar = var.datadog_site != null
  trace_name      = "${local.prefix}-trace"
  trace_version   = substr(local.archive_sha256, 0, 12)

  # The sidecar's trace intake; serverless-init listens on 8126 like any DataDog agent.
  datadog_agent_port = 8126
  trace_agent_url    = local.datadog_sidecar ? "http://localhost:${local.datadog_agent_port}" : var.datadog_agent_url

  # The sidecar needs the key: by default a secret terraform creates for it.
  datadog_api_key_secret = var.datadog_api_key_secret != null ? var.datadog_api_key_secret : (local.datadog_sidecar ? "${local.prefix}-datadog-api-key" : null)

  # What Pub/Sub pushes to, IAM lets it invoke and alerting watches, whichever the mode: the
  # service's name, its URL, and the Cloud Run service that serves it.
  trace_endpoint = local.datadog_sidecar ? {
    name    = local.trace_name
    uri     = one(google_cloud_run_v2_service.trace[*].uri)
    service = one(google_cloud_run_v2_service.trace[*].name)
    } : {
    name    = google_cloudfunctions2_function.function["trace"].name
    uri     = google_cloudfunctions2_function.function["trace"].service_config[0].uri
    service = google_cloudfunctions2_function.function["trace"].service_config[0].service
  }

  trace_container   = "trace"
  datadog_container = "datadog-agent"
  # The Functions Framework's port in the function image (Cloud Run sets PORT to it).
  trace_port = 8080
}

# The image the function of functions.tf was built into, read once that function is deployed (a
# new archive rebuilds it first).
data "google_cloud_run_v2_service" "trace_build" {
  count = local.datadog_sidecar ? 1 : 0

  # A 2nd gen function's Cloud Run service carries the function's name.
  name     = google_cloudfunctions2_function.function["trace"].name
  location = var.region

  depends_on = [google_cloudfunctions2_function.function["trace"]]
}

resource "google_cloud_run_v2_service" "trace" {
  count = local.datadog_sidecar ? 1 : 0

  name        = local.trace_name
  location    = var.region
  description = "FARM: turns run deltas into DataDog APM spans (push subscription ${local.prefix}-trace), with DataDog's serverless-init agent as a sidecar."

  # Only Pub/Sub push (from inside Google Cloud) calls it, with an identity token (iam.tf).
  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"
  deletion_protection = var.deletion_protection
  # DataDog correlates the service's Google Cloud metrics with its traces by this label.
  labels = { service = local.trace_name }

  template {
    service_account = google_service_account.trace.email
    timeout         = "${var.consumer_timeout_seconds}s"
    # Deliveries that arrive together share an instance (and the tracer's session).
    max_instance_request_concurrency = var.consumer_concurrency.trace
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"

    scaling {
      max_instance_count = var.consumer_max_instances
    }

    containers {
      name  = local.trace_container
      image = one(data.google_cloud_run_v2_service.trace_build[*].template[0].containers[0].image)

      ports {
        container_port = local.trace_port
      }

      dynamic "env" {
        # FUNCTION_TARGET: the Functions Framework serves this entry point of the image.
        for_each = merge({ for k, v in local.trace_env : k => v if v != null }, { FUNCTION_TARGET = local.entry_points.trace })
        content {
          name  = env.key
          value = env.value
        }
      }

      resources {
        limits = {
          cpu    = var.consumer_cpu.trace
          memory = var.function_memory.trace
        }
        cpu_idle          = false
        startup_cpu_boost = true
      }

      # Started only once the agent accepts connections: the first delivery after a cold start
      # finds it listening.
      depends_on = [local.datadog_container]

      startup_probe {
        tcp_socket {
          port = local.trace_port
        }
        period_seconds    = 1
        timeout_seconds   = 1
        failure_threshold = 60
      }
    }

    containers {
      name  = local.datadog_container
      image = var.datadog_serverless_init_image

      dynamic "env" {
        for_each = {
          DD_SITE    = var.datadog_site
          DD_SERVICE = local.trace_name
          DD_ENV     = var.environment
          DD_VERSION = local.trace_version
          # FARM logs to Cloud Logging, where its alerting reads them: no log forwarding.
          DD_LOGS_ENABLED = "false"
        }
        content {
          name  = env.key
          value = env.value
        }
      }

      # The key is given to the agent only, from Secret Manager; the service account of this
      # service is the secret's one reader (secrets.tf).
      env {
        name = "DD_API_KEY"
        value_source {
          secret_key_ref {
            secret  = local.datadog_api_key_secret
            version = "latest"
          }
        }
      }

      resources {
        limits = {
          cpu    = var.datadog_sidecar_resources.cpu
          memory = var.datadog_sidecar_resources.memory
        }
        cpu_idle = false
      }

      # Healthy once the trace intake listens (the agent's own health port may answer before it).
      startup_probe {
        tcp_socket {
          port = local.datadog_agent_port
        }
        period_seconds    = 1
        timeout_seconds   = 1
        failure_threshold = 30
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.reader,
    google_project_iam_member.firestore,
  ]
}

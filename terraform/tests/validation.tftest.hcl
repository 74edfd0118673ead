# Bad input is refused at plan time by the validation block that explains it. Run by
# .ci/terraform.sh (`tofu test`), offline: plans only, with placeholder credentials.

variables {
  project_id        = "my-data-platform"
  source_archive    = "tests/fixtures/archive.bin"
  datadog_agent_url = "http://10.10.0.5:8126"
  sources = [
    { kind = "argo", name = "batch", url = "https://argo.example.com", namespaces = ["data"] },
    { kind = "airflow", name = "composer", url = "https://example-dot-europe-west1.composer.googleusercontent.com" },
  ]
}

run "valid_configuration_plans" {
  command = plan

  assert {
    condition     = length(local.poll_functions) == 2
    error_message = "Expected one poll function per source."
  }
  assert {
    condition     = google_cloudfunctions2_function.function["batch"].build_config[0].entry_point == "PollArgo" && google_cloudfunctions2_function.function["composer"].build_config[0].entry_point == "PollAirflow"
    error_message = "Each poll function must pick its kind's entry point."
  }
  assert {
    condition     = google_storage_bucket_object.source.name == "farm-source-${filesha256("tests/fixtures/archive.bin")}.zip"
    error_message = "The archive's object must be named by its SHA-256."
  }
  assert {
    condition     = keys(local.secrets) == ["farm-batch-token"]
    error_message = "Only the Argo source needs a secret (Composer uses Google credentials)."
  }
  assert {
    condition     = google_cloudfunctions2_function.function["sink"].service_config[0].environment_variables["FARM_SINK_SUBSCRIPTION"] == "projects/${var.project_id}/subscriptions/${google_pubsub_subscription.consumer["sink"].name}"
    error_message = "The sink must be told the full name of the subscription that pushes to it (the Functions Framework drops it from the push)."
  }
  assert {
    condition     = google_cloudfunctions2_function.function["sink"].service_config[0].max_instance_request_concurrency == var.consumer_concurrency.sink && var.consumer_concurrency.sink > 1 && google_cloudfunctions2_function.function["trace"].service_config[0].max_instance_request_concurrency == var.consumer_concurrency.trace && var.consumer_concurrency.trace > 1
    error_message = "Both consumers must take several deliveries at a time, as consumer_concurrency says."
  }
  assert {
    condition     = google_cloudfunctions2_function.function["sink"].service_config[0].available_cpu == "1" && google_cloudfunctions2_function.function["trace"].service_config[0].available_cpu == "1"
    error_message = "Both consumers must have the whole vCPU that concurrency above 1 needs."
  }
}

run "consumer_concurrency_out_of_range" {
  command = plan
  variables {
    consumer_concurrency = { sink = 0 }
  }
  expect_failures = [var.consumer_concurrency]
}

run "consumer_cpu_below_one" {
  command = plan
  variables {
    consumer_cpu = { trace = "0.5" }
  }
  expect_failures = [var.consumer_cpu]
}

# The default path: DataDog's agent as a sidecar of the trace function, nothing else to run.
run "sidecar_mode_plans" {
  command = plan
  variables {
    datadog_site      = "datadoghq.eu"
    datadog_agent_url = null
  }

  assert {
    condition     = length(google_cloud_run_v2_service.trace) == 1 && google_cloud_run_v2_service.trace[0].name == "farm-trace" && google_cloudfunctions2_function.function["trace"].name == "farm-trace-build"
    error_message = "With datadog_site the trace function must be the Cloud Run service farm-trace (its image built by the function farm-trace-build)."
  }
  assert {
    condition     = google_cloud_run_v2_service.trace[0].template[0].containers[1].image == var.datadog_serverless_init_image && contains(google_cloud_run_v2_service.trace[0].template[0].containers[0].depends_on, "datadog-agent")
    error_message = "The trace container must start after the serverless-init sidecar of the pinned image."
  }
  assert {
    condition     = contains(keys(local.secrets), "farm-datadog-api-key") && contains(keys(local.secret_readers), "farm-datadog-api-key/trace") && length([for k in keys(local.secret_readers) : k if startswith(k, "farm-datadog-api-key/")]) == 1
    error_message = "The DataDog API key secret must be created and readable by the trace service account only."
  }
  assert {
    condition     = length(google_cloud_run_v2_service.trace[0].template[0].vpc_access) == 0
    error_message = "The sidecar needs no VPC access."
  }
  assert {
    condition     = google_pubsub_subscription.consumer["trace"].name == "farm-trace" && google_cloud_run_v2_service_iam_member.push_invoker["trace"].name == "farm-trace"
    error_message = "Pub/Sub must push to, and be allowed to invoke, the trace service."
  }
}

run "both_datadog_modes" {
  command = plan
  variables {
    datadog_site = "datadoghq.com"
  }
  expect_failures = [var.datadog_site]
}

run "no_datadog_mode" {
  command = plan
  variables {
    datadog_agent_url = null
  }
  expect_failures = [var.datadog_site]
}

run "bad_datadog_site" {
  command = plan
  variables {
    datadog_site      = "app.datadoghq.com"
    datadog_agent_url = null
  }
  expect_failures = [var.datadog_site]
}

run "unpinned_sidecar_image" {
  command = plan
  variables {
    datadog_site                  = "datadoghq.com"
    datadog_agent_url             = null
    datadog_serverless_init_image = "gcr.io/datadoghq/serverless-init:latest"
  }
  expect_failures = [var.datadog_serverless_init_image]
}

run "missing_archive" {
  command = plan
  variables {
    source_archive = "tests/fixtures/no-such-archive.bin"
  }
  expect_failures = [var.source_archive]
}

run "unknown_kind" {
  command = plan
  variables {
    sources = [{ kind = "jenkins", name = "ci", url = "https://jenkins.example.com" }]
  }
  expect_failures = [var.sources]
}

run "duplicate_names" {
  command = plan
  variables {
    sources = [
      { kind = "argo", name = "one", url = "https://a.example.com" },
      { kind = "airflow", name = "one", url = "https://b.example.com" },
    ]
  }
  expect_failures = [var.sources]
}

run "source_named_like_a_consumer" {
  command = plan
  variables {
    sources = [{ kind = "argo", name = "sink", url = "https://a.example.com" }]
  }
  expect_failures = [var.sources]
}

run "relative_url" {
  command = plan
  variables {
    sources = [{ kind = "argo", name = "batch", url = "argo.example.com" }]
  }
  expect_failures = [var.sources]
}

run "basic_auth_without_user" {
  command = plan
  variables {
    sources = [{ kind = "airflow", name = "legacy", url = "https://airflow.example.com", auth = "basic" }]
  }
  expect_failures = [var.sources]
}

run "argo_auth_of_airflow" {
  command = plan
  variables {
    sources = [{ kind = "argo", name = "batch", url = "https://argo.example.com", auth = "jwt" }]
  }
  expect_failures = [var.sources]
}

run "secret_in_plain_env" {
  command = plan
  variables {
    sources = [{ kind = "argo", name = "batch", url = "https://argo.example.com", env = { FARM_ARGO_TOKEN = "s3cr3t" } }]
  }
  expect_failures = [var.sources]
}

run "bad_schedule" {
  command = plan
  variables {
    sources = [{ kind = "argo", name = "batch", url = "https://argo.example.com", schedule = "every minute" }]
  }
  expect_failures = [var.sources]
}

run "public_backfill_invoker" {
  command = plan
  variables {
    backfill_invokers = ["allUsers"]
  }
  expect_failures = [var.backfill_invokers]
}

run "bad_agent_url" {
  command = plan
  variables {
    datadog_agent_url = "10.10.0.5:8126"
  }
  expect_failures = [var.datadog_agent_url]
}

run "connector_and_direct_vpc" {
  command = plan
  variables {
    vpc_access = { connector = "farm", network = "default", subnetwork = "default" }
  }
  expect_failures = [var.vpc_access]
}

run "too_few_delivery_attempts" {
  command = plan
  variables {
    max_delivery_attempts = 2
  }
  expect_failures = [var.max_delivery_attempts]
}

run "poll_timeout_beyond_scheduler" {
  command = plan
  variables {
    poll_timeout_seconds = 3600
  }
  expect_failures = [var.poll_timeout_seconds]
}

run "secret_in_function_env" {
  command = plan
  variables {
    function_env = { trace = { DD_API_KEY = "s3cr3t" } }
  }
  expect_failures = [var.function_env]
}

run "url_with_credentials" {
  command = plan
  variables {
    sources = [{ kind = "argo", name = "batch", url = "https://farm:s3cret@argo.example.com" }]
  }
  expect_failures = [var.sources]
}

run "ui_url_with_credentials" {
  command = plan
  variables {
    sources = [{ kind = "airflow", name = "legacy", url = "https://airflow.example.com", auth = "none", ui_url = "https://admin:s3cret@airflow.example.com" }]
  }
  expect_failures = [var.sources]
}

run "env_url_with_credentials" {
  command = plan
  variables {
    sources = [{ kind = "argo", name = "batch", url = "https://argo.example.com", env = { FARM_ARGO_UI_URL = "https://u:p@argo-ui.example.com" } }]
  }
  expect_failures = [var.sources]
}

run "agent_url_with_credentials" {
  command = plan
  variables {
    datadog_agent_url = "http://dd:s3cret@10.10.0.5:8126"
  }
  expect_failures = [var.datadog_agent_url]
}

run "dataset_access_is_explicit" {
  command = plan
  variables {
    bigquery_readers = ["group:analysts@example.com", "domain:example.com"]
  }
  assert {
    condition     = length([for a in google_bigquery_dataset.farm.access : a if a.special_group == "projectReaders" || a.special_group == "projectWriters"]) == 0
    error_message = "The dataset must not be readable by every project viewer nor writable by every editor."
  }
  assert {
    condition     = length([for a in google_bigquery_dataset.farm.access : a if a.role == "READER"]) == 2
    error_message = "Each of bigquery_readers must be a READER of the dataset."
  }
}

run "bigquery_reader_not_a_member" {
  command = plan
  variables {
    bigquery_readers = ["analysts@example.com"]
  }
  expect_failures = [var.bigquery_readers]
}

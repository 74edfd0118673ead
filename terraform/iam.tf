# Identities and their grants: one service account per function with only what it needs, one for
# builds, one that Cloud Scheduler and one that Pub/Sub push use to call functions. Nothing is
# public: every call to a function carries an identity token (roles/run.invoker).

# --- Service accounts ----------------------------------------------------------------------------

resource "google_service_account" "poll" {
  for_each = local.sources

  account_id   = "${local.prefix}-poll-${each.key}"
  display_name = "FARM poll ${each.key}"
  description  = "Runs the poll function of ${each.value.kind} source ${each.key}: Firestore state, publish to the run-delta topic, its own secrets."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "trace" {
  account_id   = "${local.prefix}-trace"
  display_name = "FARM trace"
  description  = "Runs the trace function: Firestore ledger of handled deltas."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "sink" {
  account_id   = "${local.prefix}-sink"
  display_name = "FARM BigQuery sink"
  description  = "Runs the BigQuerySink function: writes rows to the FARM dataset."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "build" {
  account_id   = "${local.prefix}-build"
  display_name = "FARM function builds"
  description  = "Cloud Build identity that builds the FARM functions from the source archive."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  account_id   = "${local.prefix}-scheduler"
  display_name = "FARM scheduler"
  description  = "Identity of the Cloud Scheduler jobs: may only invoke the poll functions."
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "push" {
  account_id   = "${local.prefix}-push"
  display_name = "FARM Pub/Sub push"
  description  = "Identity of the push subscriptions: may only invoke the trace and BigQuery sink functions."
  depends_on   = [google_project_service.apis]
}

locals {
  # The Pub/Sub service agent forwards dead letters and mints the push identity tokens. The bucket
  # reports the project number, which keeps this out of a data source (plans stay offline-capable).
  pubsub_agent = "serviceAccount:service-${google_storage_bucket.source.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Firestore grants are limited to FARM's database by an IAM condition.
  firestore_condition = {
    title      = "farm-firestore-database"
    expression = "resource.name == \"projects/${var.project_id}/databases/${local.firestore_database}\""
  }

  firestore_users = merge(
    { for name, sa in google_service_account.poll : "poll-${name}" => sa.member },
    { trace = google_service_account.trace.member },
  )

  poll_invokers = merge(
    { scheduler = google_service_account.scheduler.member },
    { for m in var.backfill_invokers : m => m },
  )
}

# --- Builds --------------------------------------------------------------------------------------

# What a function build does as the build account: write its logs, push the function's image to
# the repository Cloud Functions builds into (gcf-artifacts, in the region), and read the source
# Cloud Functions copies from FARM's bucket into its own (gcf-v2-sources-<number>-<region>). Logs
# can only be granted on the project. The other two are granted on the project too, because
# Cloud Functions creates that repository and bucket on its first deployment (terraform cannot
# grant on them before), but an IAM condition limits each to those resources.
resource "google_project_iam_member" "build_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

resource "google_project_iam_member" "build_images" {
  project = var.project_id
  role    = "roles/artifactregistry.writer"
  member  = google_service_account.build.member

  condition {
    title       = "farm-build-repository"
    description = "Only the repository Cloud Functions builds into."
    expression  = "resource.name.startsWith(\"projects/${var.project_id}/locations/${var.region}/repositories/gcf-artifacts\")"
  }
}

resource "google_project_iam_member" "build_source" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.build.member

  # A project-level grant reaches only this project's buckets: the prefix names Cloud Functions'
  # source buckets (gcf-v2-sources-<number>-<region>) without the number, unknown at plan time.
  condition {
    title       = "farm-build-source"
    description = "Only the functions' source: FARM's archive bucket and Cloud Functions' copy of it."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.source.name}/\") || resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-\")"
  }
}

# --- Firestore: run state, cursors and leases (poll), the ledger of handled deltas (trace) --------

resource "google_project_iam_member" "firestore" {
  for_each = local.firestore_users

  project = var.project_id
  role    = "roles/datastore.user"
  member  = each.value

  condition {
    title      = local.firestore_condition.title
    expression = local.firestore_condition.expression
  }
}

# --- Pub/Sub: the polls publish; the consumers are pushed to ---------------------------------------

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = google_service_account.poll

  topic  = google_pubsub_topic.deltas.id
  role   = "roles/pubsub.publisher"
  member = each.value.member
}

resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = {
    trace = local.trace_endpoint.service
    sink  = google_cloudfunctions2_function.function["sink"].service_config[0].service
  }

  name     = each.value
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

# Pub/Sub signs the push requests' identity tokens as the push service account.
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# Dead-lettering: the service agent publishes to the dead-letter topic and acknowledges the
# forwarded message on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

# The consumers publish what they can never process to the dead-letter topic themselves, with the
# reason as an attribute, and acknowledge it (pkg/deadletter).
resource "google_pubsub_topic_iam_member" "consumer_dead_letter_publisher" {
  for_each = {
    trace = google_service_account.trace.member
    sink  = google_service_account.sink.member
  }

  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = each.value
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = google_pubsub_subscription.consumer

  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# --- Poll functions: invoked by Cloud Scheduler and by the backfill principals ----------------------

resource "google_cloud_run_v2_service_iam_member" "poll_invoker" {
  for_each = { for pair in setproduct(keys(local.sources), keys(local.poll_invokers)) : "${pair[0]}/${pair[1]}" => {
    service = google_cloudfunctions2_function.function[pair[0]].service_config[0].service
    member  = local.poll_invokers[pair[1]]
  } }

  name     = each.value.service
  location = var.region
  role     = "roles/run.invoker"
  member   = each.value.member
}

# --- BigQuery: rows into FARM's dataset --------------------------------------------------------------
# The sink only streams rows (tabledata.insertAll), which dataEditor on the dataset allows: it runs
# no job, so it has no bigquery.jobUser. Its WRITER access, and the readers', are the dataset's
# access list (bigquery.tf).

# The Google APIs FARM uses. They stay enabled on destroy: other workloads of the project may
# depend on them.

locals {
  apis = toset(concat([
    "artifactregistry.googleapis.com", # function images
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com", # function builds
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com", # OIDC tokens of Cloud Scheduler and Pub/Sub push
    "pubsub.googleapis.com",
    "run.googleapis.com", # 2nd gen functions run as Cloud Run services
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ], try(var.vpc_access.connector, null) == null ? [] : ["vpcaccess.googleapis.com"]))
}

resource "google_project_service" "apis" {
  for_each = local.apis

  service            = each.key
  disable_on_destroy = false
}

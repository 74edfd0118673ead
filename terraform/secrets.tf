# Secret Manager: the Argo tokens, Airflow credentials and the DataDog API key. Terraform creates
# the secrets (unless manage_secrets is false) and grants each to the one service account that
# reads it; the values are added with gcloud (README: "Secrets"), so they never enter variables or
# terraform state. Poll functions read theirs as files (mounted volumes, the *_FILE variables).

resource "google_secret_manager_secret" "farm" {
  for_each = var.manage_secrets ? local.secrets : {}

  secret_id = each.key
  annotations = {
    "farm-holds" = join("; ", distinct(each.value))
  }

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

locals {
  secret_readers = {
    for r in local.secret_reads : "${r.secret}/${r.reader}" => {
      secret = r.secret
      member = r.reader == "trace" ? google_service_account.trace.member : google_service_account.poll[trimprefix(r.reader, "poll-")].member
    }
  }
}

resource "google_secret_manager_secret_iam_member" "reader" {
  for_each = local.secret_readers

  # Through the managed secret when terraform created it, so the grant waits for it.
  secret_id = var.manage_secrets ? google_secret_manager_secret.farm[each.value.secret].id : "projects/${var.project_id}/secrets/${each.value.secret}"
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value.member
}

# The BigQuery dataset, the argo and airflow tables (schemas/*.json, laid out as pkg/sink.Tables
# says: day partitions on publish_time, clustered on pipeline and status) and the views
# (schemas/views/*.sql, templated with ${project} and ${dataset}).

resource "google_bigquery_dataset" "farm" {
  dataset_id  = var.bigquery_dataset
  location    = local.bigquery_location
  description = "FARM: task state changes of Argo Workflows and Airflow runs (tenant ${var.tenant}, ${var.environment})."

  delete_contents_on_destroy = false

  # The access list is explicit: without one, BigQuery lets every project viewer read the dataset
  # and every editor write it. Project owners keep ownership; the sink writes; the readers are
  # named (bigquery_readers). Roles are in the legacy form the API returns, so plans stay empty.
  access {
    role          = "OWNER"
    special_group = "projectOwners"
  }
  access {
    role          = "WRITER"
    user_by_email = google_service_account.sink.email
  }
  dynamic "access" {
    for_each = local.bigquery_readers
    content {
      role           = "READER"
      group_by_email = access.value.kind == "group" ? access.value.id : null
      user_by_email  = contains(["user", "serviceAccount"], access.value.kind) ? access.value.id : null
      domain         = access.value.kind == "domain" ? access.value.id : null
    }
  }

  depends_on = [google_project_service.apis]
}

locals {
  bigquery_readers = { for m in var.bigquery_readers : m => { kind = split(":", m)[0], id = join(":", slice(split(":", m), 1, length(split(":", m)))) } }
}

resource "google_bigquery_table" "events" {
  for_each = toset(["argo", "airflow"])

  dataset_id  = google_bigquery_dataset.farm.dataset_id
  table_id    = each.key
  description = "One row per ${each.key} task event (insert id: the event id). Read the ${each.key}_dedup view for one row per event."
  schema      = file("${local.schemas_dir}/${each.key}.json")

  time_partitioning {
    type          = "DAY"
    field         = "publish_time"
    expiration_ms = local.partition_expiration_ms
  }
  clustering = ["pipeline", "status"]

  deletion_protection = var.deletion_protection
}

# Views read tables and other views, and BigQuery checks a view's query when it is created, so
# they are created in layers: each layer reads only tables and the layers before it. The layers are
# computed from the SQL, so a new file in schemas/views needs no change here.
locals {
  view_sql = { for f in fileset("${local.schemas_dir}/views", "*.sql") : trimsuffix(f, ".sql") => templatefile(
    "${local.schemas_dir}/views/${f}", { project = var.project_id, dataset = var.bigquery_dataset }
  ) }
  view_reads = { for name, sql in local.view_sql : name => [
    for other in keys(local.view_sql) : other if other != name && strcontains(sql, ".${var.bigquery_dataset}.${other}`")
  ] }
  view_layer_1 = [for name, reads in local.view_reads : name if length(reads) == 0]
  view_layer_2 = [for name, reads in local.view_reads : name if !contains(local.view_layer_1, name) && length(setsubtract(reads, local.view_layer_1)) == 0]
  view_layer_3 = [for name, reads in local.view_reads : name if !contains(concat(local.view_layer_1, local.view_layer_2), name) && length(setsubtract(reads, concat(local.view_layer_1, local.view_layer_2))) == 0]
  view_layered = concat(local.view_layer_1, local.view_layer_2, local.view_layer_3)
}

resource "google_bigquery_table" "view_layer_1" {
  for_each = toset(local.view_layer_1)

  dataset_id          = google_bigquery_dataset.farm.dataset_id
  table_id            = each.key
  deletion_protection = false # a view holds no data
  view {
    query          = local.view_sql[each.key]
    use_legacy_sql = false
  }

  lifecycle {
    precondition {
      condition     = length(local.view_layered) == length(local.view_sql)
      error_message = "The views ${join(", ", setsubtract(keys(local.view_sql), local.view_layered))} read views nested more than 3 deep (or each other): add a layer in bigquery.tf."
    }
  }

  depends_on = [google_bigquery_table.events]
}

resource "google_bigquery_table" "view_layer_2" {
  for_each = toset(local.view_layer_2)

  dataset_id          = google_bigquery_dataset.farm.dataset_id
  table_id            = each.key
  deletion_protection = false
  view {
    query          = local.view_sql[each.key]
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.view_layer_1]
}

resource "google_bigquery_table" "view_layer_3" {
  for_each = toset(local.view_layer_3)

  dataset_id          = google_bigquery_dataset.farm.dataset_id
  table_id            = each.key
  deletion_protection = false
  view {
    query          = local.view_sql[each.key]
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.view_layer_2]
}

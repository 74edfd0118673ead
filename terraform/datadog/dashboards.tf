# The pipelines dashboard (dashboards/pipelines.json).
resource "datadog_dashboard_json" "farm" {
  for_each = local.dashboards

  dashboard = jsonencode(each.value)
}

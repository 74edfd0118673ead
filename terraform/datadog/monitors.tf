# The pipeline monitors: one per enabled kind (monitors/*.json) and source, built in main.tf.
resource "datadog_monitor_json" "pipeline" {
  for_each = local.monitors

  monitor = jsonencode(each.value)
}

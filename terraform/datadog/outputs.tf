output "monitor_ids" {
  description = "DataDog id of each pipeline monitor, keyed \"<source>_<kind>\"."
  value       = { for key, m in datadog_monitor_json.pipeline : key => m.id }
}

output "dashboard_urls" {
  description = "Link to each FARM dashboard."
  value       = { for name, d in datadog_dashboard_json.farm : name => "${local.template_vars.app_url}/dashboard/${d.id}" }
}

output "spans_metrics" {
  description = "Names of the span-based metrics FARM created."
  value       = [for m in datadog_spans_metric.farm : m.name]
}

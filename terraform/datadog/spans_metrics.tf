# Span-based metrics: custom metrics DataDog computes from every ingested span (not only the
# retained ones). FARM's trace function keeps every span, so they count every task.
resource "datadog_spans_metric" "farm" {
  for_each = local.spans_metrics

  name = each.value.id

  compute {
    aggregation_type    = each.value.attributes.compute.aggregation_type
    path                = try(each.value.attributes.compute.path, null)
    include_percentiles = try(each.value.attributes.compute.include_percentiles, null)
  }

  filter {
    query = each.value.attributes.filter.query
  }

  dynamic "group_by" {
    for_each = try(each.value.attributes.group_by, [])
    content {
      path     = group_by.value.path
      tag_name = try(group_by.value.tag_name, null)
    }
  }
}

# How the DataDog definitions are built. Each file in monitors/, dashboards/ and spans_metrics/ is
# the DataDog API's own JSON with ${...} placeholders inside its strings (so the file itself is
# valid JSON and can be pasted into DataDog's "Import JSON"); templatefile fills them in. Every
# pipeline monitor exists once per source in var.sources.
#
# internal/alerting renders these locals exactly as terraform does, decodes the result strictly
# into DataDog's API models, and fails when a query names an operation, tag or metric that FARM's
# trace function does not emit.

locals {
  # The sources FARM traces, keyed by pkg/event's source names. The operation names are
  # pkg/apm's constants (OpArgoWorkflow, OpArgoNode, OpAirflowDagRun, OpAirflowTask).
  sources = {
    argo = {
      source_label   = "Argo Workflows"
      service        = var.service_argo
      run_operation  = "argo.workflow"
      task_operation = "argo.node"
    }
    airflow = {
      source_label   = "Airflow"
      service        = var.service_airflow
      run_operation  = "airflow.dag_run"
      task_operation = "airflow.task"
    }
  }

  # Placeholders every file may use.
  template_vars = {
    env             = var.env
    app_url         = trimsuffix(var.datadog_app_url, "/")
    service_argo    = var.service_argo
    service_airflow = var.service_airflow
  }

  # Per source: its placeholders, and `scope`, the tag filter of every pipeline query.
  source_vars = { for src, s in local.sources : src => merge(s, {
    source = src
    scope = join(",", concat(
      ["env:${var.env}", "service:${s.service}"],
      [for p in var.exclude_pipelines : "!resource_name:${p}"],
    ))
  }) }

  # The pipeline monitors, by file name in monitors/. Thresholds left null keep the file's own.
  monitor_settings = {
    pipeline_success_rate = {
      enabled    = var.success_rate_monitor.enabled
      notify     = var.success_rate_monitor.notify
      thresholds = { critical = var.success_rate_monitor.critical_percent, warning = var.success_rate_monitor.warning_percent }
      options    = {}
    }
    pipeline_last_run = {
      enabled    = var.last_run_monitor.enabled
      notify     = var.last_run_monitor.notify
      thresholds = {}
      options    = { for k, v in { timeout_h = var.last_run_monitor.auto_resolve_hours } : k => v if v != null }
    }
    pipeline_run_duration = {
      enabled    = var.run_duration_monitor.enabled
      notify     = var.run_duration_monitor.notify
      thresholds = { critical = var.run_duration_monitor.critical_seconds, warning = var.run_duration_monitor.warning_seconds }
      options    = {}
    }
    pipeline_run_duration_anomaly = {
      enabled    = var.run_duration_anomaly_monitor.enabled
      notify     = var.run_duration_anomaly_monitor.notify
      thresholds = {}
      options    = {}
    }
  }

  monitor_files = { for kind in keys(local.monitor_settings) : kind => "${path.module}/monitors/${kind}.json" }

  # The thresholds in force: the file's, overridden by the variables that are set. The query's
  # own threshold (${critical}) is rendered from the same values, as DataDog requires.
  monitor_thresholds = { for kind, m in local.monitor_settings : kind => merge(
    jsondecode(file(local.monitor_files[kind])).options.thresholds,
    { for k, v in m.thresholds : k => v if v != null },
  ) }

  # One monitor per enabled kind and source, keyed "<source>_<kind>".
  monitor_instances = merge([for kind, m in local.monitor_settings : {
    for src in var.sources : "${src}_${kind}" => { kind = kind, source = src } if m.enabled
  }]...)

  monitor_bodies = { for key, mi in local.monitor_instances : key => jsondecode(templatefile(
    local.monitor_files[mi.kind],
    merge(local.template_vars, local.source_vars[mi.source], local.monitor_thresholds[mi.kind], {
      notify = join(" ", coalesce(local.monitor_settings[mi.kind].notify, var.notify))
    }),
  )) }

  monitors = { for key, body in local.monitor_bodies : key => merge(body, {
    tags = concat(body.tags, var.tags)
    options = merge(body.options, local.monitor_settings[local.monitor_instances[key].kind].options, {
      thresholds = local.monitor_thresholds[local.monitor_instances[key].kind]
    })
  }) }

  dashboards = { for name in ["pipelines"] : name => jsondecode(templatefile(
    "${path.module}/dashboards/${name}.json", local.template_vars,
  )) if var.dashboard_enabled }

  # Span-based metrics (DataDog API v2 JSON, SpansMetricCreateRequest), by file name.
  spans_metrics = { for name in ["airflow_queue_time"] : name => jsondecode(templatefile(
    "${path.module}/spans_metrics/${name}.json", local.template_vars,
  )).data if var.queue_time_metric_enabled }
}

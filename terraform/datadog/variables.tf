# Inputs of FARM's DataDog monitors and dashboard. Every variable has a default: with none set,
# `terraform apply` creates the monitors and the dashboard for both sources in env "prod".
# A monitor's thresholds left null keep the values of its JSON file in monitors/.

# --- What the spans are tagged with (must match the Google root's settings) ----------------------

variable "env" {
  description = "DataDog env of FARM's spans: the Google root's `environment` (DD_ENV of the trace function)."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]{0,62}$", var.env))
    error_message = "The env must be 1 to 63 lowercase letters, digits, '_', '.' or '-', as the Google root's environment."
  }
}

variable "service_argo" {
  description = "DataDog service of Argo runs: the Google root's `trace_service_argo` (FARM_TRACE_SERVICE_ARGO)."
  type        = string
  default     = "argo-workflows"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_.:/-]{0,99}$", var.service_argo))
    error_message = "The service_argo must be a DataDog service name: up to 100 lowercase letters, digits, '_', '.', ':', '/' or '-', starting with a letter."
  }
}

variable "service_airflow" {
  description = "DataDog service of Airflow runs: the Google root's `trace_service_airflow` (FARM_TRACE_SERVICE_AIRFLOW)."
  type        = string
  default     = "airflow"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_.:/-]{0,99}$", var.service_airflow))
    error_message = "The service_airflow must be a DataDog service name: up to 100 lowercase letters, digits, '_', '.', ':', '/' or '-', starting with a letter."
  }
}

variable "sources" {
  description = "Sources that get pipeline monitors: \"argo\", \"airflow\" or both."
  type        = list(string)
  nullable    = false
  default     = ["argo", "airflow"]

  validation {
    condition     = length(var.sources) > 0 && alltrue([for s in var.sources : contains(["argo", "airflow"], s)]) && length(distinct(var.sources)) == length(var.sources)
    error_message = "The sources must be a non-empty list of distinct values among \"argo\" and \"airflow\"."
  }
}

variable "exclude_pipelines" {
  description = "Pipelines (Argo workflow templates or cron workflows, Airflow DAG ids) that no monitor watches, e.g. experiments."
  type        = list(string)
  nullable    = false
  default     = []

  validation {
    condition     = alltrue([for p in var.exclude_pipelines : can(regex("^[^\\s,{}!:\"]+$", p))])
    error_message = "Each excluded pipeline must be a pipeline name without spaces, commas, braces, quotes, '!' or ':'."
  }
}

# --- Notifications ---------------------------------------------------------------------------------

variable "notify" {
  description = "Who every monitor notifies, as DataDog @-handles, e.g. [\"@slack-data-alerts\", \"@pagerduty-data-platform\"]. Empty: nobody (the monitors still show in DataDog)."
  type        = list(string)
  nullable    = false
  default     = []

  validation {
    condition     = alltrue([for h in var.notify : can(regex("^@[^\\s{}]+$", h))])
    error_message = "Each notify entry must be a DataDog @-handle without spaces, e.g. \"@slack-data-alerts\", \"@team-data\" or \"@ana@example.com\"."
  }
}

variable "tags" {
  description = "Extra tags on every monitor, e.g. [\"team:data-platform\"]."
  type        = list(string)
  nullable    = false
  default     = []

  validation {
    condition     = alltrue([for t in var.tags : can(regex("^[a-z][a-z0-9_.:/-]{0,199}$", t))])
    error_message = "Each tag must be a DataDog tag: lowercase, starting with a letter, at most 200 characters of letters, digits, '_', '.', ':', '/' or '-'."
  }
}

variable "datadog_app_url" {
  description = "Base URL of the DataDog web app, for links in notifications (e.g. https://app.datadoghq.eu)."
  type        = string
  default     = "https://app.datadoghq.com"

  validation {
    condition     = can(regex("^https://[a-z0-9.-]+/?$", var.datadog_app_url))
    error_message = "The datadog_app_url must be the https:// base URL of the DataDog app, e.g. https://app.datadoghq.com."
  }
}

variable "datadog_api_url" {
  description = "DataDog API URL of the provider, e.g. https://api.datadoghq.eu/. null: the DD_HOST environment variable, else the US1 site."
  type        = string
  default     = null

  validation {
    condition     = var.datadog_api_url == null || can(regex("^https://[a-z0-9.-]+/?$", coalesce(var.datadog_api_url, "-")))
    error_message = "The datadog_api_url must be the https:// URL of a DataDog API site, e.g. https://api.datadoghq.eu/."
  }
}

# --- Monitors ----------------------------------------------------------------------------------------

variable "success_rate_monitor" {
  description = "Per pipeline: the share of runs that succeeded over the last week (monitors/pipeline_success_rate.json), in percent. Alerts below critical_percent, warns below warning_percent; notify overrides var.notify."
  type = object({
    enabled          = optional(bool, true)
    critical_percent = optional(number)
    warning_percent  = optional(number)
    notify           = optional(list(string))
  })
  default  = {}
  nullable = false

  validation {
    condition = alltrue([for p in [var.success_rate_monitor.critical_percent, var.success_rate_monitor.warning_percent] :
    p == null ? true : p > 0 && p <= 100])
    error_message = "The success_rate_monitor thresholds are percentages: above 0 and at most 100."
  }
  validation {
    condition = (var.success_rate_monitor.critical_percent == null || var.success_rate_monitor.warning_percent == null ? true :
    var.success_rate_monitor.warning_percent > var.success_rate_monitor.critical_percent)
    error_message = "The success_rate_monitor warning_percent must be above critical_percent: the monitor warns first, as the success rate falls."
  }
}

variable "last_run_monitor" {
  description = "Per pipeline: alerts when a run fails and resolves when a later run succeeds (monitors/pipeline_last_run.json). auto_resolve_hours resolves an alert whose pipeline has not run since (DataDog's timeout_h, at most 24); null: only a successful run resolves it."
  type = object({
    enabled            = optional(bool, true)
    auto_resolve_hours = optional(number)
    notify             = optional(list(string))
  })
  default  = {}
  nullable = false

  validation {
    condition = (var.last_run_monitor.auto_resolve_hours == null ? true :
    var.last_run_monitor.auto_resolve_hours >= 1 && var.last_run_monitor.auto_resolve_hours <= 24 && floor(var.last_run_monitor.auto_resolve_hours) == var.last_run_monitor.auto_resolve_hours)
    error_message = "The last_run_monitor auto_resolve_hours must be a whole number of hours from 1 to 24 (DataDog's limit), or null."
  }
}

variable "run_duration_monitor" {
  description = "Per pipeline: a run that took longer than critical_seconds (warning_seconds warns) finished in the last hour (monitors/pipeline_run_duration.json)."
  type = object({
    enabled          = optional(bool, true)
    critical_seconds = optional(number)
    warning_seconds  = optional(number)
    notify           = optional(list(string))
  })
  default  = {}
  nullable = false

  validation {
    condition = alltrue([for s in [var.run_duration_monitor.critical_seconds, var.run_duration_monitor.warning_seconds] :
    s == null ? true : s > 0])
    error_message = "The run_duration_monitor thresholds are durations in seconds and must be positive."
  }
  validation {
    condition = (var.run_duration_monitor.critical_seconds == null || var.run_duration_monitor.warning_seconds == null ? true :
    var.run_duration_monitor.warning_seconds < var.run_duration_monitor.critical_seconds)
    error_message = "The run_duration_monitor warning_seconds must be below critical_seconds."
  }
}

variable "run_duration_anomaly_monitor" {
  description = "Per pipeline: a run much longer than the pipeline's own history (anomaly detection, monitors/pipeline_run_duration_anomaly.json). Off by default: it needs pipelines that run at least hourly and a few weeks of history."
  type = object({
    enabled = optional(bool, false)
    notify  = optional(list(string))
  })
  default  = {}
  nullable = false
}

# --- Dashboard -----------------------------------------------------------------------------------

variable "dashboard_enabled" {
  description = "Create the pipelines dashboard (dashboards/pipelines.json)."
  type        = bool
  default     = true
  nullable    = false
}

variable "queue_time_metric_enabled" {
  description = "Create the span-based metric of Airflow queue time (spans_metrics/airflow_queue_time.json) that the dashboard's queue widgets read. It is created once per DataDog organisation: set false in all but one FARM deployment."
  type        = bool
  default     = true
  nullable    = false
}

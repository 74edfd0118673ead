# Inputs of FARM's own health alerting in Google Cloud (monitoring.tf). They live here, beside the
# deployment's variables.tf, so that alerting can be tuned on its own; tflint's module-structure
# rule would have them in variables.tf, hence the annotations.

# tflint-ignore: terraform_standard_module_structure
variable "notification_channels" {
  description = "Cloud Monitoring notification channels every FARM alert policy notifies, as ids \"projects/<project>/notificationChannels/<number>\" (create them in the console or with gcloud beta monitoring channels create). Empty: the policies open incidents without notifying anyone."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "Each notification channel must be a channel id such as \"projects/my-project/notificationChannels/1234567890\" (gcloud beta monitoring channels list --format='value(name)')."
  }
}

# tflint-ignore: terraform_standard_module_structure
variable "alert_poll_stalled" {
  description = <<-EOT
    Alert when a source's poll has not logged "poll finished" (an incremental poll that succeeded)
    for `intervals` of its schedule. The interval is read from the source's cron schedule
    ("* * * * *", "*/5 * * * *", "M * * * *", "M */H * * *"; anything else counts as daily);
    `minutes` sets the silence that alerts for a source by name instead.
  EOT
  type = object({
    enabled   = optional(bool, true)
    intervals = optional(number, 5)
    minutes   = optional(map(number), {})
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.alert_poll_stalled.intervals >= 2 && floor(var.alert_poll_stalled.intervals) == var.alert_poll_stalled.intervals
    error_message = "The alert_poll_stalled intervals must be a whole number of at least 2: a single missed poll is routine (a deploy, a lease held by a backfill)."
  }
  validation {
    condition     = alltrue([for m in values(var.alert_poll_stalled.minutes) : m >= 2 && m <= 1440 && floor(m) == m])
    error_message = "Each alert_poll_stalled minutes value must be a whole number of minutes from 2 to 1440 (Cloud Monitoring's absence window is at most a day)."
  }
}

# tflint-ignore: terraform_standard_module_structure
variable "alert_function_errors" {
  description = "Alert when a FARM function answers more than `threshold` requests with a 5xx status (a failed poll, a message the trace or BigQuery sink function could not process, a timeout or a crash) within `window_minutes`."
  type = object({
    enabled        = optional(bool, true)
    threshold      = optional(number, 5)
    window_minutes = optional(number, 10)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.alert_function_errors.threshold >= 0 && var.alert_function_errors.window_minutes >= 1 && var.alert_function_errors.window_minutes <= 1440 && floor(var.alert_function_errors.window_minutes) == var.alert_function_errors.window_minutes
    error_message = "The alert_function_errors threshold must not be negative, and window_minutes must be a whole number of minutes from 1 to 1440."
  }
}

# tflint-ignore: terraform_standard_module_structure
variable "alert_dead_letters" {
  description = "Alert while the dead-letter subscription holds more than `threshold` messages: run deltas the trace or BigQuery sink function failed max_delivery_attempts times."
  type = object({
    enabled   = optional(bool, true)
    threshold = optional(number, 0)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.alert_dead_letters.threshold >= 0 && floor(var.alert_dead_letters.threshold) == var.alert_dead_letters.threshold
    error_message = "The alert_dead_letters threshold must be a whole number of messages, 0 or more."
  }
}

# tflint-ignore: terraform_standard_module_structure
variable "alert_scheduler_failures" {
  description = "Alert when the Cloud Scheduler jobs of the polls log more than `threshold` failed attempts within `window_minutes` (the function unreachable, refused, erroring or too slow; the 409 of a poll that found another one running is not a failure)."
  type = object({
    enabled        = optional(bool, true)
    threshold      = optional(number, 2)
    window_minutes = optional(number, 15)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.alert_scheduler_failures.threshold >= 0 && var.alert_scheduler_failures.window_minutes >= 1 && var.alert_scheduler_failures.window_minutes <= 1440 && floor(var.alert_scheduler_failures.window_minutes) == var.alert_scheduler_failures.window_minutes
    error_message = "The alert_scheduler_failures threshold must not be negative, and window_minutes must be a whole number of minutes from 1 to 1440."
  }
}

# Inputs of the FARM deployment. Only project_id, source_archive and sources have no default, and
# one of datadog_site and datadog_agent_url must be set; terraform.tfvars.example shows a complete set.

# --- Where -------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that hosts FARM."
  type        = string

  validation {
    condition     = can(regex("^([a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "The project_id must be a Google Cloud project id: 6 to 30 lowercase letters, digits or hyphens, starting with a letter (e.g. \"data-platform-prod\")."
  }
}

variable "region" {
  description = "Region of the functions, the Cloud Scheduler jobs and the source bucket (and, unless overridden, of Firestore and BigQuery)."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "The region must be a Google Cloud region such as \"europe-west1\" or \"us-central1\"."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name. Change it to run two FARM deployments in one project."
  type        = string
  default     = "farm"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,10}[a-z0-9]$", var.name_prefix))
    error_message = "The name_prefix must be 4 to 12 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen (service account ids derived from it are limited to 30 characters)."
  }
}

variable "tenant" {
  description = "Tenant name stamped on every event, span and row (FARM_TENANT)."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", var.tenant))
    error_message = "The tenant must be 1 to 63 lowercase letters, digits, '_' or '-' (it is also used as a resource label)."
  }
}

variable "environment" {
  description = "Environment name stamped on every event, span (DD_ENV) and row (FARM_ENVIRONMENT), e.g. prod."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", var.environment))
    error_message = "The environment must be 1 to 63 lowercase letters, digits, '_' or '-' (it is also used as a resource label)."
  }
}

variable "labels" {
  description = "Extra labels put on every resource that takes labels."
  type        = map(string)
  default     = {}
}

# --- What to deploy ------------------------------------------------------------------------------

variable "source_archive" {
  description = "Path of the source archive written by `go run ./cmd/farm package` (default dist/farm-source.zip at the repository root)."
  type        = string

  validation {
    condition     = fileexists(var.source_archive)
    error_message = "The source_archive file does not exist. Build it first from the repository root with `go run ./cmd/farm package -o dist/farm-source.zip` (or `make package`), then pass its path, e.g. source_archive = \"../dist/farm-source.zip\"."
  }
}

variable "go_runtime" {
  description = "Cloud Run functions runtime of the four functions."
  type        = string
  default     = "go126"

  validation {
    condition     = can(regex("^go1[0-9]{2}$", var.go_runtime))
    error_message = "The go_runtime must be a Go runtime id such as \"go126\"."
  }
}

variable "sources" {
  description = <<-EOT
    The orchestrator instances to watch: one poll function and one Cloud Scheduler job per entry.
      kind            argo | airflow
      name            short unique name (lowercase, 2-12 chars, not trace or sink); the instance name in events
      url             the Argo Server or Airflow API base URL
      ui_url          base for links to runs (default: url)
      schedule        cron, in time_zone (default every minute)
      time_zone       time zone of schedule (default Etc/UTC)
      auth            argo: bearer (default; token from Secret Manager) | none
                      airflow: auto (default: google for Cloud Composer, else none) | google |
                      basic | jwt (username + password secret) | bearer (token secret) | none
      username        airflow basic/jwt user
      token_secret    Secret Manager secret id of the token (default: <prefix>-<name>-token)
      password_secret Secret Manager secret id of the password (default: <prefix>-<name>-password)
      ca_secret       argo: secret id of a PEM bundle to trust for the server (optional)
      namespaces      argo: namespaces to watch (default: all the token may list)
      label_selector  argo: narrows every list, e.g. team=data
      api_version     airflow: auto | v1 | v2
      dag_include     airflow: regular expression of DAG ids to watch
      dag_exclude     airflow: regular expression of DAG ids to skip
      env             extra FARM_* settings of this poll function (see README), never secrets
  EOT
  type = list(object({
    kind            = string
    name            = string
    url             = string
    ui_url          = optional(string)
    schedule        = optional(string, "* * * * *")
    time_zone       = optional(string, "Etc/UTC")
    auth            = optional(string)
    username        = optional(string)
    token_secret    = optional(string)
    password_secret = optional(string)
    ca_secret       = optional(string)
    namespaces      = optional(list(string), [])
    label_selector  = optional(string)
    api_version     = optional(string)
    dag_include     = optional(string)
    dag_exclude     = optional(string)
    env             = optional(map(string), {})
  }))

  validation {
    condition     = length(var.sources) > 0
    error_message = "Configure at least one source (an Argo Server or an Airflow instance) in sources."
  }
  validation {
    condition     = alltrue([for s in var.sources : contains(["argo", "airflow"], s.kind)])
    error_message = "Each source's kind must be \"argo\" or \"airflow\"."
  }
  validation {
    condition     = alltrue([for s in var.sources : can(regex("^[a-z][a-z0-9-]{0,10}[a-z0-9]$", s.name))])
    error_message = "Each source's name must be 2 to 12 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen (it names the function, its job and its service account)."
  }
  validation {
    # functions.tf keys every function by source name, and the two consumers by these names.
    condition     = alltrue([for s in var.sources : !contains(["trace", "sink"], s.name)])
    error_message = "A source may not be named \"trace\" or \"sink\": those name the consumer functions."
  }
  validation {
    condition     = length(distinct([for s in var.sources : s.name])) == length(var.sources)
    error_message = "Source names must be unique: each names its own poll function."
  }
  validation {
    condition     = alltrue([for s in var.sources : can(regex("^https?://[^/\\s]+", s.url)) && (s.ui_url == null || can(regex("^https?://[^/\\s]+", s.ui_url)))])
    error_message = "Each source's url (and ui_url, when set) must be an absolute http(s) URL, e.g. https://argo.example.com."
  }
  validation {
    # Credentials in a URL would be copied into every run link (BigQuery, DataDog) and every error.
    condition = alltrue([for s in var.sources : alltrue([
      for u in concat([s.url], s.ui_url == null ? [] : [s.ui_url], [for k, v in s.env : v if can(regex("_URL$", k))]) :
      !can(regex("^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@", u))
    ])])
    error_message = "A source's url, ui_url and env URLs must not carry credentials (user:password@): put an Argo token in the source's token_secret, an Airflow password in password_secret (auth basic or jwt, with username)."
  }
  validation {
    condition     = alltrue([for s in var.sources : length(split(" ", trimspace(s.schedule))) == 5])
    error_message = "Each source's schedule must be a 5-field cron expression, e.g. \"* * * * *\" (every minute)."
  }
  validation {
    condition = alltrue([for s in var.sources : s.auth == null || contains(
      s.kind == "argo" ? ["bearer", "none"] : ["auto", "google", "basic", "bearer", "jwt", "none"], coalesce(s.auth, "-")
    )])
    error_message = "Each source's auth must be bearer or none for argo, and auto, google, basic, bearer, jwt or none for airflow."
  }
  validation {
    condition     = alltrue([for s in var.sources : !contains(["basic", "jwt"], coalesce(s.auth, "-")) || try(length(s.username) > 0, false)])
    error_message = "An airflow source with auth basic or jwt needs a username (its password comes from Secret Manager)."
  }
  validation {
    condition = alltrue([for s in var.sources : s.kind == "argo" || (
      length(s.namespaces) == 0 && s.label_selector == null && s.ca_secret == null
    )])
    error_message = "namespaces, label_selector and ca_secret apply to argo sources only."
  }
  validation {
    condition = alltrue([for s in var.sources : s.kind == "airflow" || (
      s.username == null && s.api_version == null && s.dag_include == null && s.dag_exclude == null
    )])
    error_message = "username, api_version, dag_include and dag_exclude apply to airflow sources only."
  }
  validation {
    condition     = alltrue([for s in var.sources : s.api_version == null || contains(["auto", "v1", "v2"], coalesce(s.api_version, "-"))])
    error_message = "An airflow source's api_version must be auto, v1 or v2."
  }
  validation {
    condition     = alltrue(flatten([for s in var.sources : [for n in s.namespaces : can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", n))]]))
    error_message = "Each argo namespace must be a Kubernetes namespace name (lowercase letters, digits and hyphens)."
  }
  validation {
    condition = alltrue(flatten([for s in var.sources : [for k in keys(s.env) :
      can(regex("^FARM_[A-Z0-9_]+$", k)) && !can(regex("(TOKEN|PASSWORD)(_FILE)?$", k))
    ]]))
    error_message = "A source's env may only set FARM_* variables, and never a token or password: those come from Secret Manager (token_secret, password_secret)."
  }
}

# --- Secrets -------------------------------------------------------------------------------------

variable "manage_secrets" {
  description = "Create the Secret Manager secrets the sources need (values are always added outside terraform, so they never reach its state). Set false when they already exist."
  type        = bool
  default     = true
}

variable "datadog_api_key_secret" {
  description = "Secret Manager secret id holding the DataDog API key, readable by the trace function's service account only. With datadog_site (the sidecar) it is the agent's DD_API_KEY; default <name_prefix>-datadog-api-key, created by terraform when manage_secrets is true. With datadog_agent_url it is only needed when that agent requires one (agentless intake or a proxy); null: none."
  type        = string
  default     = null

  validation {
    condition     = var.datadog_api_key_secret == null || can(regex("^[A-Za-z0-9_-]{1,255}$", coalesce(var.datadog_api_key_secret, "-")))
    error_message = "The datadog_api_key_secret must be a Secret Manager secret id (letters, digits, '_' or '-')."
  }
}

# --- DataDog -------------------------------------------------------------------------------------

# Exactly one of the two modes: datadog_site (the default path: DataDog's serverless-init agent runs
# as a sidecar of the trace function, nothing else to operate) or datadog_agent_url (an agent the
# team already runs, reached over the VPC).

variable "datadog_site" {
  description = "DataDog site the trace function's serverless-init sidecar sends to (DD_SITE), e.g. datadoghq.com, datadoghq.eu or us5.datadoghq.com. Set this or datadog_agent_url, not both."
  type        = string
  default     = null

  validation {
    condition     = var.datadog_site == null || can(regex("^([a-z]{2}[0-9]+\\.)?(datadoghq\\.com|datadoghq\\.eu|ddog-gov\\.com)$", coalesce(var.datadog_site, "-")))
    error_message = "The datadog_site must be a DataDog site such as \"datadoghq.com\", \"datadoghq.eu\", \"us3.datadoghq.com\", \"us5.datadoghq.com\", \"ap1.datadoghq.com\" or \"ddog-gov.com\" (the host of your DataDog URL, without \"app.\")."
  }
  validation {
    condition     = (var.datadog_site == null) != (var.datadog_agent_url == null)
    error_message = "Configure exactly one DataDog mode: datadog_site (DataDog's serverless-init agent runs beside the trace function; put the API key in Secret Manager) or datadog_agent_url (a DataDog agent you already run, reached through vpc_access). Setting both, or neither, is refused."
  }
}

variable "datadog_agent_url" {
  description = "A DataDog agent you already run, which the trace function sends spans to (DD_TRACE_AGENT_URL), e.g. http://10.0.0.5:8126 reached through vpc_access. Set this or datadog_site, not both."
  type        = string
  default     = null

  validation {
    condition     = var.datadog_agent_url == null || can(regex("^(https?|unix)://.+", coalesce(var.datadog_agent_url, "-")))
    error_message = "The datadog_agent_url must be an http://, https:// or unix:// URL of a DataDog agent, e.g. http://10.0.0.5:8126."
  }
  validation {
    condition     = !can(regex("^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@", var.datadog_agent_url))
    error_message = "The datadog_agent_url must not carry credentials (user:password@): they would be logged; use datadog_api_key_secret."
  }
}

variable "datadog_serverless_init_image" {
  description = "Image of DataDog's serverless-init agent, the trace function's sidecar when datadog_site is set. Pinned: change it deliberately (README, \"The DataDog agent\")."
  type        = string
  default     = "gcr.io/datadoghq/serverless-init:1.10.2"

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$", var.datadog_serverless_init_image)) && !can(regex(":latest$", var.datadog_serverless_init_image))
    error_message = "The datadog_serverless_init_image must be a registry image pinned by a version tag or a digest, e.g. \"gcr.io/datadoghq/serverless-init:1.10.2\"; \"latest\" is refused (each new revision could run another agent)."
  }
}

variable "datadog_sidecar_resources" {
  description = "CPU and memory of the serverless-init sidecar (DataDog's documented size: 1 vCPU, 512Mi)."
  type = object({
    cpu    = optional(string, "1")
    memory = optional(string, "512Mi")
  })
  default = {}

  validation {
    condition     = can(regex("^([1-8]|[0-9]+m)$", var.datadog_sidecar_resources.cpu)) && can(regex("^[0-9]+(Mi|Gi)$", var.datadog_sidecar_resources.memory))
    error_message = "The datadog_sidecar_resources cpu must be a whole number of vCPUs (\"1\") or millicores (\"500m\"), and memory a size such as \"512Mi\"."
  }
}

variable "trace_service_argo" {
  description = "DataDog service name of Argo runs (FARM_TRACE_SERVICE_ARGO)."
  type        = string
  default     = "argo-workflows"

  validation {
    condition     = length(var.trace_service_argo) > 0 && length(var.trace_service_argo) <= 100
    error_message = "The trace_service_argo must be 1 to 100 characters (DataDog's limit for service names)."
  }
}

variable "trace_service_airflow" {
  description = "DataDog service name of Airflow runs (FARM_TRACE_SERVICE_AIRFLOW)."
  type        = string
  default     = "airflow"

  validation {
    condition     = length(var.trace_service_airflow) > 0 && length(var.trace_service_airflow) <= 100
    error_message = "The trace_service_airflow must be 1 to 100 characters (DataDog's limit for service names)."
  }
}

variable "vpc_access" {
  description = <<-EOT
    Private network access for the poll and trace functions (a private Argo Server, a DataDog agent
    on a VM or in GKE). Set either connector (a Serverless VPC Access connector id) or network and
    subnetwork (Direct VPC egress). egress: PRIVATE_RANGES_ONLY (default) or ALL_TRAFFIC.
  EOT
  type = object({
    connector  = optional(string)
    network    = optional(string)
    subnetwork = optional(string)
    egress     = optional(string, "PRIVATE_RANGES_ONLY")
  })
  default = null

  validation {
    condition     = var.vpc_access == null || try((var.vpc_access.connector != null) != (var.vpc_access.network != null || var.vpc_access.subnetwork != null), false)
    error_message = "Set vpc_access.connector, or vpc_access.network and subnetwork (Direct VPC egress), not both."
  }
  validation {
    condition     = var.vpc_access == null || try(contains(["PRIVATE_RANGES_ONLY", "ALL_TRAFFIC"], var.vpc_access.egress), false)
    error_message = "The vpc_access.egress must be PRIVATE_RANGES_ONLY or ALL_TRAFFIC."
  }
}

# --- Sizing and delivery -------------------------------------------------------------------------

variable "poll_timeout_seconds" {
  description = "Timeout of a poll function call: a scheduled poll takes seconds, a large backfill may take minutes."
  type        = number
  default     = 540

  validation {
    condition     = var.poll_timeout_seconds >= 60 && var.poll_timeout_seconds <= 1770
    error_message = "The poll_timeout_seconds must be between 60 and 1770 (Cloud Scheduler waits at most 1800 s for an answer)."
  }
}

variable "poll_max_instances" {
  description = "Maximum instances per poll function: one polls, another can answer a concurrent call (a backfill or a late schedule) at once with 409."
  type        = number
  default     = 2

  validation {
    condition     = var.poll_max_instances >= 1 && var.poll_max_instances <= 10
    error_message = "The poll_max_instances must be between 1 and 10: the source lease lets only one poll run at a time anyway."
  }
}

variable "consumer_timeout_seconds" {
  description = "Timeout of the trace and BigQuery sink functions, and the ack deadline of their subscriptions."
  type        = number
  default     = 120

  validation {
    condition     = var.consumer_timeout_seconds >= 10 && var.consumer_timeout_seconds <= 600
    error_message = "The consumer_timeout_seconds must be between 10 and 600 (Pub/Sub's maximum ack deadline)."
  }
}

variable "consumer_max_instances" {
  description = "Maximum instances of the trace and of the BigQuery sink function."
  type        = number
  default     = 20

  validation {
    condition     = var.consumer_max_instances >= 1 && var.consumer_max_instances <= 1000
    error_message = "The consumer_max_instances must be between 1 and 1000."
  }
}

variable "function_memory" {
  description = "Memory of each function kind."
  type = object({
    poll  = optional(string, "512Mi")
    trace = optional(string, "1Gi")
    sink  = optional(string, "512Mi")
  })
  default = {}

  validation {
    condition     = alltrue([for m in values(var.function_memory) : can(regex("^[0-9]+(Mi|Gi)$", m))])
    error_message = "Each function_memory value must be a size such as \"512Mi\" or \"1Gi\"."
  }
}

variable "consumer_concurrency" {
  description = "Deliveries one instance of the trace or sink function takes at a time. Concurrent deliveries share the instance's billed time, the sink's insert requests and the tracer's session; Pub/Sub delivers one message per ordering key at a time, so a source's deliveries arrive at most 4 at a time (its shards), several sources more."
  type = object({
    trace = optional(number, 40)
    sink  = optional(number, 80)
  })
  default = {}

  validation {
    condition     = alltrue([for c in values(var.consumer_concurrency) : c >= 1 && c <= 1000 && floor(c) == c])
    error_message = "Each consumer_concurrency value must be a whole number between 1 and 1000 (Cloud Run's limit)."
  }
}

variable "consumer_cpu" {
  description = "vCPUs of an instance of the trace or sink function. Cloud Run takes more than one request at a time only with at least 1 vCPU; 1 vCPU needs at least 512Mi of memory (function_memory)."
  type = object({
    trace = optional(string, "1")
    sink  = optional(string, "1")
  })
  default = {}

  validation {
    condition     = alltrue([for c in values(var.consumer_cpu) : contains(["1", "2", "4", "6", "8"], c)])
    error_message = "Each consumer_cpu value must be \"1\", \"2\", \"4\", \"6\" or \"8\" vCPUs: concurrency above 1 needs at least one whole vCPU."
  }
}

variable "function_env" {
  description = "Extra environment variables per function kind (poll, trace, sink), e.g. FARM_LOG_LEVEL or FARM_POLL_OVERLAP. Never secrets."
  type = object({
    poll  = optional(map(string), {})
    trace = optional(map(string), {})
    sink  = optional(map(string), {})
  })
  default = {}

  validation {
    condition = alltrue([for k in flatten([for m in values(var.function_env) : keys(m)]) :
      can(regex("^(FARM|DD)_[A-Z0-9_]+$", k)) && !can(regex("(TOKEN|PASSWORD|API_KEY)(_FILE)?$", k))
    ])
    error_message = "function_env may only set FARM_* and DD_* variables, and never a token, password or API key: those come from Secret Manager."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of a message to the trace or sink function before it goes to the dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "The max_delivery_attempts must be between 5 and 100 (Pub/Sub's limits)."
  }
}

variable "retry_backoff" {
  description = "Backoff between redeliveries of a message the consumers failed (Pub/Sub retry policy), as durations in seconds like \"10s\"."
  type = object({
    minimum = optional(string, "10s")
    maximum = optional(string, "600s")
  })
  default = {}

  validation {
    condition     = can(regex("^[0-9]+s$", var.retry_backoff.minimum)) && can(regex("^[0-9]+s$", var.retry_backoff.maximum)) && try(tonumber(trimsuffix(var.retry_backoff.minimum, "s")) <= tonumber(trimsuffix(var.retry_backoff.maximum, "s")) && tonumber(trimsuffix(var.retry_backoff.maximum, "s")) <= 600, false)
    error_message = "The retry_backoff minimum and maximum must be durations like \"10s\", minimum <= maximum <= 600s."
  }
}

variable "message_ordering" {
  description = "Deliver each run's messages in publish order (the poll publishes under <source>/<instance>/<shard>, a run always in the same shard, as ordering key)."
  type        = bool
  default     = true
}

variable "scheduler_retry_count" {
  description = "Retries of a failed scheduled poll before Cloud Scheduler waits for the next schedule."
  type        = number
  default     = 1

  validation {
    condition     = var.scheduler_retry_count >= 0 && var.scheduler_retry_count <= 5
    error_message = "The scheduler_retry_count must be between 0 and 5: the next scheduled poll catches up anyway."
  }
}

variable "backfill_invokers" {
  description = "Principals allowed to call the poll functions for backfills (roles/run.invoker), e.g. [\"group:data-platform@example.com\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.backfill_invokers : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+", m))])
    error_message = "Each backfill_invokers entry must be an IAM principal such as \"user:ana@example.com\", \"group:team@example.com\" or \"serviceAccount:ci@project.iam.gserviceaccount.com\"; allUsers and allAuthenticatedUsers are refused: FARM's functions are never public."
  }
}

# --- Storage and retention -----------------------------------------------------------------------

variable "firestore_database" {
  description = "Firestore database id (native mode) created for FARM's state. Default: the name_prefix."
  type        = string
  default     = null

  validation {
    condition     = var.firestore_database == null || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", coalesce(var.firestore_database, "-")))
    error_message = "The firestore_database must be 4 to 63 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "firestore_location" {
  description = "Firestore location, e.g. europe-west1, eur3 or nam5. Default: the region."
  type        = string
  default     = null
}

variable "run_retention_days" {
  description = "Days a run's stored state is kept after its last change (FARM_RUN_RETENTION; Firestore's TTL policy deletes it after)."
  type        = number
  default     = 30

  validation {
    condition     = var.run_retention_days >= 1 && var.run_retention_days <= 3650 && floor(var.run_retention_days) == var.run_retention_days
    error_message = "The run_retention_days must be a whole number of days between 1 and 3650, and longer than the longest run you watch."
  }
}

variable "bigquery_dataset" {
  description = "BigQuery dataset of the argo and airflow tables and their views."
  type        = string
  default     = "farm"

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]*$", var.bigquery_dataset)) && length(var.bigquery_dataset) <= 1024
    error_message = "The bigquery_dataset must be at most 1024 letters, digits and underscores, starting with a letter or underscore."
  }
}

variable "bigquery_readers" {
  description = "Principals that may read the FARM dataset (tables and views), e.g. [\"group:data-analysts@example.com\"]: user:, group:, serviceAccount: or domain: members. Nobody else reads it, project viewers included."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.bigquery_readers : can(regex("^(user|group|serviceAccount|domain):[^:\\s]+$", m))])
    error_message = "Each of bigquery_readers must be user:EMAIL, group:EMAIL, serviceAccount:EMAIL or domain:DOMAIN."
  }
}

variable "bigquery_location" {
  description = "BigQuery dataset location, e.g. EU, US or europe-west1. Default: the region."
  type        = string
  default     = null
}

variable "bigquery_partition_expiration_days" {
  description = "Days a day-partition of the tables is kept; null keeps rows forever."
  type        = number
  default     = null

  validation {
    condition     = var.bigquery_partition_expiration_days == null || try(var.bigquery_partition_expiration_days >= 1 && floor(var.bigquery_partition_expiration_days) == var.bigquery_partition_expiration_days, false)
    error_message = "The bigquery_partition_expiration_days must be a whole number of days, at least 1, or null to keep rows forever."
  }
}

variable "deletion_protection" {
  description = "Protect the Firestore database and the BigQuery tables from deletion. Set false, apply, then destroy to tear FARM down."
  type        = bool
  default     = true
}

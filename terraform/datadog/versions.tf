# FARM's DataDog resources: a root module of its own, applied with its own state after the Google
# root (../), and skipped by teams that manage DataDog elsewhere. Credentials come from the
# provider's environment variables DD_API_KEY and DD_APP_KEY (an application key with the
# monitors_write, dashboards_write and apm_generate_metrics permissions), never from variables.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    datadog = {
      source  = "DataDog/datadog"
      version = "~> 3.50"
    }
  }
}

provider "datadog" {
  # null: DD_HOST, else the US1 site. EU: https://api.datadoghq.eu/
  api_url = var.datadog_api_url
}

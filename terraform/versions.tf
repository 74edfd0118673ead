# Tool and provider versions. Only the google provider is used: every provider must be installable
# offline in CI (see .ci/terraform.sh), so nothing here needs archive, random or time.
terraform {
  # 1.9: a variable's validation may refer to another variable (the DataDog mode, variables.tf).
  required_version = ">= 1.9.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 8.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}

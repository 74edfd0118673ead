# State lives in a GCS bucket, configured at init time so the same code serves every environment:
#
#   terraform init -backend-config="bucket=STATE_BUCKET" -backend-config="prefix=farm/ENVIRONMENT"
#
# Kept alone in this file: the offline CI check (.ci/terraform.sh) plans without it.
terraform {
  backend "gcs" {}
}

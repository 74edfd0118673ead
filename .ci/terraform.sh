#!/usr/bin/env bash
# Offline validation of terraform/ (`make tf-validate`; CI calls it after the tests). No cloud
# account and no terraform registry are needed: OpenTofu and the Google provider are built from the
# Go module proxy once per machine (.ci/tools.sh caches them), the provider is installed through a
# CLI configuration with dev_overrides (so `tofu init` is neither needed nor possible), and the
# plan runs with placeholder credentials and -refresh=false, which never calls Google.
#
# Steps, each fatal: fmt -check, package, validate, `tofu test` (bad variables are refused),
# a plan per DataDog mode (terraform.tfvars.example: the sidecar; with external-agent.tfvars.example:
# an agent the team runs), the plans' checks in Go (internal/deploytest), tflint with the google
# ruleset. The tests and the plans reach for no host (see offline
# below), and where strace works they are traced to prove it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

source .ci/tools.sh

tofu=$(tofu_bin)
provider_dir=$(google_provider_dir)
tflint=$(tflint_bin)
tflint_plugins=$(tflint_plugin_dir)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Every provider the configuration uses must be overridden here: anything else would be looked up
# in a registry these machines cannot reach.
cat >"$work/tofu.tfrc" <<EOF
provider_installation {
  dev_overrides {
    "registry.opentofu.org/hashicorp/google" = "$provider_dir"
    "registry.terraform.io/hashicorp/google" = "$provider_dir"
  }
  direct {}
}
EOF
export TF_CLI_CONFIG_FILE="$work/tofu.tfrc"
export TF_IN_AUTOMATION=1 TF_INPUT=0

step() { printf '== %s\n' "$*"; }

# Offline means offline: offline runs the test and the plan so that they reach for no host.
#  - The Google libraries ask the GCE metadata server (169.254.169.254, metadata.google.internal)
#    whether they run on Google Cloud: GCE_METADATA_HOST answers without the network and sends
#    every metadata request to a closed loopback port, where it fails at once.
#  - The provider asks https://openidconnect.googleapis.com who its credentials are, only to log
#    it: HTTPS_PROXY on that closed port makes it fail at once, before any DNS lookup. (Go never
#    proxies loopback, so the provider's plugin connection is unaffected.)
# Where strace can trace the command, it fails if the command connected anywhere but this machine
# (loopback, unix sockets): a DNS lookup or a request to a Google host is a failure.
offline() {
  local closed=127.0.0.1:9
  local run=(env GCE_METADATA_HOST=$closed GCE_METADATA_IP=$closed
    HTTPS_PROXY=http://$closed HTTP_PROXY=http://$closed https_proxy=http://$closed http_proxy=http://$closed
    NO_PROXY= no_proxy= "$@")
  if ! command -v strace >/dev/null 2>&1 || ! strace -f -o /dev/null true >/dev/null 2>&1; then
    "${run[@]}"
    return
  fi
  local trace rc=0
  trace=$(mktemp)
  strace -f -qq -e trace=connect -o "$trace" "${run[@]}" || rc=$?
  if grep -E 'sin6?_addr|inet_(addr|pton)' "$trace" | grep -vE '127\.0\.0\.1|"::1"|::ffff:127\.0\.0\.1' >"$trace.out"; then
    echo "offline check: $1 reached beyond this machine:" >&2
    head -n 20 "$trace.out" >&2
    rm -f "$trace" "$trace.out"
    return 1
  fi
  rm -f "$trace" "$trace.out"
  return "$rc"
}

step "tofu fmt -check -recursive terraform"
"$tofu" fmt -check -recursive -diff terraform

step "package the source archive"
go run ./cmd/farm package -o "$work/farm-source.zip"

step "tofu validate"
offline "$tofu" -chdir=terraform validate -no-color

export GOOGLE_OAUTH_ACCESS_TOKEN=placeholder GOOGLE_PROJECT=my-data-platform GOOGLE_REGION=europe-west1

step "tofu test (terraform/tests: validation messages, plans only)"
offline "$tofu" -chdir=terraform test -no-color

# The plans run on a copy of the configuration without backend.tf (the GCS backend needs `init`,
# which dev_overrides cannot do offline) and without any local state or .terraform of a developer.
# The copy keeps the layout terraform reads the schemas from (../schemas). Two plans, one per
# DataDog mode: terraform.tfvars.example (the serverless-init sidecar) and the same with
# external-agent.tfvars.example on top (an agent the team runs); the Go checks run on each.
mkdir -p "$work/tree/terraform"
cp terraform/*.tf terraform/*.tfvars.example "$work/tree/terraform/"
rm "$work/tree/terraform/backend.tf"
ln -s "$root/schemas" "$work/tree/schemas"

plan_mode() {
  local mode="$1"
  shift
  step "tofu plan -refresh=false ($mode mode: $*, placeholder credentials)"
  (
    cd "$work/tree/terraform"
    local args=()
    for f in "$@"; do args+=("-var-file=$f"); done
    # The full plan is long: it is shown only when planning fails.
    if ! "$tofu" plan -refresh=false -lock=false -no-color \
      "${args[@]}" -var="source_archive=$work/farm-source.zip" -out="$work/$mode.tfplan" >"$work/$mode-plan.txt" 2>&1; then
      cat "$work/$mode-plan.txt"
      exit 1
    fi
    grep '^Plan:' "$work/$mode-plan.txt"
    "$tofu" show -json "$work/$mode.tfplan" >"$work/$mode-plan.json"
  )

  step "plan checks, $mode mode (go test ./internal/deploytest)"
  FARM_TF_PLAN_JSON="$work/$mode-plan.json" FARM_TF_SOURCE_ARCHIVE="$work/farm-source.zip" \
    go test -count=1 -run 'TestPlan' ./internal/deploytest
}

plan_mode sidecar terraform.tfvars.example
plan_mode external-agent terraform.tfvars.example external-agent.tfvars.example

step "tflint $("$tflint" --version | head -n1) with the google ruleset"
TFLINT_PLUGIN_DIR="$tflint_plugins" "$tflint" --chdir=terraform --config="$root/terraform/.tflint.hcl" --no-color

step "terraform/ is valid"

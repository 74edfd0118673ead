#!/usr/bin/env bash
# Builds the slow tools FARM's checks need into a cache outside the clone, keyed by version,
# so only the first run on a machine pays for them. Source this file, then call the functions.
set -euo pipefail

FARM_CACHE="${FARM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/farm}"
TOFU_VERSION="v1.12.6"
GOOGLE_PROVIDER_MODULE="github.com/hashicorp/terraform-provider-google"
# This pseudo-version is provider 8.0.0 (tagged releases are not on the module proxy).
GOOGLE_PROVIDER_VERSION="v1.20.1-0.20260828184646-f3721fb45fa3"
GOOGLE_PROVIDER_RELEASE="8.0.0"
BQ_EMULATOR_VERSION="v0.8.1"

log() { printf '[tools] %s\n' "$*" >&2; }

# tofu_bin prints the path of a cached OpenTofu binary, building it first if needed.
tofu_bin() {
  local dir="$FARM_CACHE/tofu-$TOFU_VERSION"
  if [ ! -x "$dir/tofu" ]; then
    log "building OpenTofu $TOFU_VERSION (cold: tens of minutes on 2 cores)"
    local src work
    src=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    work=$(mktemp -d)
    cp -r "$src/." "$work/" && chmod -R u+w "$work"
    mkdir -p "$dir"
    (cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$dir/tofu.tmp" ./cmd/tofu)
    mv "$dir/tofu.tmp" "$dir/tofu"
    rm -rf "$work"
  fi
  printf '%s\n' "$dir/tofu"
}

# google_provider_dir prints a directory holding terraform-provider-google, building it if needed.
google_provider_dir() {
  local dir="$FARM_CACHE/terraform-provider-google-$GOOGLE_PROVIDER_RELEASE"
  if [ ! -x "$dir/terraform-provider-google" ]; then
    log "building terraform-provider-google $GOOGLE_PROVIDER_RELEASE (cold: tens of minutes on 2 cores)"
    mkdir -p "$dir"
    local mod
    mod=$(mktemp -d)
    (cd "$mod" && go mod init farm.local/providerbuild >/dev/null 2>&1 &&
      GOFLAGS=-mod=mod go get "$GOOGLE_PROVIDER_MODULE@$GOOGLE_PROVIDER_VERSION" >/dev/null &&
      CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$dir/terraform-provider-google.tmp" "$GOOGLE_PROVIDER_MODULE")
    mv "$dir/terraform-provider-google.tmp" "$dir/terraform-provider-google"
    rm -rf "$mod"
  fi
  printf '%s\n' "$dir"
}

# bigquery_emulator_bin prints the path of a cached goccy/bigquery-emulator binary.
bigquery_emulator_bin() {
  local dir="$FARM_CACHE/bigquery-emulator-$BQ_EMULATOR_VERSION"
  if [ ! -x "$dir/bigquery-emulator" ]; then
    log "building bigquery-emulator $BQ_EMULATOR_VERSION (once per machine: about 8 minutes on 2 cores, ~6.5 GB memory)"
    mkdir -p "$dir"
    local mod
    mod=$(mktemp -d)
    (cd "$mod" && go mod init farm.local/bqemulatorbuild >/dev/null 2>&1 &&
      GOFLAGS=-mod=mod go get -tool "github.com/goccy/bigquery-emulator/cmd/bigquery-emulator@$BQ_EMULATOR_VERSION" >/dev/null &&
      go build -trimpath -o "$dir/bigquery-emulator.tmp" github.com/goccy/bigquery-emulator/cmd/bigquery-emulator)
    mv "$dir/bigquery-emulator.tmp" "$dir/bigquery-emulator"
    rm -rf "$mod"
  fi
  printf '%s\n' "$dir/bigquery-emulator"
}

TFLINT_VERSION="v0.64.0"
TFLINT_GOOGLE_RULESET_VERSION="v0.39.0"

# go_build_cached builds a main package of a Go module version into DIR/NAME, in a throwaway
# module so that nothing of this repository's go.mod is touched.
go_build_cached() {
  local dir="$1" name="$2" module="$3" version="$4" pkg="$5"
  mkdir -p "$dir"
  local mod
  mod=$(mktemp -d)
  (cd "$mod" && go mod init farm.local/toolbuild >/dev/null 2>&1 &&
    GOFLAGS=-mod=mod go get "$module@$version" >/dev/null &&
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$dir/$name.tmp" "$pkg")
  mv "$dir/$name.tmp" "$dir/$name"
  rm -rf "$mod"
}

# tflint_bin prints the path of a cached tflint binary, building it first if needed.
tflint_bin() {
  local dir="$FARM_CACHE/tflint-$TFLINT_VERSION"
  if [ ! -x "$dir/tflint" ]; then
    log "building tflint $TFLINT_VERSION (cold: a few minutes)"
    go_build_cached "$dir" tflint github.com/terraform-linters/tflint "$TFLINT_VERSION" github.com/terraform-linters/tflint
  fi
  printf '%s\n' "$dir/tflint"
}

# tflint_plugin_dir prints a directory for TFLINT_PLUGIN_DIR holding the google ruleset, built
# from source: `tflint --init` downloads from GitHub releases, which these machines cannot reach.
tflint_plugin_dir() {
  local dir="$FARM_CACHE/tflint-ruleset-google-$TFLINT_GOOGLE_RULESET_VERSION"
  if [ ! -x "$dir/tflint-ruleset-google" ]; then
    log "building tflint-ruleset-google $TFLINT_GOOGLE_RULESET_VERSION (cold: several minutes)"
    go_build_cached "$dir" tflint-ruleset-google github.com/terraform-linters/tflint-ruleset-google \
      "$TFLINT_GOOGLE_RULESET_VERSION" github.com/terraform-linters/tflint-ruleset-google
  fi
  printf '%s\n' "$dir"
}

GOLANGCI_LINT_VERSION="v2.15.0"

# golangci_lint_bin prints the path of a cached golangci-lint binary, building it first if needed.
# It is built with the Go that runs the tests, which must be at least the go line of go.mod.
golangci_lint_bin() {
  local dir="$FARM_CACHE/golangci-lint-$GOLANGCI_LINT_VERSION-$(go env GOVERSION)"
  if [ ! -x "$dir/golangci-lint" ]; then
    log "building golangci-lint $GOLANGCI_LINT_VERSION (cold: a few minutes)"
    # go install PKG@VERSION builds with the module's own go.mod and go.sum, as its authors test it.
    mkdir -p "$dir"
    local bin
    bin=$(mktemp -d)
    GOBIN="$bin" GOFLAGS= CGO_ENABLED=0 go install -trimpath -ldflags='-s -w' \
      "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"
    mv "$bin/golangci-lint" "$dir/golangci-lint"
    rm -rf "$bin"
  fi
  printf '%s\n' "$dir/golangci-lint"
}

#!/usr/bin/env bash
# The test command (`make test`, and CI through .ci/run): builds what the tests need once per
# machine (cached outside the clone), starts one shared Firestore emulator, then vets and runs
# every test with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."

source .ci/tools.sh

# -race needs cgo, hence a C compiler: say so now rather than after the emulators started.
cc=$(go env CC)
if [ "$(go env CGO_ENABLED)" != 1 ] || ! command -v "${cc%% *}" >/dev/null 2>&1; then
  echo "make test runs go test -race, which needs cgo and a C compiler (go env CC: '${cc}'): install one, e.g. gcc" >&2
  exit 1
fi

export FARM_REQUIRE_EMULATORS=1
FARM_BIGQUERY_EMULATOR="$(bigquery_emulator_bin)"
export FARM_BIGQUERY_EMULATOR

if [ -z "${FIRESTORE_EMULATOR_HOST:-}" ]; then
  eval "$(./scripts/firestore-emulator.sh start)"
  trap './scripts/firestore-emulator.sh stop' EXIT
fi

go vet ./...
go test -race -count=1 -timeout 20m "$@" ./...

#!/usr/bin/env bash
# The lint command (`make lint`, and CI through .ci/run): golangci-lint, built once per machine
# into the tool cache (.ci/tools.sh), with the configuration in .golangci.yml. Then it proves that
# the import rules still bite: it adds, for the length of one run, a file that breaks each rule
# and fails unless golangci-lint refuses every one of them for the right rule.
set -euo pipefail
cd "$(dirname "$0")/.."

source .ci/tools.sh
lint=$(golangci_lint_bin)

"$lint" run "$@" ./...

# One forbidden import per depguard rule: package, import, rule expected to refuse it. Each import
# is chosen so that it makes no import cycle (the compiler would then refuse it, not the rule).
probes=(
  "pkg/poll github.com/farmobs/farm/pkg/state/firestore domain"
  "pkg/event gopkg.in/DataDog/dd-trace-go.v1/ddtrace/tracer tracer"
  "pkg/logging github.com/farmobs/farm/internal/ddagent shipped"
)
files=()
trap 'rm -f "${files[@]}"' EXIT
pkgs=()
for p in "${probes[@]}"; do
  read -r dir imp _ <<<"$p"
  f="$dir/zz_lint_probe.go"
  printf 'package %s\n\nimport _ "%s"\n' "$(go list -f '{{.Name}}' "./$dir")" "$imp" >"$f"
  files+=("$f")
  pkgs+=("./$dir")
done
out=$("$lint" run --enable-only depguard "${pkgs[@]}" 2>&1 || true)
for p in "${probes[@]}"; do
  read -r dir imp rule <<<"$p"
  if ! grep -q "$dir/zz_lint_probe.go.*'$imp'.*list '$rule'" <<<"$out"; then
    printf 'lint self-check: importing %s in %s was not refused by depguard rule %s; golangci-lint said:\n%s\n' "$imp" "$dir" "$rule" "$out" >&2
    exit 1
  fi
done
echo "lint: clean; the import rules refuse each probe (${#probes[@]})"

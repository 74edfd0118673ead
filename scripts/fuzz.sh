#!/usr/bin/env bash
# Runs every Go fuzz target of the module (func FuzzXxx in a _test.go file) for FUZZTIME each
# (default 30s). `make test` already runs their seed corpora; this mutates them. A failing input
# is saved under the package's testdata/fuzz/ and fails the run: commit it with the fix, it then
# stays a seed.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-30s}"
status=0
while IFS=: read -r file target; do
	pkg="./$(dirname "$file")"
	echo "== $pkg $target ($fuzztime)"
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"; then
		status=1
	fi
done < <(grep -rHo --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+' --exclude-dir=.farm . | sed -E 's#^\./##; s#:func #:#' | sort)
exit "$status"

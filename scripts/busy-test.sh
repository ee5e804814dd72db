#!/usr/bin/env bash
# busy-test.sh [N] — the suite on a busy machine: clones this repository's HEAD into a fresh
# directory and runs `make test` there N times in a row (default 3) while two CPU-bound
# processes run beside it the whole time, as on a shared CI machine. Every run executes every test
# (GOFLAGS=-count=1: no cached results). Stops at the first failure.
# Prints one line per run (exit status and wall time) and keeps each run's log under $OUT
# (default /tmp/llem-busy-test).
set -euo pipefail
n=${1:-3}
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out=${OUT:-/tmp/llem-busy-test}
rm -rf "$out" && mkdir -p "$out"
git clone -q "$top" "$out/clone"
burners=()
for _ in 1 2; do sh -c 'while :; do :; done' & burners+=($!); done
trap 'kill "${burners[@]}" 2>/dev/null' EXIT
echo "busy-test: $(git -C "$out/clone" rev-parse --short HEAD), two CPU-bound processes beside make test, $(nproc) cores"
for i in $(seq 1 "$n"); do
  start=$(date +%s)
  if (cd "$out/clone" && GOFLAGS=-count=1 make test) >"$out/run-$i.log" 2>&1; then rc=0; else rc=$?; fi
  echo "busy-test: run $i/$n: exit $rc, $(( $(date +%s) - start )) s, load average $(cut -d' ' -f1-3 /proc/loadavg) (log $out/run-$i.log)"
  [ "$rc" -eq 0 ] || exit "$rc"
done

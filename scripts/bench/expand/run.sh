#!/usr/bin/env bash
# llem-expand against a Python stand-in for the original's loader
# (original_loader.py: its expand_grid + pydantic validation + hashing),
# side by side in one run, as whole processes timed by GNU time.
#
#   scripts/bench/expand/run.sh [K]
#
# The study is a 100 × 100 × K sweep of n, max_output_tokens and random_seed
# (default K=10: 100 000 runs), one cycle, sequential. Both tools write their
# NDJSON to /dev/null. Prints a Markdown table.
set -euo pipefail
k=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
dir=$(mktemp -d /tmp/llem-expandbench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export CGO_CFLAGS=-Wno-deprecated-declarations
# the interpreter itself, resolved once: timing "python3" through a pyenv shim
# would add the shim's own start-up (a bash script) to the peer's CPU
py=$(python3 -c 'import sys; print(sys.executable)')
(cd "$repo" && go build -o "$dir/llem-expand" ./cmd/llem-expand)
{ echo "name: bench"; echo "model: llem-tiny"; echo "sweep:"
  echo "  n: [$(seq -s, 1 100)]"; echo "  max_output_tokens: [$(seq -s, 1 100)]"
  echo "  random_seed: [$(seq -s, 1 "$k")]"
  echo "execution: {n_cycles: 1, cycle_order: sequential}"; } > "$dir/study.yaml"
runs=$((100 * 100 * k))
measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$dir/t" "$@" > /dev/null 2> "$dir/err" || { cat "$dir/err" >&2; exit 1; }
  read -r wall user sys kb < "$dir/t"
  awk -v n="$name" -v r="$runs" -v w="$wall" -v u="$user" -v s="$sys" -v kb="$kb" 'BEGIN {
    printf "| %s | %d | %.2f s | %.0f | %.2f s | %.0f MiB |\n", n, r, w, r / w, u + s, kb / 1024 }'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
echo
echo "| loader | runs | wall | runs/s | CPU (user+sys) | peak RSS |"
echo "|---|---|---|---|---|---|"
measure "llem-expand" "$dir/llem-expand" -q "$dir/study.yaml"
measure "original_loader.py (stand-in, Python $("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])'), pydantic $("$py" -c 'import pydantic; print(pydantic.VERSION)'))" \
  "$py" "$here/original_loader.py" "$dir/study.yaml"

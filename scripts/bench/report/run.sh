#!/usr/bin/env bash
# llem-report on a synthetic 500-run study (100 configs × 5 cycles, with run
# directories) against a pandas + matplotlib report of the same records
# (pandas_report.py: less work — a table and two plots), side by side in one
# run as whole processes under GNU time.
#
#   scripts/bench/report/run.sh            # needs Debian's python3-pandas, python3-matplotlib, python3-scipy
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
dir=$(mktemp -d /tmp/llem-reportbench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export CGO_CFLAGS=-Wno-deprecated-declarations
(cd "$repo" && go build -o "$dir/" ./cmd/llem-report && go test ./internal/report -run WriteSynthetic -synth "$dir/synth" > /dev/null)
measure() { # name, output file, command...
  local name=$1 outf=$2; shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$dir/t" "$@" > /dev/null 2> "$dir/err" || { cat "$dir/err" >&2; exit 1; }
  read -r wall user sys kb < "$dir/t"
  awk -v n="$name" -v w="$wall" -v u="$user" -v s="$sys" -v kb="$kb" -v b="$(stat -c %s "$outf")" 'BEGIN {
    printf "| %s | %.2f s | %.2f s | %.0f MiB | %.0f kB |\n", n, w, u + s, kb / 1024, b / 1000 }'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores; input $(stat -c %s "$dir/synth/energy.ndjson") bytes of records, 500 runs"
echo
echo "| report | wall | CPU (user+sys) | peak RSS | output |"
echo "|---|---|---|---|---|"
measure "llem-report --format html (all plots, run dirs read)" "$dir/l.html" "$dir/llem-report" --root "$dir/synth" --format html -o "$dir/l.html" "$dir/synth/energy.ndjson"
measure "llem-report --format md" "$dir/l.md" "$dir/llem-report" --root "$dir/synth" --format md -o "$dir/l.md" "$dir/synth/energy.ndjson"
measure "pandas_report.py (pandas $(/usr/bin/python3 -c 'import pandas; print(pandas.__version__)'), matplotlib; table + 2 plots)" "$dir/p.html" /usr/bin/python3 "$here/pandas_report.py" "$dir/synth/energy.ndjson" "$dir/p.html"

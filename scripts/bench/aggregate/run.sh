#!/usr/bin/env bash
# Speed benchmark of llem-aggregate's window integration against DuckDB and
# numpy on the same sample stream, side by side in one run.
#
#   scripts/bench/aggregate/run.sh [ROWS] [WINDOWS] [REPS] [DIR]
#
# ROWS (default 1e7) rows of 4 devices at 10 ms, WINDOWS (default 10000)
# random windows of 1 s to 10 min. The data is written once into DIR (default
# /tmp/llem-aggbench-ROWS) as Arrow IPC (llem), Parquet (DuckDB) and .npy
# (numpy); every tool then integrates power over every window and device
# (trapezoid, edges interpolated) and writes CSV. The tools run in turn, REPS
# times (default 3), so that a shared machine's load falls on all of them
# alike; the table gives the median wall and CPU time (GNU time) and the
# largest peak RSS. Before the table, the results are checked to agree: the
# script fails if any tool's integral_j differs from llem-aggregate's by more
# than a relative 1e-9 (compare.py).
#
# How each peer is written (each the best a skilled user of the tool would
# write; see the files for why each choice):
#   llem-aggregate  --samples --windows: one pass over the Arrow stream, one
#                   thread.
#   DuckDB tuned    duckdb/tuned.sql: one-byte device key, streaming lag()
#                   OVER () per device (documented order preservation, no
#                   sort of the samples), edge buckets by an equality hash
#                   join on a cell table, one hash aggregate; only tables the
#                   size of the window list are sorted.
#   DuckDB naive    duckdb/naive.sql, kept for comparison and labelled so:
#                   two window functions partitioned by the 40-byte device
#                   string (a sort of the table each), a materialised temp
#                   table and an ASOF join with the samples as its sorted
#                   side (a third sort).
#   numpy           numpy_trapz.py: memory-mapped .npy columns, a mask per
#                   device, cumulative trapezoid, np.searchsorted per edge;
#                   no DataFrame of the samples, no sort (the rows are in
#                   time order, checked).
# DuckDB runs with as many threads as llem-aggregate uses for the work: 1
# (DUCKDB_THREADS to change it). DUCKDB_MEMORY (e.g. 8GB) sets its
# memory_limit; unset, DuckDB's default (80 % of RAM) applies. NAIVE_REPS
# (default REPS; 0 skips it) bounds the naive query's repetitions: at 10^8
# rows one run takes minutes.
set -euo pipefail
rows=${1:-10000000}
windows=${2:-10000}
reps=${3:-3}
dir=${4:-/tmp/llem-aggbench-$rows}
naive_reps=${NAIVE_REPS:-$reps}
threads=${DUCKDB_THREADS:-1}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export CGO_CFLAGS=-Wno-deprecated-declarations
mkdir -p "$dir/bin"
say() { printf 'bench: %s\n' "$*" >&2; }

say "building"
(cd "$repo" && go build -o "$dir/bin/" ./cmd/llem-aggregate ./scripts/bench/aggregate/gen)
(cd "$here/duckdb" && go build -o "$dir/bin/duckbench" .)

# v2: the Parquet file has the one-byte dev column and devices.csv exists
if [ ! -e "$dir/.done-v2-$windows" ]; then
  say "writing $rows rows and $windows windows to $dir"
  /usr/bin/time -f "gen: %e s, %M KB" "$dir/bin/gen" -rows "$rows" -windows "$windows" -out "$dir"
  touch "$dir/.done-v2-$windows"
fi

cd "$dir"
rm -rf times && mkdir times
run() { # name, rep, command...: wall s, CPU s (user+sys), peak KB into times/
  local name=$1 rep=$2; shift 2
  say "$name, run $rep"
  /usr/bin/time -f "%e %U %S %M" -o "times/$name.$rep" "$@"
}
duck=(bin/duckbench -samples samples.parquet -windows windows.csv -devices devices.csv -threads "$threads"
  ${DUCKDB_MEMORY:+-memory "$DUCKDB_MEMORY"})

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
cat samples.arrows samples.parquet t.npy device.npy power_w.npy > /dev/null # all from the page cache
for rep in $(seq 1 "$reps"); do
  run llem-aggregate "$rep" sh -c "bin/llem-aggregate --samples samples.arrows --windows windows.csv > llem.csv"
  run "DuckDB tuned" "$rep" "${duck[@]}" -query tuned -o tuned.csv
  if [ "$rep" -le "$naive_reps" ]; then
    run "DuckDB naive" "$rep" "${duck[@]}" -query naive -o naive.csv
  fi
  run numpy "$rep" /usr/bin/python3 "$here/numpy_trapz.py" . numpy.csv
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

say "checking every tool agrees with llem-aggregate"
outs="tuned.csv numpy.csv"
[ "$naive_reps" -gt 0 ] && outs="$outs naive.csv"
for f in $outs; do
  printf '%s vs llem.csv: ' "$f"
  /usr/bin/python3 "$here/compare.py" "$f" llem.csv
done

echo
echo "$rows rows (4 devices, 10 ms), $windows windows, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "DuckDB threads: $threads, memory_limit: ${DUCKDB_MEMORY:-default}; load average $load_start at the start, $load_end at the end"
echo
/usr/bin/python3 - "$rows" <<'EOF'
import glob, os, statistics, sys

rows = int(sys.argv[1])
inputs = {"llem-aggregate": ["samples.arrows"], "DuckDB tuned": ["samples.parquet"],
          "DuckDB naive": ["samples.parquet"], "numpy": ["t.npy", "device.npy", "power_w.npy"]}
res = {}
for name in inputs:
    runs = [list(map(float, open(f).read().split())) for f in sorted(glob.glob(f"times/{name}.*"))]
    if runs:
        res[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] + r[2] for r in runs),
                     max(r[3] for r in runs) / 1024, len(runs))
base_wall, base_cpu = res["llem-aggregate"][0], res["llem-aggregate"][1]
print("| tool | input | runs | wall (median) | CPU user+sys (median) | peak RSS | throughput | wall / llem | CPU / llem |")
print("|---|---|---|---|---|---|---|---|---|")
for name, (wall, cpu, rss, n) in res.items():
    mb = sum(os.path.getsize(f) for f in inputs[name]) / 1e6
    print(f"| {name} | {mb:.0f} MB | {n} | {wall:.2f} s | {cpu:.2f} s | {rss:.0f} MiB | {rows / wall / 1e6:.1f} M rows/s "
          f"| {wall / base_wall:.2f}× | {cpu / base_cpu:.2f}× |")
EOF

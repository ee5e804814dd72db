#!/usr/bin/env bash
# Speed benchmark of llem-aggregate's window integration against DuckDB and
# pandas on the same sample stream, side by side in one run.
#
#   scripts/bench/aggregate/run.sh [ROWS] [WINDOWS] [DIR]
#
# ROWS (default 1e7) rows of 4 devices at 10 ms, WINDOWS (default 10000)
# random windows of 1 s to 10 min. The data is written once into DIR (default
# /tmp/llem-aggbench-ROWS) as Arrow IPC (llem), Parquet (DuckDB) and .npy
# (pandas); every tool then integrates power over every window and device
# (trapezoid, edges interpolated), writes CSV, and the results are compared.
# Each tool's input is read once beforehand so all three start from the page
# cache. Wall time and peak RSS come from GNU time. DUCKDB_MEMORY=8GB caps
# DuckDB's memory (it spills to disk beyond it) on a shared machine.
set -euo pipefail
rows=${1:-10000000}
windows=${2:-10000}
dir=${3:-/tmp/llem-aggbench-$rows}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export CGO_CFLAGS=-Wno-deprecated-declarations
mkdir -p "$dir/bin"
say() { printf 'bench: %s\n' "$*" >&2; }

say "building"
(cd "$repo" && go build -o "$dir/bin/" ./cmd/llem-aggregate ./scripts/bench/aggregate/gen)
(cd "$here/duckdb" && go build -o "$dir/bin/duckbench" .)

if [ ! -e "$dir/.done-$windows" ]; then
  say "writing $rows rows and $windows windows to $dir"
  /usr/bin/time -f "gen: %e s, %M KB" "$dir/bin/gen" -rows "$rows" -windows "$windows" -out "$dir"
  touch "$dir/.done-$windows"
fi

measure() { # name, input bytes, command...
  local name=$1 bytes=$2; shift 2
  /usr/bin/time -f "%e %M" -o "$dir/$name.time" "$@"
  read -r wall kb < "$dir/$name.time"
  printf '| %-14s | %8.0f MB | %8.2f s | %8.0f MiB | %6.1f M rows/s |\n' "$name" "$(echo "$bytes/1000000" | bc -l)" \
    "$wall" "$(echo "$kb/1024" | bc -l)" "$(echo "$rows/$wall/1000000" | bc -l)" >> "$dir/table.md"
}
size() { du -cb "$@" | tail -1 | cut -f1; }

cd "$dir"
: > table.md
cat samples.arrows > /dev/null
measure llem-aggregate "$(size samples.arrows)" sh -c "bin/llem-aggregate --samples samples.arrows --windows windows.csv > llem.csv"
cat samples.parquet > /dev/null
measure duckdb "$(size samples.parquet)" bin/duckbench -samples samples.parquet -windows windows.csv -o duckdb.csv ${DUCKDB_MEMORY:+-memory "$DUCKDB_MEMORY"}
cat t.npy device.npy power_w.npy > /dev/null
measure pandas "$(size t.npy device.npy power_w.npy)" /usr/bin/python3 "$here/pandas_trapz.py" . pandas.csv

say "checking the three agree"
/usr/bin/python3 "$here/compare.py" llem.csv pandas.csv
/usr/bin/python3 "$here/compare.py" duckdb.csv pandas.csv

echo
echo "$rows rows (4 devices, 10 ms), $windows windows, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "| tool           |    input    |   wall     |   peak RSS   |   throughput    |"
echo "|----------------|-------------|------------|--------------|-----------------|"
cat table.md

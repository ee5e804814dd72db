#!/usr/bin/env bash
# llem-aggregate's window integration at an earlier revision against the
# working tree, side by side on run.sh's data: how much a change to the
# aggregate pass costs as a whole process.
#
#   scripts/bench/aggregate/before_after.sh REV [ROWS] [REPS] [DIR]
#
# REV is any git revision (e.g. 480ac46, the last before the checks for messy
# sensors). ROWS (default 1e7) and DIR (default /tmp/llem-aggbench-ROWS) pick
# data that run.sh has written. The two binaries run in turn REPS times
# (default 5); the table gives median wall and CPU (user+sys) from GNU time
# and the largest peak RSS. Both outputs must agree to a relative 1e-9.
set -euo pipefail
rev=${1:?usage: before_after.sh REV [ROWS] [REPS] [DIR]}
rows=${2:-10000000}
reps=${3:-5}
dir=${4:-/tmp/llem-aggbench-$rows}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export CGO_CFLAGS=-Wno-deprecated-declarations
[ -e "$dir/samples.arrows" ] || { echo "before_after.sh: no $dir/samples.arrows; run run.sh $rows first" >&2; exit 2; }
src=$(mktemp -d /tmp/llem-before.XXXXXX)
trap 'rm -rf "$src"' EXIT
git -C "$repo" archive "$rev" | tar -x -C "$src"
(cd "$src" && go build -o "$dir/bin/llem-aggregate-before" ./cmd/llem-aggregate)
(cd "$repo" && go build -o "$dir/bin/" ./cmd/llem-aggregate)

cd "$dir"
rm -rf times-ba && mkdir times-ba
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
cat samples.arrows > /dev/null
for rep in $(seq 1 "$reps"); do
  for b in llem-aggregate-before llem-aggregate; do
    /usr/bin/time -f "%e %U %S %M" -o "times-ba/$b.$rep" sh -c "bin/$b --samples samples.arrows --windows windows.csv > $b.csv"
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'outputs: '
/usr/bin/python3 "$here/compare.py" llem-aggregate.csv llem-aggregate-before.csv
echo "$rows rows; before = $(git -C "$repo" rev-parse --short "$rev"), after = the working tree; load average $load_start at the start, $load_end at the end"
/usr/bin/python3 - "$rev" <<'EOF'
import glob, statistics, sys

print("| llem-aggregate | runs | wall (median) | CPU user+sys (median) | peak RSS |")
print("|---|---|---|---|---|")
for b, label in (("llem-aggregate-before", f"at {sys.argv[1]}"), ("llem-aggregate", "working tree")):
    runs = [list(map(float, open(f).read().split())) for f in glob.glob(f"times-ba/{b}.*")]
    print(f"| {label} | {len(runs)} | {statistics.median(r[0] for r in runs):.2f} s "
          f"| {statistics.median(r[1] + r[2] for r in runs):.2f} s | {max(r[3] for r in runs) / 1024:.0f} MiB |")
EOF

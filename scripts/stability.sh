#!/usr/bin/env bash
# stability.sh [N] — how stable the quickstart's CPU energy is under other load: runs the
# quickstart (examples/quickstart.yaml through bin/llem-expand | llem-exec | llem-aggregate) N
# times (default 3) on the machine as it is ("quiet") and N times with two CPU-bound processes
# beside it ("busy"), aggregates every run with --attribution process and --attribution machine,
# and prints, per attribution and config, the mean J per output token over the N×cycles runs of
# each condition and their difference in %. Process attribution should hold within 15 %;
# machine attribution takes the other load in. Needs jq. Keeps everything under $OUT
# (default /tmp/llem-stability). SETS adds llem-expand options, e.g. SETS="--set native.threads=1".
set -euo pipefail
n=${1:-3}
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out=${OUT:-/tmp/llem-stability}
bin="$top/bin"
rm -rf "$out" && mkdir -p "$out"
make -C "$top" build >/dev/null
burners=()
stop_burners() { [ ${#burners[@]} -eq 0 ] || kill "${burners[@]}" 2>/dev/null || true; burners=(); }
trap stop_burners EXIT
run_condition() { # condition
  for i in $(seq 1 "$n"); do
    d="$out/$1-$i"
    "$bin/llem-expand" ${SETS:-} "$top/examples/quickstart.yaml" 2>/dev/null | "$bin/llem-exec" --out "$d" >"$d.runs.ndjson" 2>"$d.log"
    for a in process machine; do
      "$bin/llem-aggregate" --attribution "$a" --no-request-files "$d.runs.ndjson" |
        jq -c --arg cond "$1" --arg attr "$a" 'select(.kind == "energy" and .status == "ok") |
          {cond: $cond, attr: $attr, batch: (.config.native.batch_size // .config["native.batch_size"] // .id),
           jpt: .metrics.j_per_output_token}' >>"$out/energy.ndjson"
    done
    echo "stability: $1 run $i/$n done, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  done
}
echo "stability: $(git -C "$top" rev-parse --short HEAD), $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
run_condition quiet
for _ in 1 2; do sh -c 'while :; do :; done' & burners+=($!); done
run_condition busy
stop_burners
for a in process machine; do
  echo
  echo "$a attribution: mean J per output token over $n quickstart runs × 2 cycles"
  jq -rs --arg attr "$a" '
    map(select(.attr == $attr and .jpt != null)) | group_by(.batch)[] |
    (map(select(.cond == "quiet") | .jpt) | add / length) as $q |
    (map(select(.cond == "busy") | .jpt) | add / length) as $b |
    "batch_size \(.[0].batch): quiet \($q * 1000 * 1000 | round / 1000) mJ, busy \($b * 1000 * 1000 | round / 1000) mJ, difference \((($b - $q) / $q * 1000 | round) / 10) %"
  ' "$out/energy.ndjson"
done

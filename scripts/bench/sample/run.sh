#!/usr/bin/env bash
# CPU cost of sampling, whole processes side by side: llem-sample (estimate
# source, the one every machine has; Arrow file written) against a Python
# polling thread in the original's style (poll_peer.py), each for SECONDS at
# 100 Hz and at 1 kHz. CPU = user+sys from GNU time, per second of sampling.
# Then the cost of recording the run's CPU time at 100 Hz: none (--machine),
# the command's own cgroup (llem-sample's default around a command), and the
# process-tree fallback over a few processes and over every process on the
# machine (--run-pid 1).
#
#   scripts/bench/sample/run.sh [SECONDS]
set -euo pipefail
secs=${1:-10}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
dir=$(mktemp -d /tmp/llem-samplebench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export CGO_CFLAGS=-Wno-deprecated-declarations
# the interpreter itself, resolved once: timing "python3" through a pyenv shim
# would add the shim's own start-up (a bash script) to the peer's CPU
py=$(python3 -c 'import sys; print(sys.executable)')
(cd "$repo" && go build -o "$dir/llem-sample" ./cmd/llem-sample)
measure() { # name, interval, command...
  local name=$1 iv=$2; shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$dir/t" "$@" > /dev/null 2> "$dir/err" || { cat "$dir/err" >&2; exit 1; }
  read -r wall user sys kb < "$dir/t"
  rows=$(grep -oE '[0-9]+ rows' "$dir/err" | head -1 | cut -d' ' -f1)
  awk -v n="$name" -v iv="$iv" -v s="$secs" -v u="$user" -v y="$sys" -v kb="$kb" -v rows="$rows" 'BEGIN {
    printf "| %s | %s | %.0f | %.1f ms | %.2f%% | %.0f MiB |\n", n, iv, rows / s, (u + y) * 1000 / s, (u + y) * 100 / s, kb / 1024 }'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, ${secs} s each"
echo
echo "| sampler | interval | rows/s | CPU per s of sampling | of one core | peak RSS |"
echo "|---|---|---|---|---|---|"
for iv in 10 1; do
  measure "llem-sample --sources estimate" "${iv} ms" "$dir/llem-sample" --sources estimate --interval "${iv}ms" -o "$dir/s.arrows" -- sleep "$secs"
  measure "poll_peer.py (Python thread)" "${iv} ms" "$py" "$here/poll_peer.py" "$secs" "$iv"
done
echo
echo "| llem-sample --sources estimate, run CPU time | interval | rows/s | CPU per s of sampling | of one core | peak RSS |"
echo "|---|---|---|---|---|---|"
measure "none (--machine)" "10 ms" "$dir/llem-sample" --sources estimate --interval 10ms --machine -o "$dir/s.arrows" -- sleep "$secs"
measure "the command's cgroup (default)" "10 ms" "$dir/llem-sample" --sources estimate --interval 10ms -o "$dir/s.arrows" -- sleep "$secs"
measure "process tree of this script (a few processes)" "10 ms" "$dir/llem-sample" --sources estimate --interval 10ms --run-pid $$ -o "$dir/s.arrows" -- sleep "$secs"
measure "process tree of pid 1 (all $(ls -d /proc/[0-9]* 2>/dev/null | wc -l) processes: the worst case)" "10 ms" "$dir/llem-sample" --sources estimate --interval 10ms --run-pid 1 -o "$dir/s.arrows" -- sleep "$secs"

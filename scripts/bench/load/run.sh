#!/usr/bin/env bash
# Send lag and CPU per request of llem-load beside a Python asyncio + aiohttp
# generator written the way vLLM's benchmark_serving works (aiohttp_peer.py),
# both open loop with Poisson arrivals (seed 1) against the same fast stand-in
# server (standin/: answers 4 token chunks, usage and [DONE] at once), one
# rate after another, SECONDS of traffic per rate. CPU = user+sys of the
# generator's whole process (GNU time) over the requests it sent. Send lag =
# when the request left minus when the schedule said; p50/p99 over all
# requests. Needs python3-aiohttp (Debian; run with $PYTHON, default
# /usr/bin/python3, the interpreter Debian's package belongs to).
#
# PRIO is a command prefix both generators run under, the same for each, e.g.
# PRIO="chrt -f 50" (real-time priority, root): on a shared machine a
# generator's tail lag is mostly its waits for a CPU, which this removes.
#
#   scripts/bench/load/run.sh [SECONDS] [RATES...]     (default: 5 s; 100 1000 5000)
set -euo pipefail
ulimit -n "$(ulimit -Hn)" # a generator that falls behind holds thousands of connections
secs=${1:-5}
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(100 1000 5000)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
dir=$(mktemp -d /tmp/llem-loadbench.XXXXXX)
export CGO_CFLAGS=-Wno-deprecated-declarations
(cd "$repo" && go build -o "$dir/" ./cmd/llem-load ./scripts/bench/load/standin)
"$dir/standin" -tokens 4 > "$dir/addr" 2> "$dir/server.log" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -s "$dir/addr" ] && break; sleep 0.05; done
url="http://$(cat "$dir/addr")/v1"
py=${PYTHON:-/usr/bin/python3}
"$py" -c 'import aiohttp' 2>/dev/null || { echo "run.sh: needs python3-aiohttp (apt-get install -y python3-aiohttp)" >&2; exit 1; }

# row NAME RATE: one table row from $dir/out.ndjson and $dir/time.
row() {
  python3 - "$1" "$2" "$dir/out.ndjson" "$dir/time" <<'PY'
import json, sys
name, rate, path, tpath = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
recs = [json.loads(l) for l in open(path) if l.strip()]
lags = sorted(r["send_lag_ns"] / 1e6 for r in recs)
starts = sorted(r["t_start"] for r in recs)
def pct(v, q):  # numpy's linear interpolation
    h = q * (len(v) - 1); lo = int(h)
    return v[-1] if lo >= len(v) - 1 else v[lo] + (h - lo) * (v[lo + 1] - v[lo])
user, sys_ = map(float, open(tpath).read().split()[:2])
ok = sum(r["status"] == "ok" for r in recs)
sent = (len(starts) - 1) / ((starts[-1] - starts[0]) / 1e9) if len(starts) > 1 else float("nan")
print(f"| {name} | {rate:g} | {len(recs)} | {ok} | {sent:.0f} | {pct(lags, .5):.3f} | {pct(lags, .99):.3f} | {lags[-1]:.1f} | {(user + sys_) * 1e6 / len(recs):.0f} µs |")
PY
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores; ${secs} s of Poisson arrivals per rate; server: $url; generators under: ${PRIO:-(normal priority)}"
echo
echo "| generator | rate/s | requests | ok | sent/s | send lag p50 ms | p99 ms | max ms | CPU per request |"
echo "|---|---|---|---|---|---|---|---|---|"
for rate in "${rates[@]}"; do
  n=$(python3 -c "print(int($rate * $secs))")
  /usr/bin/time -f "%U %S" -o "$dir/time" ${PRIO:-} "$dir/llem-load" --url "$url" --model standin --rate "$rate" -n "$n" \
    --seed 1 --input-len 16 --output-len 4 -q > "$dir/out.ndjson"
  row llem-load "$rate"
  /usr/bin/time -f "%U %S" -o "$dir/time" ${PRIO:-} "$py" "$here/aiohttp_peer.py" --url "$url" --rate "$rate" -n "$n" --seed 1 \
    > "$dir/out.ndjson"
  row "aiohttp_peer.py" "$rate"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -q "too many open files" "$dir/server.log"; then
  echo "the server ran out of file descriptors (limit $(ulimit -n)) while a generator held too many connections"
fi

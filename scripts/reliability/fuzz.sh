#!/usr/bin/env bash
# fuzz.sh: run each fuzz target of llem's outside-input parsers for a fixed
# time, one at a time on one core, and append what happened (executions,
# corpus growth, crashers) to scripts/reliability/figures/fuzz.ndjson, which
# RELIABILITY.md is generated from (scripts/reliability/report.sh).
#
#   scripts/reliability/fuzz.sh [-t 10m] [-l LOGDIR] [package:FuzzTarget ...]
#
# With no targets it runs them all (the list below). A crasher that the fuzzer
# finds is written by go test to <package>/testdata/fuzz/<Target>/<hash>; the
# run of that target stops there, is recorded with result "fail" and the
# crasher's path, and the script goes on to the next target.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH

ALL=(
	internal/config:FuzzParse
	internal/study:FuzzExpand
	internal/record:FuzzRecords
	internal/runloop:FuzzEvents
	internal/power:FuzzReader
	internal/dataset:FuzzJSONL
	internal/native:FuzzSafetensorsHeader
	internal/runloop:FuzzJournal
	internal/aggregate:FuzzArrowSource
	internal/aggregate:FuzzCurve
)

time=10m
logdir=.artifacts/fuzz
while getopts "t:l:" o; do
	case $o in
	t) time=$OPTARG ;;
	l) logdir=$OPTARG ;;
	*) echo "usage: $0 [-t 10m] [-l LOGDIR] [package:FuzzTarget ...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
mkdir -p "$logdir" scripts/reliability/figures
figures=scripts/reliability/figures/fuzz.ndjson
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
gover=$(go env GOVERSION)
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')

status=0
for t in "${targets[@]}"; do
	pkg=${t%%:*} name=${t##*:}
	log="$logdir/$name.log"
	start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	s0=$(date +%s)
	echo "== $pkg $name for $time (log $log)" >&2
	# -parallel=1: one fuzzing worker, so that the run keeps to one core.
	# -timeout 0: go test's default 10m would end a 10m run; every target
	# has its own watchdog that turns a slow input into a crasher instead.
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$time" -parallel 1 -timeout 0 "./$pkg" >"$log" 2>&1
	rc=$?
	s1=$(date +%s)
	last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n1)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	elapsed=$(sed -nE 's/^fuzz: elapsed: ([^,]+),.*/\1/p' <<<"$last")
	newi=$(sed -nE 's/.*new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1/p' <<<"$last")
	total=$(sed -nE 's/.*new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\2/p' <<<"$last")
	crasher=$(sed -nE 's/.*Failing input written to (.*)$/\1/p' "$log" | head -n1)
	result=pass
	if [ $rc -ne 0 ]; then
		result=fail
		status=1
		echo "   FAILED (rc $rc): $(grep -m3 -E 'panic|---|Error|error' "$log" | tr '\n' ' ')" >&2
	fi
	jq -cn --arg target "$name" --arg package "$pkg" --arg fuzztime "$time" \
		--arg started "$start" --argjson wall_s $((s1 - s0)) --arg elapsed "$elapsed" \
		--arg execs "${execs:-0}" --arg new "${newi:-0}" --arg total "${total:-0}" \
		--arg result "$result" --arg crasher "$crasher" --arg commit "$commit" \
		--arg go "$gover" --arg cpu "$cpu" \
		'{target:$target, package:$package, fuzztime:$fuzztime, started:$started,
		  wall_s:$wall_s, fuzz_elapsed:$elapsed, execs:($execs|tonumber),
		  new_interesting:($new|tonumber), corpus_total:($total|tonumber),
		  result:$result, crasher:(if $crasher == "" then null else $crasher end),
		  workers:1, commit:$commit, go:$go, cpu:$cpu}' >>"$figures"
	echo "   $result: ${execs:-0} execs in ${elapsed:-?}" >&2
done
exit $status

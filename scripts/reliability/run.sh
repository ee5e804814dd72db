#!/usr/bin/env bash
# run.sh: llem's reliability suite, from one command.
#
#   scripts/reliability/run.sh           short form (what CI runs inside go test ./...)
#   scripts/reliability/run.sh --long    long form: 200 SIGKILL-and-resume trials
#
# It runs the fault-injection and hostile-input tests (internal/reliability,
# real binaries) and the fault tests that live beside the code they test
# (internal/runloop, internal/power, internal/aggregate) with go test -json,
# keeps each test's result and figures in scripts/reliability/figures/
# suite-<mode>.ndjson, and regenerates RELIABILITY.md's figures with
# scripts/reliability/report.sh. Tests that mount a tmpfs need root; without
# it they skip, and the skip is recorded.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
mode=short
[ "${1:-}" = "--long" ] && mode=long
art=.artifacts/reliability-$mode
rm -rf "$art" && mkdir -p "$art" scripts/reliability/figures
export LLEM_RELIABILITY_OUT=$PWD/$art
[ $mode = long ] && export LLEM_RELIABILITY=long
t0=$(date +%s)
set +e
go test -json -count=1 -timeout 30m ./internal/reliability >"$art/reliability.json" 2>&1
rc1=$?
go test -json -count=1 -timeout 30m \
	-run 'TestBehaviours|TestResumeAndDryRun|TestShardSelectLockTruncated|TestSIGKILLResume|TestSIGINTBinary|TestSecondSIGINTAndGap|TestBadInput|TestSamplerCmd|TestTruncated|TestWriteErrorSticky|TestFuzzFindings|Fuzz' \
	./internal/runloop ./internal/power ./internal/aggregate ./internal/record ./internal/study ./internal/config ./internal/dataset ./internal/native >"$art/beside.json" 2>&1
rc2=$?
set -e
t1=$(date +%s)
out=scripts/reliability/figures/suite-$mode.ndjson
{
	jq -c --arg mode "$mode" --arg commit "$(git rev-parse --short HEAD)" --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson wall $((t1 - t0)) \
		-n '{kind:"run", mode:$mode, commit:$commit, at:$at, wall_s:$wall}'
	# One line per top-level test: package, name, pass/fail/skip, seconds.
	cat "$art/reliability.json" "$art/beside.json" | jq -c 'select(.Test != null and (.Test | contains("/") | not) and (.Action == "pass" or .Action == "fail" or .Action == "skip")) | {kind:"test", package:(.Package | sub("github.com/llem/llem/"; "")), test:.Test, result:.Action, seconds:.Elapsed}'
	[ -f "$art/suite.ndjson" ] && jq -c '. + {kind:"figures"}' "$art/suite.ndjson"
} >"$out"
fails=$(jq -r 'select(.kind=="test" and .result=="fail") | .package + " " + .test' "$out")
echo "suite ($mode): $(jq -s '[.[]|select(.kind=="test")]|length' "$out") tests, $(jq -s '[.[]|select(.kind=="test" and .result=="fail")]|length' "$out") failed, $((t1 - t0)) s; figures in $out" >&2
[ -n "$fails" ] && echo "failed: $fails" >&2
scripts/reliability/report.sh
[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]

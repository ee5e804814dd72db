#!/usr/bin/env bash
# gpu-check-pipeline.sh — the whole pipeline with a Python worker:
#   llem-expand study.yaml | llem-exec | llem-aggregate | llem-report
# on a random-weight model made from a config by scripts/docker/make-tiny-model.py (nothing is
# downloaded), sampled with NVML. scripts/gpu-check.sh calls it on an NVIDIA machine whose python3
# has torch (with CUDA) and transformers (and vllm for BACKEND=vllm).
#
#   bash scripts/gpu-check-pipeline.sh          # GPU: real torch/transformers, --sampler nvml
#   FAKES=1 bash scripts/gpu-check-pipeline.sh  # CPU dry run: the recording stand-ins of
#                                               # internal/worker/python/testdata/fakes, device_map cpu,
#                                               # --sampler estimate (runs anywhere with python3)
# Environment: LLEM_BIN  a directory holding built llem-expand, llem-exec, llem-aggregate,
#                        llem-report (default: bin/ of a gpu bundle, else build them with cgo)
#              MODEL     a model directory (default: a tiny random-weight model made here)
#              BACKEND   pytorch (default) or vllm
#              RUNNER    local (default) or docker (then IMAGE names the backend's image, which
#                        must be on the engine already: --no-pull)
#              GPUS_PER_RUN  1 (default) or 2: tensor parallelism (vllm) or the model spread over
#                        two GPUs (pytorch max_memory); every run must be sampled on that many
#              KEEP=1    keep the work directory (printed)
# Exit 0 when every run is ok and every figure checked is there; 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/gpu-check-pipeline.XXXXXX)
if [ -n "${KEEP:-}" ]; then echo "== work directory $work"; else trap 'rm -rf "$work"' EXIT; fi

bin=${LLEM_BIN:-}
[ -z "$bin" ] && [ -x bin/llem-exec ] && bin=$PWD/bin
if [ -z "$bin" ]; then
	command -v go >/dev/null || { echo "gpu-check-pipeline: no Go toolchain; set LLEM_BIN to built llem tools" >&2; exit 1; }
	bin=$work/bin
	mkdir -p "$bin"
	CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations go build -o "$bin/" ./cmd/llem-expand ./cmd/llem-exec ./cmd/llem-aggregate ./cmd/llem-report
fi

backend=${BACKEND:-pytorch} runner=${RUNNER:-local} ngpu=${GPUS_PER_RUN:-1}
if [ -n "${FAKES:-}" ]; then
	mode=fakes model=org/fake-dense device_map=cpu sampler=estimate
	export PYTHONPATH=$PWD/internal/worker/python/testdata/fakes LLEM_FAKE_LOG=$work/calls.ndjson PYTHONDONTWRITEBYTECODE=1
else
	mode=gpu model=${MODEL:-$work/model} device_map=auto sampler=nvml
	if [ -z "${MODEL:-}" ]; then
		echo "== model: random weights from a config (scripts/docker/make-tiny-model.py)"
		python3 scripts/docker/make-tiny-model.py "$work/model"
	fi
fi
runner_line="$backend: $runner"
exec_args=()
if [ "$runner" = docker ]; then
	runner_line="$backend: \"docker:${IMAGE:?RUNNER=docker needs IMAGE}\""
	exec_args=(--no-pull --model-cache "$work/hf")
	mkdir -p "$work/hf"
fi
case "$backend" in
pytorch)
	section="pytorch: {device_map: $device_map}"
	[ "$ngpu" -gt 1 ] && section="pytorch: {device_map: auto, max_memory: {\"0\": 70GiB, \"1\": 70GiB}}"
	sweep="pytorch.batch_size: [1, 4]" ;;
vllm)
	section="vllm: {engine: {tensor_parallel_size: $ngpu, gpu_memory_utilization: 0.8, max_model_len: 256}}"
	sweep="vllm.engine.max_num_seqs: [4, 16]" ;;
*) echo "gpu-check-pipeline: BACKEND $backend: want pytorch or vllm" >&2; exit 2 ;;
esac

cat >"$work/study.yaml" <<EOF
name: gpu-check-$mode-$backend-$runner-${ngpu}gpu
model: $model
backend: $backend
precision: bf16
n: 16
max_input_tokens: 64
max_output_tokens: 32
dataset: {input_len: 32, output_len: 32}
decoder: {do_sample: false}
warmup: {n_warmup: 2, thermal_floor_seconds: 0}
$section
sweep:
  $sweep
execution: {n_cycles: 2, experiment_gap_seconds: 0, cycle_gap_seconds: 0}
runners:
  $runner_line
EOF

echo "== llem-expand | llem-exec --sampler $sampler | llem-aggregate ($mode, $backend, $runner runner, $ngpu GPU(s) a run)"
rc=0
"$bin/llem-expand" "$work/study.yaml" |
	"$bin/llem-exec" --out "$work/results" --cache-dir "$work/cache" --sampler "$sampler" --baseline 3s "${exec_args[@]}" |
	tee "$work/runs.ndjson" |
	"$bin/llem-aggregate" >"$work/energy.ndjson" || rc=$?
if [ "$rc" != 0 ]; then
	echo "gpu-check-pipeline: the pipeline exited $rc" >&2
	for f in "$work"/results/*/runs/*/worker.log; do [ -s "$f" ] && { echo "-- $f"; tail -15 "$f"; }; done >&2
	exit 1
fi

echo "== llem-report"
if ! "$bin/llem-report" "$work/energy.ndjson" || ! "$bin/llem-report" -o "$work/report.html" "$work/energy.ndjson"; then
	echo "gpu-check-pipeline: llem-report failed" >&2
	exit 1
fi
echo "== HTML report: $work/report.html"

python3 - "$work/runs.ndjson" "$work/energy.ndjson" "$mode" "$ngpu" "$backend" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"run"' in l]
energy = [json.loads(l) for l in open(sys.argv[2])]
mode, ngpu, backend = sys.argv[3], int(sys.argv[4]), sys.argv[5]
bad = []
print("%-22s %-6s %4s %6s %-10s %s" % ("run", "status", "req", "out", "samplers", "devices"))
for r in runs:
    t = r.get("totals") or {}
    print("%-22s %-6s %4s %6s %-10s %s" % (r["run_id"], r["status"], t.get("requests"), t.get("output_tokens"),
                                           ",".join(r["samplers"] or []), ",".join(r["devices"] or [])))
    if r["status"] != "ok":
        bad.append("%s: %s %s" % (r["run_id"], r["status"], r["error"]))
    gpus = [d for d in r["devices"] or [] if d.startswith(("GPU-", "MIG-"))]
    if mode == "gpu" and ("nvml" not in (r["samplers"] or []) or len(gpus) != ngpu):
        bad.append("%s: not sampled by NVML on its %d GPU(s) (%s on %s)" % (r["run_id"], ngpu, r["samplers"], r["devices"]))
if len(runs) != 4:
    bad.append("%d run records, want 4" % len(runs))
en = [e for e in energy if e["kind"] == "energy"]
su = [e for e in energy if e["kind"] == "summary"]
for e in en:
    m = e["metrics"]
    f = lambda k: "-" if m.get(k) is None else "%.4g" % m[k]
    print("energy %s: total %s J (gpu %s, cpu %s), measure %s J, %s J/output token, %s tok/s, TTFT p50 %s s" % (
        e["run_id"], f("total_energy_j"), f("gpu_energy_j"), f("cpu_energy_j"), f("energy_j"), f("j_per_output_token"),
        f("output_tokens_per_s"), f("ttft_p50_s")))
    if e["status"] == "ok" and m.get("energy_j") is None:
        bad.append("%s: no measure-phase energy" % e["run_id"])
    if mode == "gpu" and m.get("gpu_energy_j") is None:
        bad.append("%s: no GPU energy" % e["run_id"])
    if e["status"] == "ok" and not (m.get("j_per_output_token") or 0) > 0:
        bad.append("%s: no joules per output token" % e["run_id"])
if len(en) != len(runs) or len(su) != 2:
    bad.append("%d energy and %d summary records for %d runs, 2 configs" % (len(en), len(su), len(runs)))
for s in su:
    j = s["metrics"].get("j_per_output_token") or {}
    print("summary %s (%s %s): %s/%s runs ok, J/output token mean %s" % (s["id"], backend, json.dumps({k: v for k, v in (s["config"].get(backend) or {}).items() if v is not None}),
                                                                      s["runs_ok"], s["runs"], j.get("mean")))
if bad:
    print("gpu-check-pipeline: FAILED\n  " + "\n  ".join(bad))
    sys.exit(1)
print("gpu-check-pipeline: ok (%s): %d runs, %d energy records, %d summaries" % (mode, len(runs), len(en), len(su)))
PY

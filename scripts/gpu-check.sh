#!/usr/bin/env bash
# gpu-check.sh — on a machine with an NVIDIA GPU: sample every visible GPU
# with llem-sample for a few seconds idle and a few seconds under load, and
# print, per device, the energy from NVML's total-energy counter next to the
# trapezoid integral of polled power (and their gap in %).
#
# Then, where python3 has torch (with CUDA) and transformers: the pytorch worker on its own on a
# random-weight Mixtral-style model (scripts/docker/gpu-check-python.sh --moe: parameters, active
# parameters, TTFT/ITL, memory), and the whole pipeline with the pytorch worker under the local
# runner on a random-weight Llama-style model with NVML sampling (scripts/gpu-check-pipeline.sh:
# llem-expand | llem-exec | llem-aggregate | llem-report: energy per run and per config, and the
# report). Nothing is downloaded.
#
# Without an NVIDIA driver it says so and exits 0.
#
# Environment:
#   LLEM_SAMPLE  a built llem-sample (default: build ./cmd/llem-sample with cgo)
#   IDLE_S       idle seconds (default 5)
#   LOAD_S       load seconds (default 10)
#   INTERVAL     sampling interval (default 20ms)
#   LOAD_CMD     the load command (default: a PyTorch matmul loop where python3
#                has torch with CUDA; else no load phase)
#   LLEM_BIN     a directory of built llem tools for the pipeline (default: built)
set -euo pipefail
cd "$(dirname "$0")/.."

have_nvml() {
	command -v nvidia-smi >/dev/null 2>&1 && return 0
	ldconfig -p 2>/dev/null | grep -q 'libnvidia-ml\.so\.1' && return 0
	ls /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 /usr/lib64/libnvidia-ml.so.1 >/dev/null 2>&1
}
if ! have_nvml; then
	echo "gpu-check: no NVIDIA driver on this machine (no nvidia-smi, no libnvidia-ml.so.1); nothing to check."
	exit 0
fi

IDLE_S=${IDLE_S:-5}
LOAD_S=${LOAD_S:-10}
INTERVAL=${INTERVAL:-20ms}
out=$(mktemp -d /tmp/gpu-check.XXXXXX)
bin=${LLEM_SAMPLE:-}
if [ -z "$bin" ]; then
	command -v go >/dev/null || { echo "gpu-check: no Go toolchain; set LLEM_SAMPLE to a built llem-sample" >&2; exit 1; }
	bin=$out/llem-sample
	CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations go build -o "$bin" ./cmd/llem-sample
fi

echo "== host"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,persistence_mode --format=csv,noheader || true

echo "== idle ${IDLE_S} s at ${INTERVAL}"
"$bin" --sources nvml --interval "$INTERVAL" -o "$out/idle.arrows" -- sleep "$IDLE_S"

load=${LOAD_CMD:-}
if [ -z "$load" ] && python3 -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	load="python3 -c 'import torch,time
n=torch.cuda.device_count(); a=[torch.randn(8192,8192,device=f\"cuda:{i}\") for i in range(n)]
end=time.time()+$LOAD_S
while time.time()<end:
    for x in a: x@x
    torch.cuda.synchronize()'"
fi
if [ -z "$load" ]; then
	echo "== load: skipped (no LOAD_CMD and no python3 with CUDA torch)"
else
	echo "== load ${LOAD_S} s at ${INTERVAL}: $load"
	"$bin" --sources nvml --interval "$INTERVAL" -o "$out/load.arrows" -- sh -c "$load"
fi
echo "== streams in $out"

if python3 -c 'import torch, transformers, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	echo "== pytorch worker alone, random-weight MoE model"
	bash scripts/docker/gpu-check-python.sh --moe
	echo "== pipeline: pytorch worker under the local runner, NVML sampling"
	bash scripts/gpu-check-pipeline.sh
else
	echo "== pytorch worker and pipeline: skipped (python3 lacks torch with CUDA, or transformers)"
fi

#!/usr/bin/env bash
# gpu-check.sh — checks llem on an NVIDIA machine, each check with a pass/fail rule; exits 1 when
# any check fails. `gpu-check.sh --dry-run` prints the checks, their thresholds and which of
# them this machine would run (and why not), and runs nothing.
#
# The machine needs the NVIDIA driver, python3 with PyTorch (CUDA) and transformers; optionally
# vLLM, a second GPU, and a Docker engine with the NVIDIA runtime and a backend image. It needs
# neither Go nor a network: `make gpu-bundle` (on a machine with Go) puts built tools, these
# scripts and the worker sources into one directory to copy over; run it from there
# (bin/ holds the tools). In a source checkout with Go, the tools are built.
#
# Environment (thresholds and sizes):
#   GAP_MAX_PCT   largest |integral − counter| / counter under steady load, per GPU (default 5)
#   LOAD_MIN_W    the load's mean power must exceed idle's by this much, per GPU (default 50)
#   IDLE_S        idle seconds (default 5)      LOAD_S   load seconds (default 20)
#   INTERVAL      sampling interval (default 20ms)
#   MODEL_SIZE    random-weight model for the worker checks: 1b (default), 3b, 8b, tiny
#   IMAGE_PYTORCH image for the docker-runner check (default llem/pytorch:2.5.1-cuda12.4; it must
#                 be on the engine already: `docker load -i …`, nothing is pulled)
#   REQUIRE_GPU=1 a machine without a driver fails instead of printing the plan and exiting 0
#   LLEM_BIN      a directory of built llem tools (default bin/ of the bundle, else built with Go)
#   KEEP=1        keep the work directory
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
[ "${1:-}" = --dry-run ] && DRY=1
GAP_MAX_PCT=${GAP_MAX_PCT:-5}
LOAD_MIN_W=${LOAD_MIN_W:-50}
IDLE_S=${IDLE_S:-5}
LOAD_S=${LOAD_S:-20}
INTERVAL=${INTERVAL:-20ms}
MODEL_SIZE=${MODEL_SIZE:-1b}
IMAGE_PYTORCH=${IMAGE_PYTORCH:-llem/pytorch:2.5.1-cuda12.4}

# --- what this machine has ------------------------------------------------------------------
have_nvml() {
	command -v nvidia-smi >/dev/null 2>&1 && return 0
	ldconfig -p 2>/dev/null | grep -q 'libnvidia-ml\.so\.1' && return 0
	ls /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 /usr/lib64/libnvidia-ml.so.1 >/dev/null 2>&1
}
py_has() { python3 -c "$1" >/dev/null 2>&1; }
have_torch_cuda() { py_has 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)'; }
have_transformers() { py_has 'import transformers'; }
have_vllm() { py_has 'import vllm'; }
gpu_count() {
	if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L 2>/dev/null | grep -c '^GPU' ; else echo 0; fi
}
# why_no_docker: "" when the docker-runner check can run, else why not
why_no_docker() {
	if ! command -v docker >/dev/null 2>&1; then
		echo "no docker command"
	elif ! docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"nvidia"'; then
		echo "the Docker engine has no nvidia runtime (or is not reachable)"
	elif ! docker image inspect "$IMAGE_PYTORCH" >/dev/null 2>&1; then
		echo "image $IMAGE_PYTORCH is not on the engine (docker load -i FILE; nothing is pulled)"
	fi
}

yes_no() { if "$@"; then echo yes; else echo no; fi; }
NVML=$(yes_no have_nvml)
TORCH=$(yes_no have_torch_cuda)
TRANSFORMERS=$(yes_no have_transformers)
VLLM=$(yes_no have_vllm)
NGPU=$(gpu_count)
why_docker=$(why_no_docker)
DOCKER=$([ -z "$why_docker" ] && echo yes || echo no)

# --- the plan -------------------------------------------------------------------------------
CHECKS=(driver idle energy-gap model pytorch-worker pipeline-pytorch pipeline-vllm tensor-parallel docker-runner)
describe() {
	case $1 in
	driver) echo "NVML opens (llem-sample --sources nvml) and lists at least one GPU; driver, CUDA and NVML versions printed" ;;
	idle) echo "llem-sample over ${IDLE_S} s idle at ${INTERVAL}: every GPU has power readings and an energy counter" ;;
	energy-gap) echo "llem-sample over ${LOAD_S} s of a steady bf16 matmul on every GPU: per GPU |integral − counter| / counter <= ${GAP_MAX_PCT} %, and mean power >= idle mean + ${LOAD_MIN_W} W (the load really ran)" ;;
	model) echo "a random-weight Llama-style model of size ${MODEL_SIZE} (1b ≈ 1.1 B parameters, bf16) made from a config on the GPU (scripts/docker/make-tiny-model.py); nothing downloaded" ;;
	pytorch-worker) echo "the pytorch worker alone on that model (scripts/docker/gpu-check-python.sh): protocol complete, TTFT and ITL measured, GPU memory with model_bytes > 0 and peak_bytes >= model_bytes" ;;
	pipeline-pytorch) echo "llem-expand | llem-exec (local runner, --sampler nvml) | llem-aggregate | llem-report, pytorch worker on that model, 2 configs × 2 cycles: every run ok, sampled by NVML on its GPU, GPU energy and J/output token present" ;;
	pipeline-vllm) echo "the same pipeline with the vllm worker (max_num_seqs 4 and 16)" ;;
	tensor-parallel) echo "the pipeline with 2 GPUs a run (vllm tensor_parallel_size 2; without vLLM, pytorch across 2 GPUs): every run sampled on both GPUs, with GPU energy" ;;
	docker-runner) echo "the pytorch pipeline with runners: {pytorch: docker:${IMAGE_PYTORCH}} (--no-pull): runs ok in containers with their GPU, sampled by NVML" ;;
	esac
}
# precondition CHECK → "" when it can run here, else why not
precondition() {
	case $1 in
	driver | idle) [ "$NVML" = yes ] || echo "no NVIDIA driver (no nvidia-smi, no libnvidia-ml.so.1)" ;;
	energy-gap) if [ "$NVML" != yes ]; then echo "no NVIDIA driver"; elif [ "$TORCH" != yes ] && [ -z "${LOAD_CMD:-}" ]; then echo "FAILS: python3 has no CUDA PyTorch for the load"; fi ;;
	model | pytorch-worker | pipeline-pytorch)
		if [ "$NVML" != yes ]; then echo "no NVIDIA driver"; elif [ "$TORCH" != yes ] || [ "$TRANSFORMERS" != yes ]; then echo "FAILS: python3 lacks CUDA PyTorch or transformers"; fi ;;
	pipeline-vllm) if [ "$NVML" != yes ]; then echo "no NVIDIA driver"; elif [ "$VLLM" != yes ]; then echo "skipped: python3 cannot import vllm"; fi ;;
	tensor-parallel) if [ "$NVML" != yes ]; then echo "no NVIDIA driver"; elif [ "$NGPU" -lt 2 ]; then echo "skipped: $NGPU GPU(s) visible, 2 needed"; fi ;;
	docker-runner) if [ "$NVML" != yes ]; then echo "no NVIDIA driver"; elif [ "$DOCKER" != yes ]; then echo "skipped: $why_docker"; fi ;;
	esac
}
print_plan() {
	echo "gpu-check plan (thresholds from the environment; exit 1 if any check fails):"
	echo "  this machine: NVIDIA driver $NVML, GPUs $NGPU, CUDA PyTorch $TORCH, transformers $TRANSFORMERS, vLLM $VLLM, Docker with nvidia runtime and $IMAGE_PYTORCH $DOCKER"
	local i=0 c why
	for c in "${CHECKS[@]}"; do
		i=$((i + 1))
		why=$(precondition "$c")
		printf '  %d. %-17s %s\n' "$i" "$c" "$(describe "$c")"
		printf '     %-17s here: %s\n' "" "${why:-runs}"
	done
}

if [ "$DRY" = 1 ]; then
	echo "gpu-check: dry run: nothing is run."
	print_plan
	exit 0
fi
if [ "$NVML" != yes ]; then
	echo "gpu-check: no NVIDIA driver on this machine (no nvidia-smi, no libnvidia-ml.so.1); here is what it would check:"
	print_plan
	[ "${REQUIRE_GPU:-}" = 1 ] && { echo "gpu-check: FAILED (REQUIRE_GPU=1)"; exit 1; }
	exit 0
fi
print_plan

# --- running --------------------------------------------------------------------------------
work=$(mktemp -d /tmp/gpu-check.XXXXXX)
if [ -n "${KEEP:-}" ]; then echo "== work directory $work"; else trap 'rm -rf "$work"' EXIT; fi
declare -A RESULT
pass() { RESULT[$1]="PASS${2:+ ($2)}"; echo "PASS $1${2:+: $2}"; }
fail() { RESULT[$1]="FAIL: $2"; echo "FAIL $1: $2"; }
skip() { RESULT[$1]="SKIP: $2"; echo "SKIP $1: $2"; }
# gate CHECK: 0 when it should run; records SKIP/FAIL for its precondition otherwise
gate() {
	local why
	why=$(precondition "$1")
	[ -z "$why" ] && { echo "== $1: $(describe "$1")"; return 0; }
	case $why in FAILS:*) fail "$1" "${why#FAILS: }" ;; *) skip "$1" "${why#skipped: }" ;; esac
	return 1
}

bin=${LLEM_BIN:-}
[ -z "$bin" ] && [ -x bin/llem-sample ] && bin=$PWD/bin
if [ -z "$bin" ]; then
	command -v go >/dev/null || { echo "gpu-check: no llem tools (bin/) and no Go to build them: run it from a gpu bundle (make gpu-bundle) or set LLEM_BIN" >&2; exit 1; }
	bin=$work/bin
	mkdir -p "$bin"
	CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations go build -o "$bin/" ./cmd/llem-sample ./cmd/llem-expand ./cmd/llem-exec ./cmd/llem-aggregate ./cmd/llem-report || exit 1
fi
export LLEM_BIN=$bin

# summary_rows FILE: the nvml rows of llem-sample's summary: device counter_j integral_j gap_pct mean_w
summary_rows() { awk '$2 == "nvml" { print $1, $4, $5, $6, $7 }' "$1"; }

if gate driver; then
	command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,persistence_mode --format=csv,noheader
	if "$bin/llem-sample" --sources nvml --interval "$INTERVAL" -o "$work/probe.arrows" -- true 2>"$work/probe.txt" &&
		[ "$(summary_rows "$work/probe.txt" | wc -l)" -ge 1 ]; then
		pass driver "$(summary_rows "$work/probe.txt" | wc -l) GPU(s)"
	else
		fail driver "llem-sample could not sample NVML: $(tail -3 "$work/probe.txt" | tr '\n' ' ')"
	fi
fi

declare -A IDLE_W
if gate idle; then
	"$bin/llem-sample" --sources nvml --interval "$INTERVAL" -o "$work/idle.arrows" -- sleep "$IDLE_S" 2>"$work/idle.txt"
	cat "$work/idle.txt"
	bad=""
	while read -r dev counter integral gap mean; do
		IDLE_W[$dev]=$mean
		[ "$counter" = - ] && bad="$bad $dev: no energy counter;"
		[ "$mean" = - ] && bad="$bad $dev: no power;"
	done < <(summary_rows "$work/idle.txt")
	if [ -z "${IDLE_W[*]:-}" ]; then fail idle "no GPU rows"; elif [ -n "$bad" ]; then fail idle "$bad"; else pass idle; fi
fi

if gate energy-gap; then
	load=${LOAD_CMD:-"python3 -c 'import torch,time
n=torch.cuda.device_count(); a=[torch.randn(8192,8192,device=f\"cuda:{i}\",dtype=torch.bfloat16) for i in range(n)]
end=time.time()+$LOAD_S
while time.time()<end:
    for x in a: x@x
    torch.cuda.synchronize()'"}
	"$bin/llem-sample" --sources nvml --interval "$INTERVAL" -o "$work/load.arrows" -- sh -c "$load" 2>"$work/load.txt"
	cat "$work/load.txt"
	bad="" n=0
	while read -r dev counter integral gap mean; do
		n=$((n + 1))
		if [ "$gap" = - ]; then bad="$bad $dev: no counter/integral gap (counter $counter, integral $integral);"; continue; fi
		awk -v g="$gap" -v m="$GAP_MAX_PCT" 'BEGIN { exit !(g <= m && -g <= m) }' || bad="$bad $dev: gap $gap % > $GAP_MAX_PCT %;"
		idle=${IDLE_W[$dev]:-}
		if [ -n "$idle" ] && [ "$idle" != - ]; then
			awk -v l="$mean" -v i="$idle" -v d="$LOAD_MIN_W" 'BEGIN { exit !(l >= i + d) }' || bad="$bad $dev: load $mean W not $LOAD_MIN_W W above idle $idle W;"
		fi
	done < <(summary_rows "$work/load.txt")
	if [ "$n" = 0 ]; then fail energy-gap "no GPU rows under load"; elif [ -n "$bad" ]; then fail energy-gap "$bad"; else pass energy-gap "every GPU within ${GAP_MAX_PCT} %"; fi
fi

model=$work/model
if gate model; then
	if python3 scripts/docker/make-tiny-model.py "$model" --size "$MODEL_SIZE"; then pass model; else fail model "make-tiny-model.py failed"; fi
fi
have_model() { [ -f "$model/config.json" ] || { skip "$1" "no model (the model check did not pass)"; return 1; }; }

if gate pytorch-worker && have_model pytorch-worker; then
	if MODEL=$model bash scripts/docker/gpu-check-python.sh; then pass pytorch-worker; else fail pytorch-worker "see above"; fi
fi
if gate pipeline-pytorch && have_model pipeline-pytorch; then
	if MODEL=$model BACKEND=pytorch bash scripts/gpu-check-pipeline.sh; then pass pipeline-pytorch; else fail pipeline-pytorch "see above"; fi
fi
if gate pipeline-vllm && have_model pipeline-vllm; then
	if MODEL=$model BACKEND=vllm bash scripts/gpu-check-pipeline.sh; then pass pipeline-vllm; else fail pipeline-vllm "see above"; fi
fi
if gate tensor-parallel && have_model tensor-parallel; then
	tp_backend=pytorch
	[ "$VLLM" = yes ] && tp_backend=vllm
	if MODEL=$model BACKEND=$tp_backend GPUS_PER_RUN=2 bash scripts/gpu-check-pipeline.sh; then pass tensor-parallel "$tp_backend"; else fail tensor-parallel "$tp_backend: see above"; fi
fi
if gate docker-runner && have_model docker-runner; then
	if MODEL=$model BACKEND=pytorch RUNNER=docker IMAGE=$IMAGE_PYTORCH bash scripts/gpu-check-pipeline.sh; then pass docker-runner; else fail docker-runner "see above"; fi
fi

echo
echo "gpu-check summary:"
failed=0
for c in "${CHECKS[@]}"; do
	r=${RESULT[$c]:-"SKIP: not reached"}
	printf '  %-17s %s\n' "$c" "$r"
	case $r in FAIL*) failed=$((failed + 1)) ;; esac
done
if [ "$failed" -gt 0 ]; then
	echo "gpu-check: FAILED ($failed check(s))"
	exit 1
fi
echo "gpu-check: ok"

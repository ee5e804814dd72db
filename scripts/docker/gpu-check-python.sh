#!/usr/bin/env bash
# GPU check of the pytorch worker, standalone (no llem-exec needed): on an NVIDIA machine with
# PyTorch and transformers, make a small random-weight model from a config, run the worker on
# it with real prompts and print what it measured. For scripts/gpu-check.sh to call (or copy)
# once the whole pipeline runs there:  bash scripts/docker/gpu-check-python.sh [--moe]
# MODEL=DIR uses that model instead of making a tiny one. Exit 1 when a figure is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
if [ -n "${MODEL:-}" ]; then ln -s "$MODEL" "$work/model"; else python3 scripts/docker/make-tiny-model.py "$work/model" "$@"; fi
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
cfg = {"model": work + "/model", "backend": "pytorch", "precision": "bf16", "random_seed": 42,
       "max_input_tokens": 64, "max_output_tokens": 32,
       "decoder": {"temperature": 0.0, "do_sample": False, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0},
       "warmup": {"enabled": True, "n_warmup": 2, "thermal_floor_seconds": 0},
       "pytorch": {"batch_size": 4}}
prompts = ["the energy of a token is measured in joule"] * 4 + ["hello world this is a question about power"] * 4
json.dump({"kind": "experiment", "v": 1, "config": cfg, "prompts": prompts}, open(work + "/experiment.json", "w"))
PY
LLEM_EXPERIMENT="$work/experiment.json" LLEM_RUN_DIR="$work" \
  python3 internal/worker/python/src/run_worker.py pytorch >"$work/events.ndjson" 2>"$work/worker.log" || {
  echo "pytorch worker failed:"; tail -20 "$work/worker.log"; tail -3 "$work/events.ndjson"; exit 1; }
python3 - "$work/events.ndjson" <<'PY'
import json, statistics, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
req = [e["request"] for e in ev if e["event"] == "request"]
ttft = [(r["t_first_token"] - r["t_start"]) / 1e6 for r in req if r["t_first_token"]]
itl = [g / 1e6 for r in req for g in r["itl_ns"]]
model = next(e["model"] for e in ev if e["event"] == "model")
mem = next(e["memory"] for e in ev if e["event"] == "memory")
done = ev[-1]
assert done["event"] == "done", done
print("events: %s" % " ".join(sorted({e["event"] for e in ev})))
print("model: %d parameters, %d non-embedding, active %s, %s layers" % (model["parameters"], model["non_embedding_parameters"], model["active_parameters"], model["layers"]))
print("requests %d, input tokens %d, output tokens %d, batches %d" % (done["totals"]["requests"], done["totals"]["input_tokens"], done["totals"]["output_tokens"], done["totals"]["batches"]))
print("TTFT median %.2f ms, ITL median %.3f ms" % (statistics.median(ttft), statistics.median(itl)))
bad = []
for m in mem:
    print("memory %s: peak %s bytes, model %s bytes, KV cache %s, device used %s" % (
        m["device"], m["peak_bytes"], m["model_bytes"], m.get("kv_cache_bytes"), m.get("device_used_bytes")))
    if m["device"] != "cpu" and not (m["model_bytes"] and m["peak_bytes"] and m["peak_bytes"] >= m["model_bytes"]):
        bad.append("memory of %s: want model_bytes > 0 and peak_bytes >= model_bytes" % m["device"])
if not any(m["device"] != "cpu" for m in mem):
    bad.append("no GPU memory entry: the model did not run on a GPU")
if not ttft or min(ttft) <= 0:
    bad.append("no TTFT")
if bad:
    print("gpu-check-python: FAILED: " + "; ".join(bad))
    sys.exit(1)
PY

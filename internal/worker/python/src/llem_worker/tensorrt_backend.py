"""The tensorrt worker: TensorRT-LLM's LLM API on a TensorRT engine.

The engine is built once per (model, precision, tensorrt section, token limits, TensorRT-LLM
version) and cached by the hash of those under $LLEM_CACHE_DIR/trt-engines/<hash> (in a container:
inside the mounted model cache), then loaded from there; tensorrt.engine_path loads a prebuilt
engine instead. Every request is submitted with generate_async(streaming=True) and its stream read
concurrently, so each token's arrival time is observed.
"""
import asyncio
import hashlib
import json
import os
import sys

from .common import (WorkerError, count_parameters, experts_of, facts_from_config, fit_kwargs, host_memory,
                     is_greedy, model_dir, ns, nvml_used, run_warmup, safetensors_numels, section,
                     split_extra)

TRT_KNOWN = {"max_batch_size", "tp_size", "pp_size", "quantization", "engine_path"}
QUANT_ALGO = {"int8_sq": "W8A8_SQ_PER_CHANNEL", "int4_awq": "W4A16_AWQ", "fp8": "FP8"}
TRT_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def engine_key(cfg, version):
    """The engine cache key: everything that changes the built engine."""
    t = section(cfg, "tensorrt")
    ident = {"model": cfg["model"], "precision": cfg.get("precision"), "tensorrt": t,
             "max_input_tokens": cfg.get("max_input_tokens"), "max_output_tokens": cfg.get("max_output_tokens"),
             "trtllm": version}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def cache_root():
    root = os.environ.get("LLEM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "llem")
    return os.path.join(root, "trt-engines")


def llm_kwargs(cfg, tllm):
    t = section(cfg, "tensorrt")
    known, extra = split_extra(t, TRT_KNOWN)
    max_in = int(cfg.get("max_input_tokens", 512))
    max_out = int(cfg.get("max_output_tokens", 128))
    kw = {"tensor_parallel_size": int(known.get("tp_size", 1)),
          "dtype": TRT_DTYPES[cfg.get("precision", "bf16")], "trust_remote_code": True}
    if known.get("pp_size"):
        kw["pipeline_parallel_size"] = int(known["pp_size"])
    kw["build_config"] = tllm.BuildConfig(max_batch_size=int(known.get("max_batch_size", 8)),
                                          max_input_len=max_in, max_seq_len=max_in + max_out)
    if known.get("quantization"):
        from tensorrt_llm.llmapi import QuantAlgo, QuantConfig
        kw["quant_config"] = QuantConfig(quant_algo=getattr(QuantAlgo, QUANT_ALGO[known["quantization"]]))
    kw.update(extra)
    return kw


def sampling_kwargs(cfg):
    dec = section(cfg, "decoder")
    kw = {"max_tokens": int(cfg.get("max_output_tokens", 128))}
    if is_greedy(dec):
        kw["temperature"] = 0.0
        kw["top_k"] = 1
    else:
        kw["temperature"] = dec.get("temperature", 1.0)
        if dec.get("top_k", 50):
            kw["top_k"] = dec.get("top_k", 50)
        kw["top_p"] = dec.get("top_p", 1.0)
        if dec.get("min_p") is not None:
            kw["min_p"] = dec["min_p"]
    kw["repetition_penalty"] = dec.get("repetition_penalty", 1.0)
    if dec.get("min_new_tokens") is not None:
        kw["min_tokens"] = dec["min_new_tokens"]
    kw["seed"] = int(cfg.get("random_seed", 42))
    return kw


def _llm_class(tllm):
    # TensorRT-LLM >= 1.0 defaults LLM to its PyTorch flow; the TensorRT-engine LLM lives here.
    try:
        from tensorrt_llm._tensorrt_engine import LLM
        return LLM
    except ImportError:
        return tllm.LLM


def run(proto, doc, cfg, prompts):
    import tensorrt_llm as tllm

    version = getattr(tllm, "__version__", "?")
    proto.hello("tensorrt", "tensorrt_llm %s" % version)
    t = section(cfg, "tensorrt")
    LLM = _llm_class(tllm)
    kw = llm_kwargs(cfg, tllm)

    proto.phase("load", "start")
    if t.get("engine_path"):
        if not os.path.isdir(t["engine_path"]):
            raise WorkerError("engine_missing", "tensorrt.engine_path %s is not a directory" % t["engine_path"])
        llm = LLM(model=t["engine_path"], **{k: v for k, v in kw.items() if k not in ("build_config", "quant_config")})
        source = "given"
    else:
        cached = os.path.join(cache_root(), engine_key(cfg, version))
        if os.path.isfile(os.path.join(cached, "config.json")):
            llm = LLM(model=cached, tokenizer=cfg["model"],
                      **{k: v for k, v in kw.items() if k not in ("build_config", "quant_config")})
            source = "cache"
        else:
            llm = LLM(model=cfg["model"], **kw)
            tmp = cached + ".tmp-%d" % os.getpid()
            llm.save(tmp)
            os.replace(tmp, cached)
            source = "built"
    mem_after_load = nvml_used()
    proto.phase("load", "end")
    print("llem tensorrt worker: engine %s (%s)" % (source, t.get("engine_path") or cached), file=sys.stderr)

    hf = None
    d = model_dir(cfg["model"])
    if d and os.path.isfile(os.path.join(d, "config.json")):
        with open(os.path.join(d, "config.json")) as f:
            hf = json.load(f)
    facts = facts_from_config(hf, name=cfg["model"], dtype=cfg.get("precision"))
    if d:
        try:
            e, k = experts_of(hf)
            total, non_embed, active = count_parameters(safetensors_numels(d), e, k)
            if total:
                facts.update(parameters=total, non_embedding_parameters=non_embed, active_parameters=active)
        except Exception:
            pass
    proto.model(facts)

    max_in = int(cfg.get("max_input_tokens", 512))
    tok = llm.tokenizer
    token_prompts = [list(tok.encode(p))[:max_in] for p in prompts]
    params = tllm.SamplingParams(**fit_kwargs(tllm.SamplingParams, sampling_kwargs(cfg), proto, "decoder"))
    one = tllm.SamplingParams(max_tokens=1, temperature=0.0)

    warm = run_warmup(cfg, lambda i: llm.generate([token_prompts[i % len(token_prompts)]], one), proto)

    proto.phase("measure", "start")
    totals = asyncio.run(_measure(proto, llm, token_prompts, params))
    proto.phase("measure", "end")

    mem = [host_memory()]
    for uuid, b in sorted((nvml_used() or {}).items()):
        mem.append({"device": uuid, "peak_bytes": max(b, (mem_after_load or {}).get(uuid, 0)), "model_bytes": None})
    proto.memory(mem)
    proto.done(totals, warm)


async def _measure(proto, llm, token_prompts, params):
    totals = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "batches": None}
    t0 = ns()

    async def one(i, ids):
        times = []
        n = 0
        async for out in llm.generate_async(ids, params, streaming=True):
            t = ns()
            cur = len(out.outputs[0].token_ids)
            times.extend([t] * (cur - n))
            n = cur
        itl = [times[k] - times[k - 1] for k in range(1, len(times))]
        proto.request(i, -1, len(ids), n, t0, times[0] if times else 0, times[-1] if times else ns(), itl)
        totals["requests"] += 1
        totals["input_tokens"] += len(ids)
        totals["output_tokens"] += n

    await asyncio.gather(*(one(i, ids) for i, ids in enumerate(token_prompts)))
    return totals

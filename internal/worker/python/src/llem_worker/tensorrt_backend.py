"""The tensorrt worker: TensorRT-LLM's LLM API, in either of its flows.

tensorrt.flow picks the flow (recorded in the hello event's version, e.g. "tensorrt_llm 1.0.0,
flow engine"):
  engine   (default) a TensorRT engine: built once per (model, precision, tensorrt section, token
           limits, TensorRT-LLM and TensorRT versions, GPU model and compute capability) and cached
           under $LLEM_CACHE_DIR/trt-engines/<hash> (in a container: inside the mounted model
           cache, shared by the runs of every node that mounts it), then loaded from there;
           tensorrt.engine_path loads a prebuilt engine instead. TensorRT-LLM 1.x keeps this flow
           in tensorrt_llm._tensorrt_engine; where that is missing the run fails, naming it,
           rather than silently measuring the other flow.
  pytorch  TensorRT-LLM's PyTorch backend (the default of tensorrt_llm.LLM from 1.0): no engine is
           built; the limits go to the LLM directly.
The arguments are checked against the installed version's LlmArgs before loading. Every request
is submitted with generate_async(streaming=True) and its stream read concurrently, so each
token's arrival time is observed.
"""
import asyncio
import fcntl
import hashlib
import json
import os
import sys

from .common import (DeviceMemory, WorkerError, checkpoint_facts, field_names, fit_kwargs, host_memory,
                     is_greedy, model_dir, ns, refuse_unknown, run_warmup, section, split_extra, weight_bytes)

TRT_KNOWN = {"max_batch_size", "tp_size", "pp_size", "quantization", "engine_path", "flow"}
QUANT_ALGO = {"int8_sq": "W8A8_SQ_PER_CHANNEL", "int4_awq": "W4A16_AWQ", "fp8": "FP8"}
TRT_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
FLOWS = ("engine", "pytorch")


def gpu_identity():
    """(GPU model, compute capability) of the first visible GPU: an engine is built for one
    architecture and must not be loaded on another. (None, None) when neither torch nor NVML
    can say."""
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0), "%d.%d" % torch.cuda.get_device_capability(0)
    except Exception:
        pass
    try:
        import pynvml
        pynvml.nvmlInit()
        try:
            h = pynvml.nvmlDeviceGetHandleByIndex(0)
            name = pynvml.nvmlDeviceGetName(h)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            return (name.decode() if isinstance(name, bytes) else name), "%d.%d" % (major, minor)
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None, None


def _trt_version():
    try:
        import tensorrt
        return getattr(tensorrt, "__version__", None)
    except Exception:
        return None


def engine_key(cfg, version, gpu):
    """The engine cache key: everything that changes the built engine, or whether it loads."""
    t = section(cfg, "tensorrt")
    ident = {"model": cfg["model"], "precision": cfg.get("precision"), "tensorrt": t,
             "max_input_tokens": cfg.get("max_input_tokens"), "max_output_tokens": cfg.get("max_output_tokens"),
             "trtllm": version, "tensorrt_version": _trt_version(), "gpu": gpu[0], "compute_capability": gpu[1]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def cache_root():
    root = os.environ.get("LLEM_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "llem")
    return os.path.join(root, "trt-engines")


def flow_of(cfg):
    flow = section(cfg, "tensorrt").get("flow") or "engine"
    if flow not in FLOWS:
        raise WorkerError("bad_config", "tensorrt.flow %r: want one of %s" % (flow, ", ".join(FLOWS)))
    return flow


def llm_kwargs(cfg, tllm, flow="engine"):
    t = section(cfg, "tensorrt")
    known, extra = split_extra(t, TRT_KNOWN)
    max_in = int(cfg.get("max_input_tokens", 512))
    max_out = int(cfg.get("max_output_tokens", 128))
    kw = {"tensor_parallel_size": int(known.get("tp_size", 1)),
          "dtype": TRT_DTYPES[cfg.get("precision", "bf16")], "trust_remote_code": True}
    if known.get("pp_size"):
        kw["pipeline_parallel_size"] = int(known["pp_size"])
    limits = {"max_batch_size": int(known.get("max_batch_size", 8)), "max_input_len": max_in,
              "max_seq_len": max_in + max_out}
    if flow == "engine":
        kw["build_config"] = tllm.BuildConfig(**limits)
    else:
        kw.update(limits)  # the PyTorch flow builds nothing: the limits are LLM arguments
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


def _major(version):
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def llm_class(tllm, flow, version):
    """The LLM class of the flow. A missing engine flow on TensorRT-LLM >= 1.0 is an error naming
    what is missing, never a silent switch to the PyTorch flow (another engine, other numbers)."""
    major = _major(version)
    if flow == "pytorch":
        if major is not None and major < 1:
            return lambda **kw: tllm.LLM(backend="pytorch", **kw)  # 0.x: the PyTorch flow was opt-in
        return tllm.LLM
    try:
        from tensorrt_llm._tensorrt_engine import LLM
        return LLM
    except ImportError as e:
        if major is not None and major < 1:
            return tllm.LLM  # before 1.0, tensorrt_llm.LLM is the engine flow
        raise WorkerError("backend_missing",
                          "tensorrt_llm %s has no TensorRT-engine LLM (import tensorrt_llm._tensorrt_engine: %s)" % (version, e),
                          "use tensorrt.flow: pytorch, or an image whose TensorRT-LLM has the engine flow")


def check_llm_args(kw, flow, version):
    """Refuse arguments the installed TensorRT-LLM's LlmArgs for this flow does not have."""
    cls = None
    try:
        from tensorrt_llm.llmapi import llm_args as la
        cls = getattr(la, "TrtLlmArgs" if flow == "engine" else "TorchLlmArgs", None) or getattr(la, "LlmArgs", None)
    except ImportError:
        pass
    accepted = field_names(cls)
    if accepted is not None:
        accepted |= {"model", "tokenizer"}
    refuse_unknown(kw, accepted, "tensorrt_llm %s's %s (flow %s)" % (version, getattr(cls, "__name__", "LlmArgs"), flow),
                   "remove the field(s) from the study's tensorrt section, or run an image with a TensorRT-LLM that has them")


def load_engine(LLM, cfg, kw, version):
    """The engine flow's LLM: a given engine, the cached one, or a new build put in the cache.
    Builds of one key are serialised by a lock file next to the cache entry, so two identical
    runs (side by side, or on two nodes sharing the cache) build once; the build goes to a private
    directory renamed into place."""
    t = section(cfg, "tensorrt")
    load_kw = {k: v for k, v in kw.items() if k not in ("build_config", "quant_config")}
    if t.get("engine_path"):
        if not os.path.isdir(t["engine_path"]):
            raise WorkerError("engine_missing", "tensorrt.engine_path %s is not a directory" % t["engine_path"])
        return LLM(model=t["engine_path"], **load_kw), "given", t["engine_path"]
    gpu = gpu_identity()
    cached = os.path.join(cache_root(), engine_key(cfg, version, gpu))
    os.makedirs(cache_root(), exist_ok=True)
    with open(cached + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until the engine is in place (or the build failed)
        if os.path.isfile(os.path.join(cached, "config.json")):
            return LLM(model=cached, tokenizer=cfg["model"], **load_kw), "cache", cached
        llm = LLM(model=cfg["model"], **kw)
        if gpu[0] is None:
            print("llem tensorrt worker: GPU model unknown: engine not cached", file=sys.stderr)
            return llm, "built", None
        tmp = cached + ".tmp-%d" % os.getpid()
        llm.save(tmp)
        os.replace(tmp, cached)
        return llm, "built", cached


def run(proto, doc, cfg, prompts):
    import tensorrt_llm as tllm

    version = getattr(tllm, "__version__", "?")
    flow = flow_of(cfg)
    proto.hello("tensorrt", "tensorrt_llm %s, flow %s" % (version, flow))
    LLM = llm_class(tllm, flow, version)
    kw = llm_kwargs(cfg, tllm, flow)
    check_llm_args(kw, flow, version)
    mem = DeviceMemory()

    proto.phase("load", "start")
    if flow == "engine":
        llm, source, where = load_engine(LLM, cfg, kw, version)
    else:
        llm, source, where = LLM(model=cfg["model"], **kw), "pytorch", None
    mem.read()
    proto.phase("load", "end")
    print("llem tensorrt worker: flow %s, engine %s (%s)" % (flow, source, where or "-"), file=sys.stderr)
    facts = _facts(cfg)
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

    devices = int(kw.get("tensor_parallel_size") or 1) * int(kw.get("pipeline_parallel_size") or 1)
    proto.memory([host_memory()] + mem.entries(model_bytes=weight_bytes(facts.get("parameters"), cfg, devices)
                                               if not kw.get("quant_config") else None))
    proto.done(totals, warm)


def _facts(cfg):
    hf = None
    d = model_dir(cfg["model"])
    if d and os.path.isfile(os.path.join(d, "config.json")):
        with open(os.path.join(d, "config.json")) as f:
            hf = json.load(f)
    return checkpoint_facts(cfg, hf, d)


async def _measure(proto, llm, token_prompts, params):
    totals = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "batches": None}

    async def one(i, ids):
        times = []
        n = 0
        # TTFT counts from when the request is submitted to the engine (docs/design.md).
        t_sub = ns()
        async for out in llm.generate_async(ids, params, streaming=True):
            t = ns()
            cur = len(out.outputs[0].token_ids)
            times.extend([t] * (cur - n))
            n = cur
        itl = [times[k] - times[k - 1] for k in range(1, len(times))]
        proto.request(i, -1, len(ids), n, t_sub, times[0] if times else 0, times[-1] if times else ns(), itl)
        totals["requests"] += 1
        totals["input_tokens"] += len(ids)
        totals["output_tokens"] += n

    await asyncio.gather(*(one(i, ids) for i, ids in enumerate(token_prompts)))
    return totals

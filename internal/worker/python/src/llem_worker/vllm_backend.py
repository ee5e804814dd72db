"""The vllm worker: vLLM's offline LLM API with continuous batching.

Every vllm field of the config is wired: engine fields to LLM(...) (the speculative
pair as speculative_config, offload_params as a set, attention.backend as attention_backend and
the other attention fields as attention_config), sampling fields to SamplingParams, beam_search
fields to BeamSearchParams; extra keys of each section are forwarded to the same call. Prompts are
truncated to max_input_tokens (the original did not). Requests are added to the engine and the
engine is stepped here — the loop LLM.generate runs internally — so each request's first-token,
per-token and finish times are observed as the engine produces them, whether or not the engine
version fills RequestOutput.metrics. Outputs are asked for as deltas without detokenization
(output_kind DELTA, detokenize False): the front end then neither re-sends nor re-detokenizes
each request's whole output every step, which at high concurrency delays the step results and
so the observed token times.
"""
import inspect

from .common import (TORCH_DTYPES, DeviceMemory, WorkerError, checkpoint_facts, field_names, fit_kwargs,
                     host_memory, is_greedy, model_dir, ns, refuse_unknown, run_warmup, section, split_extra,
                     weight_bytes)

ENGINE_KNOWN = {"gpu_memory_utilization", "swap_space", "cpu_offload_gb", "block_size", "kv_cache_dtype",
                "enforce_eager", "enable_chunked_prefill", "max_num_seqs", "max_num_batched_tokens",
                "max_model_len", "tensor_parallel_size", "pipeline_parallel_size", "enable_prefix_caching",
                "quantization", "speculative_model", "num_speculative_tokens", "offload_group_size",
                "offload_num_in_group", "offload_prefetch_step", "offload_params",
                "disable_custom_all_reduce", "kv_cache_memory_bytes", "compilation_config", "attention"}
SAMPLING_KNOWN = {"max_tokens", "min_tokens", "presence_penalty", "frequency_penalty", "ignore_eos", "n"}
BEAM_KNOWN = {"beam_width", "length_penalty", "early_stopping", "max_tokens"}


def llm_kwargs(cfg):
    v = section(cfg, "vllm")
    eng = v.get("engine") or {}
    known, extra = split_extra(eng, ENGINE_KNOWN)
    kw = {"model": cfg["model"], "dtype": TORCH_DTYPES[cfg.get("precision", "bf16")],
          "trust_remote_code": True, "seed": int(cfg.get("random_seed", 42))}
    spec_model = known.pop("speculative_model", None)
    spec_n = known.pop("num_speculative_tokens", None)
    if spec_model is not None:
        kw["speculative_config"] = {"model": spec_model, "num_speculative_tokens": spec_n}
    if "offload_params" in known:
        known["offload_params"] = set(known["offload_params"])
    att = known.pop("attention", None) or {}
    att = {k: x for k, x in att.items() if x is not None}
    if "backend" in att:
        kw["attention_backend"] = att.pop("backend")
    if att:
        kw["attention_config"] = att
    kw.update(known)
    kw.update(extra)
    # Extra keys at the vllm level (beside engine/sampling/beam_search) go to the engine too.
    kw.update({k: x for k, x in v.items() if k not in ("engine", "sampling", "beam_search")})
    return kw


def sampling_kwargs(cfg):
    dec = section(cfg, "decoder")
    s = section(cfg, "vllm").get("sampling") or {}
    known, extra = split_extra(s, SAMPLING_KNOWN)
    kw = {"max_tokens": int(known.pop("max_tokens", cfg.get("max_output_tokens", 128)))}
    if is_greedy(dec):
        kw["temperature"] = 0.0
    else:
        kw["temperature"] = dec.get("temperature", 1.0)
        top_k = dec.get("top_k", 50)
        kw["top_k"] = -1 if top_k == 0 else top_k
        kw["top_p"] = dec.get("top_p", 1.0)
        if dec.get("min_p") is not None:
            kw["min_p"] = dec["min_p"]
    # A penalty changes greedy output too; the other workers pass it in greedy mode as well.
    kw["repetition_penalty"] = dec.get("repetition_penalty", 1.0)
    kw.update(known)
    kw.update(extra)
    return kw


def stream_kwargs():
    """Deltas, no detokenization (see the module's doc); {} on a vLLM without output kinds."""
    try:
        from vllm.sampling_params import RequestOutputKind
    except ImportError:
        return {}
    return {"output_kind": RequestOutputKind.DELTA, "detokenize": False}


def check_engine_args(vllm, kw):
    """LLM(**kw) hands what its own signature does not name to EngineArgs, which raises TypeError
    on a field newer than the installed vLLM (attention_config, offload_* on v0.11): refused here,
    by name, before anything loads."""
    ea = getattr(vllm, "EngineArgs", None)
    if ea is None:
        try:
            from vllm.engine.arg_utils import EngineArgs as ea
        except ImportError:
            ea = None
    accepted = field_names(ea)
    if accepted is not None:
        try:
            accepted |= {n for n, p in inspect.signature(vllm.LLM.__init__).parameters.items()
                         if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"}
        except (TypeError, ValueError):
            pass
    version = getattr(vllm, "__version__", "?")
    refuse_unknown(kw, accepted, "vllm %s's EngineArgs" % version,
                   "remove the field(s) from the study's vllm section, or run an image with a vLLM that has them "
                   "(--image vllm=vllm/vllm-openai:TAG)")


def beam_kwargs(cfg):
    b = section(cfg, "vllm").get("beam_search") or {}
    known, extra = split_extra(b, BEAM_KNOWN)
    kw = {"beam_width": int(known.pop("beam_width", 1)),
          "max_tokens": int(known.pop("max_tokens", cfg.get("max_output_tokens", 128)))}
    kw.update(known)
    kw.update(extra)
    return kw


def run(proto, doc, cfg, prompts):
    import vllm

    proto.hello("vllm", "vllm %s" % getattr(vllm, "__version__", "?"))
    max_in = int(cfg.get("max_input_tokens", 512))
    beam = section(cfg, "vllm").get("beam_search")

    kw = llm_kwargs(cfg)
    check_engine_args(vllm, kw)
    mem = DeviceMemory()
    proto.phase("load", "start")
    llm = vllm.LLM(**kw)
    mem.read()
    proto.phase("load", "end")
    facts = _facts(llm, cfg)
    proto.model(facts)

    tok = llm.get_tokenizer()
    token_prompts = [{"prompt_token_ids": list(tok.encode(p))[:max_in]} for p in prompts]
    if beam:
        params = vllm.BeamSearchParams(**fit_kwargs(vllm.BeamSearchParams, beam_kwargs(cfg), proto, "vllm.beam_search"))
    else:
        skw = sampling_kwargs(cfg)
        skw.update(stream_kwargs())
        params = vllm.SamplingParams(**fit_kwargs(vllm.SamplingParams, skw, proto, "vllm.sampling"))

    one = vllm.SamplingParams(max_tokens=1, temperature=0.0)

    def warm_call(i):
        llm.generate([token_prompts[i % len(token_prompts)]], one, use_tqdm=False)

    warm = run_warmup(cfg, warm_call, proto)

    proto.phase("measure", "start")
    if beam:
        totals = _run_beam(proto, llm, token_prompts, params)
    else:
        totals = _run_stepped(proto, llm, token_prompts, params)
    proto.phase("measure", "end")

    devices = _devices(kw)
    proto.memory([host_memory()] + mem.entries(model_bytes=weight_bytes(facts.get("parameters"), cfg, devices),
                                               kv_bytes=kv_cache_bytes(llm, facts, kw, devices)))
    proto.done(totals, warm)


def _devices(kw):
    return max(1, int(kw.get("tensor_parallel_size") or 1)) * max(1, int(kw.get("pipeline_parallel_size") or 1))


def kv_cache_bytes(llm, facts, kw, devices):
    """The KV cache vLLM reserved on each device: its block count (per worker) x bytes per block
    (block_size tokens x K and V x this device's layers and KV heads x head_dim x element size).
    None when the engine does not say how many blocks it made."""
    eng = llm.llm_engine
    cc = getattr(getattr(eng, "vllm_config", None), "cache_config", None) or getattr(eng, "cache_config", None)
    blocks = getattr(cc, "num_gpu_blocks", None)
    bs = getattr(cc, "block_size", None)
    layers, kvh, hd = facts.get("layers"), facts.get("kv_heads"), facts.get("head_dim")
    if not all(isinstance(x, int) and x > 0 for x in (blocks, bs, layers, kvh, hd)):
        return None
    tp = max(1, int(kw.get("tensor_parallel_size") or 1))
    pp = max(1, devices // tp)
    dt = str(getattr(cc, "cache_dtype", None) or kw.get("kv_cache_dtype") or "auto")
    elem = 1 if dt.startswith("fp8") else {"float32": 4}.get(kw.get("dtype"), 2)
    return blocks * bs * 2 * -(-layers // pp) * max(1, kvh // tp) * hd * elem


def _run_stepped(proto, llm, token_prompts, params):
    eng = llm.llm_engine
    delta = "DELTA" in str(getattr(params, "output_kind", ""))
    state = {}
    for i, p in enumerate(token_prompts):
        rid = "llem-%d" % i
        # TTFT counts from when the request is submitted to the engine (docs/design.md).
        t_sub = ns()
        eng.add_request(rid, p, params)
        state[rid] = {"id": i, "in": len(p["prompt_token_ids"]), "times": [], "t_start": t_sub, "counts": {}}
    totals = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "batches": 0}
    while eng.has_unfinished_requests():
        outs = eng.step()
        t = ns()
        totals["batches"] += 1
        for o in outs:
            st = state.get(o.request_id)
            if st is None:
                continue
            # n>1 returns several completions; count tokens of all, time by the longest. Deltas
            # carry only the new tokens; cumulative outputs all so far.
            for k, c in enumerate(o.outputs):
                idx = getattr(c, "index", k)
                st["counts"][idx] = (st["counts"].get(idx, 0) if delta else 0) + len(c.token_ids)
            n_tok = max(st["counts"].values(), default=0)
            while len(st["times"]) < n_tok:
                st["times"].append(t)
            if o.finished:
                out_tok = sum(st["counts"].values())
                first, end = _metric_times(o, st["times"], t)
                times = st["times"]
                itl = [times[k] - times[k - 1] for k in range(1, len(times))]
                proto.request(st["id"], -1, st["in"], out_tok, st["t_start"], first, end, itl)
                totals["requests"] += 1
                totals["input_tokens"] += st["in"]
                totals["output_tokens"] += out_tok
    return totals


def _metric_times(o, times, t):
    """First-token and finish times: from RequestOutput.metrics where the engine fills them
    (wall-clock seconds), else the step times observed here."""
    first = times[0] if times else 0
    end = times[-1] if times else t
    m = getattr(o, "metrics", None)
    ft = getattr(m, "first_token_time", None) if m is not None else None
    fin = getattr(m, "finished_time", None) if m is not None else None
    if isinstance(ft, float) and ft > 1e9:
        first = int(ft * 1e9)
    if isinstance(fin, float) and fin > 1e9:
        end = int(fin * 1e9)
    return first, end


def _run_beam(proto, llm, token_prompts, params):
    t0 = ns()
    outs = llm.beam_search(token_prompts, params)
    t1 = ns()
    proto.warning("no_token_timing", "beam search returns whole sequences: requests carry start and end only, no first-token time")
    totals = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "batches": None}
    for i, (p, o) in enumerate(zip(token_prompts, outs)):
        n_in = len(p["prompt_token_ids"])
        seq = o.sequences[0] if getattr(o, "sequences", None) else None
        n_out = max(0, len(seq.tokens) - n_in) if seq is not None else 0
        proto.request(i, -1, n_in, n_out, t0, 0, t1, [])
        totals["requests"] += 1
        totals["input_tokens"] += n_in
        totals["output_tokens"] += n_out
    return totals


def _facts(llm, cfg):
    hf = None
    try:
        hf = llm.llm_engine.model_config.hf_config
    except Exception:
        pass
    return checkpoint_facts(cfg, hf, model_dir(cfg["model"]))

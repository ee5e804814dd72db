"""The pytorch worker: Hugging Face transformers, batched generate with per-token timestamps.

The dataset's prompts (from experiment.json, not placeholders) are tokenised with left padding
and truncated to max_input_tokens, run in batches of pytorch.batch_size; a StoppingCriteria
called after every generation step stamps the time each step's tokens appeared (after a CUDA
sync), so TTFT and inter-token gaps are real. Every pytorch field of the config is wired to
from_pretrained / generate, extra keys and passthrough_kwargs included.
"""
import importlib.util
import os
import sys

from .common import (TORCH_DTYPES, DeviceMemory, WorkerError, count_parameters, experts_of, facts_from_config,
                     host_memory, is_greedy, ns, run_warmup, section, split_extra)

# attn_implementation values that need a package of their own: (module, what to install).
ATTN_PACKAGES = {"flash_attention_2": ("flash_attn", "flash-attn (2.x)"),
                 "flash_attention_3": ("flash_attn_interface", "flash-attn 3 (the Hopper build)")}

# pytorch fields that are not from_pretrained kwargs; every other key of the section is.
LOAD_KNOWN = {"batch_size", "attn_implementation", "torch_compile", "torch_compile_mode",
              "torch_compile_backend", "load_in_4bit", "load_in_8bit", "bnb_4bit_compute_dtype",
              "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "use_cache", "cache_implementation",
              "num_beams", "early_stopping", "length_penalty", "no_repeat_ngram_size",
              "prompt_lookup_num_tokens", "device_map", "max_memory", "revision", "trust_remote_code",
              "num_processes"}
GEN_FIELDS = ("use_cache", "cache_implementation", "num_beams", "early_stopping", "length_penalty",
              "no_repeat_ngram_size", "prompt_lookup_num_tokens")


def from_pretrained_kwargs(cfg, torch, transformers):
    pt = section(cfg, "pytorch")
    known, extra = split_extra(pt, LOAD_KNOWN)
    kw = {
        "torch_dtype": getattr(torch, TORCH_DTYPES[cfg.get("precision", "bf16")]),
        "device_map": known.get("device_map", "auto"),
        "trust_remote_code": known.get("trust_remote_code", True),
    }
    if "attn_implementation" in known:
        kw["attn_implementation"] = known["attn_implementation"]
    if "revision" in known:
        kw["revision"] = known["revision"]
    if "max_memory" in known:
        # JSON keys are strings; accelerate wants GPU indices as ints ("cpu" stays).
        kw["max_memory"] = {(int(k) if str(k).isdigit() else k): v for k, v in known["max_memory"].items()}
    if known.get("load_in_4bit") or known.get("load_in_8bit"):
        q = {}
        if known.get("load_in_4bit"):
            q["load_in_4bit"] = True
            if "bnb_4bit_compute_dtype" in known:
                q["bnb_4bit_compute_dtype"] = getattr(torch, known["bnb_4bit_compute_dtype"])
            if "bnb_4bit_quant_type" in known:
                q["bnb_4bit_quant_type"] = known["bnb_4bit_quant_type"]
            if "bnb_4bit_use_double_quant" in known:
                q["bnb_4bit_use_double_quant"] = known["bnb_4bit_use_double_quant"]
        if known.get("load_in_8bit"):
            q["load_in_8bit"] = True
        kw["quantization_config"] = transformers.BitsAndBytesConfig(**q)
    kw.update(extra)  # extra pytorch keys are forwarded to from_pretrained
    kw.update(cfg.get("passthrough_kwargs") or {})  # merged last, as in the original
    return kw


def generate_kwargs(cfg):
    dec = section(cfg, "decoder")
    pt = section(cfg, "pytorch")
    kw = {"max_new_tokens": int(cfg.get("max_output_tokens", 128))}
    if is_greedy(dec):
        kw["do_sample"] = False
    else:
        kw["do_sample"] = True
        kw["temperature"] = dec.get("temperature", 1.0)
        kw["top_k"] = dec.get("top_k", 50)
        kw["top_p"] = dec.get("top_p", 1.0)
        if dec.get("min_p") is not None:
            kw["min_p"] = dec["min_p"]
    kw["repetition_penalty"] = dec.get("repetition_penalty", 1.0)
    if dec.get("min_new_tokens") is not None:
        kw["min_new_tokens"] = dec["min_new_tokens"]
    for k in GEN_FIELDS:
        if pt.get(k) is not None:
            kw[k] = pt[k]
    return kw


def check_attention(pt):
    """Fail before loading, naming the package, when the attention implementation asked for needs
    one this Python lacks (transformers' own ImportError would surface as "backend missing")."""
    impl = pt.get("attn_implementation")
    if impl not in ATTN_PACKAGES:
        return
    mod, what = ATTN_PACKAGES[impl]
    if importlib.util.find_spec(mod) is None:
        raise WorkerError("dependency_missing",
                          "pytorch.attn_implementation %s needs %s (Python module %s), which %s lacks" % (
                              impl, what, mod, sys.executable),
                          "install it into the image, built for its torch and CUDA (pip install flash-attn "
                          "--no-build-isolation), or use attn_implementation: sdpa")


def compile_model(torch, model, pt, proto):
    """torch.compile what generate really calls. torch.compile(model) returns a wrapper whose
    forward is compiled, but generate() runs on the original module, so that run was eager; here
    the module's own forward is replaced by its compiled version (the way transformers documents),
    so every step of generate goes through it. Compilation happens on first call, i.e. in warmup.
    Returns the dynamo graph counter to compare against after warmup (None: not available)."""
    ckw = {"backend": pt.get("torch_compile_backend") or "inductor"}
    if pt.get("torch_compile_mode"):
        ckw["mode"] = pt["torch_compile_mode"]
    try:
        model.forward = torch.compile(model.forward, **ckw)
    except Exception as e:  # non-fatal, as in the original; but said, and recorded as not compiled
        proto.warning("torch_compile_failed", "torch.compile failed, running eager: %s" % e)
        return None
    return _graphs(torch)


def _graphs(torch):
    """How many graphs dynamo has compiled in this process (None when torch does not say)."""
    try:
        return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    except Exception:
        return None


def compiled_after_warmup(torch, before, warm, proto):
    """Whether compilation really happened before the measurement; warns when it did not."""
    after = _graphs(torch)
    if before is None or after is None:
        proto.warning("torch_compile_inactive", "torch.compile did not take effect (or torch cannot say): measured eager")
        return False
    if after > before:
        return True
    if warm.get("requests", 0) == 0:
        proto.warning("torch_compile_in_measurement", "warmup is off: compilation happens inside the measurement")
    else:
        proto.warning("torch_compile_inactive", "torch.compile compiled no graph during warmup: measured eager")
    return False


def run(proto, doc, cfg, prompts):
    import torch
    import transformers

    proto.hello("pytorch", "transformers %s, torch %s" % (transformers.__version__, torch.__version__))
    model_name = cfg["model"]
    pt = section(cfg, "pytorch")
    batch_size = int(pt.get("batch_size") or 1)
    max_in = int(cfg.get("max_input_tokens", 512))
    cuda = torch.cuda.is_available()
    transformers.set_seed(int(cfg.get("random_seed", 42)))  # the original never seeded torch
    check_attention(pt)

    mem = DeviceMemory() if cuda else None
    proto.phase("load", "start")
    tok = transformers.AutoTokenizer.from_pretrained(
        model_name, trust_remote_code=pt.get("trust_remote_code", True),
        **({"revision": pt["revision"]} if pt.get("revision") else {}))
    tok.padding_side = "left"  # decoder-only batches must be left-padded
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = transformers.AutoModelForCausalLM.from_pretrained(model_name, **from_pretrained_kwargs(cfg, torch, transformers))
    lora = cfg.get("lora")
    if lora:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, lora.get("adapter_id") or lora.get("adapter_path"))
        if lora.get("merge_weights"):
            model = model.merge_and_unload()
    model.eval()
    graphs0 = compile_model(torch, model, pt, proto) if pt.get("torch_compile") else None
    if cuda:
        torch.cuda.synchronize()
        mem.read()
    model_bytes = {_device_name(torch, i): int(torch.cuda.memory_allocated(i)) for i in range(torch.cuda.device_count())} if cuda else {}
    proto.phase("load", "end")

    facts = facts_from_config(getattr(model, "config", None), name=model_name, dtype=cfg.get("precision"))
    e, k = experts_of(getattr(model, "config", None))
    total, non_embed, active = count_parameters(((n, p.numel()) for n, p in model.named_parameters()), e, k)
    facts.update(parameters=total, non_embedding_parameters=non_embed, active_parameters=active)
    proto.model(facts)

    gen_kw = generate_kwargs(cfg)
    device = _input_device(model, torch)
    eos = _eos_ids(tok, model)

    def encode(batch_prompts):
        enc = tok(batch_prompts, return_tensors="pt", padding=True, truncation=True, max_length=max_in)
        return {k: v.to(device) for k, v in enc.items()}

    def generate(enc, stamps):
        crit = _StepClock(torch, cuda, stamps)
        with torch.no_grad():
            return model.generate(**enc, **gen_kw, pad_token_id=tok.pad_token_id,
                                  stopping_criteria=transformers.StoppingCriteriaList([crit]))

    def warm_call(i):
        # A full batch, as measured: batch shapes (and a static cache) are compiled/warmed.
        k = min(batch_size, len(prompts))
        generate(encode([prompts[(i * k + j) % len(prompts)] for j in range(k)]), [])

    warm = run_warmup(cfg, warm_call, proto)
    if pt.get("torch_compile"):
        warm["compiled"] = compiled_after_warmup(torch, graphs0, warm, proto)

    if cuda:
        for i in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(i)
    proto.phase("measure", "start")
    totals = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "batches": 0}
    for b, start in enumerate(range(0, len(prompts), batch_size)):
        enc = encode(prompts[start:start + batch_size])
        in_lens = [int(x) for x in enc["attention_mask"].sum(dim=1).tolist()]
        stamps = []
        # TTFT counts from when a request is submitted to the engine: for a static batch, the
        # generate call that carries it (docs/design.md, "TTFT").
        t0 = ns()
        out = generate(enc, stamps)
        t_done = ns()
        width = enc["input_ids"].shape[1]
        for j, row in enumerate(out.tolist()):
            n = _generated(row[width:], eos, tok.pad_token_id)
            times = _token_times(stamps, width, n, t_done)
            t_first = times[0] if n else 0
            itl = [times[i] - times[i - 1] for i in range(1, n)]
            proto.request(start + j, b, in_lens[j], n, t0, t_first, times[-1] if n else t_done, itl)
            totals["requests"] += 1
            totals["input_tokens"] += in_lens[j]
            totals["output_tokens"] += n
        totals["batches"] += 1
    if cuda:
        torch.cuda.synchronize()
    proto.phase("measure", "end")

    out_mem = [host_memory()]
    if cuda:
        # Without NVML the peak is the allocator's reservation (what the caching allocator held).
        reserved = {_device_name(torch, i): int(torch.cuda.max_memory_reserved(i)) for i in range(torch.cuda.device_count())}
        out_mem += mem.entries(model_bytes=model_bytes, kv_bytes=None, fallback_peak=reserved)
    proto.memory(out_mem)
    proto.done(totals, warm)


class _StepClock:
    """A StoppingCriteria that never stops: it records when each generation step's token exists
    (synchronising CUDA first, so the time is when the token was computed, not queued), with the
    sequence length reached."""

    def __init__(self, torch, cuda, stamps):
        self.torch, self.cuda, self.stamps = torch, cuda, stamps

    def __call__(self, input_ids, scores, **kwargs):
        if self.cuda:
            self.torch.cuda.synchronize()
        self.stamps.append((ns(), int(input_ids.shape[1])))
        return self.torch.zeros((input_ids.shape[0],), dtype=self.torch.bool, device=input_ids.device)


def _token_times(stamps, width, n, t_done):
    """The time each of a sequence's n tokens appeared: the first step whose sequence length
    covers it (several tokens appear in one step under assisted/prompt-lookup decoding)."""
    times, k = [], 0
    for j in range(n):
        while k < len(stamps) and stamps[k][1] < width + j + 1:
            k += 1
        times.append(stamps[k][0] if k < len(stamps) else t_done)
    return times


def _generated(tokens, eos, pad):
    """Tokens a sequence really generated: up to and including its first EOS; when padding is not
    EOS, trailing padding does not count either."""
    for i, t in enumerate(tokens):
        if t in eos:
            return i + 1
    n = len(tokens)
    if pad is not None and pad not in eos:
        while n and tokens[n - 1] == pad:
            n -= 1
    return n


def _eos_ids(tok, model):
    ids = set()
    for src in (getattr(getattr(model, "generation_config", None), "eos_token_id", None), tok.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(x for x in src if isinstance(x, int))
    return ids


def _input_device(model, torch):
    dev = getattr(model, "device", None)
    if dev is not None:
        return dev
    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def _device_name(torch, i):
    try:
        u = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        if u:
            return "GPU-" + str(u)
    except Exception:
        pass
    return "cuda:%d" % i

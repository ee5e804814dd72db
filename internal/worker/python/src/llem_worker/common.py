"""What every Python worker shares: the input, decoding rules, warmup, model facts, memory."""
import json
import math
import os
import re
import resource
import struct
import time

from .protocol import now_ns


class WorkerError(Exception):
    """A failure with a protocol error code and a fix hint."""

    def __init__(self, code, message, hint=None):
        super().__init__(message)
        self.code = code
        self.hint = hint


def load_input():
    path = os.environ.get("LLEM_EXPERIMENT")
    if not path:
        raise WorkerError("no_experiment", "LLEM_EXPERIMENT is not set", "llem-exec sets it; run workers through llem-exec")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise WorkerError("bad_experiment", "%s: %s" % (path, e))
    cfg = doc.get("config")
    if not isinstance(cfg, dict):
        raise WorkerError("bad_experiment", "%s: no config object" % path)
    prompts = doc.get("prompts") or []
    if not prompts:
        raise WorkerError("no_prompts", "%s holds no prompts" % path, "llem-exec resolves the dataset into experiment.json")
    # The docker runner mounts a model given as a host directory read-only and says where.
    if os.environ.get("LLEM_MODEL"):
        cfg["model"] = os.environ["LLEM_MODEL"]
    return doc, cfg, prompts


def section(cfg, name):
    """A config section as a dict ({} when null)."""
    return cfg.get(name) or {}


def split_extra(sec, known):
    """Known keys with non-null values, and the extra (unknown) keys, which are forwarded."""
    known_vals = {k: v for k, v in sec.items() if k in known and v is not None}
    extra = {k: v for k, v in sec.items() if k not in known}
    return known_vals, extra


def fit_kwargs(target, kw, proto, where):
    """The kwargs target (a class or function) accepts. A config field this version of the
    engine does not know is dropped with a warning event naming it, rather than crashing the run
    or vanishing silently. Targets taking **kwargs, or without a readable signature, get all."""
    import inspect
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return kw
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return kw
    out = {}
    for k, v in kw.items():
        if k in params:
            out[k] = v
        else:
            proto.warning("unsupported_field", "%s.%s is not accepted by this engine version's %s; ignored" % (
                where, k, getattr(target, "__name__", str(target))))
    return out


def refuse_unknown(kw, accepted, what, hint):
    """Engine arguments the installed engine does not know, refused by name before loading: the
    engine would raise TypeError deep in its constructor, or (worse) a dropped argument would
    change what is measured without anyone noticing. accepted None = cannot tell: all pass."""
    if accepted is None:
        return
    unknown = sorted(k for k in kw if k not in accepted)
    if unknown:
        raise WorkerError("unsupported_engine_arg", "%s does not accept %s" % (what, ", ".join(unknown)), hint)


def field_names(cls):
    """The field names of a dataclass or pydantic model class (None when it is neither)."""
    import dataclasses
    if cls is None:
        return None
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    fields = getattr(cls, "model_fields", None)  # pydantic v2
    if isinstance(fields, dict):
        return set(fields)
    return None


def is_greedy(decoder):
    return decoder.get("temperature", 1.0) == 0 or decoder.get("do_sample", True) is False


TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


# --- warmup -----------------------------------------------------------------------------------

def run_warmup(cfg, call, proto):
    """Warmup as in the original (fixed n_warmup calls, or CV mode up to max_prompts calls stopping
    once the CV of the last window_size latencies is under cv_threshold), then the thermal floor.
    call(i) runs the i-th warmup request and returns nothing; its latency is measured here.
    Returns the done event's warmup object."""
    w = section(cfg, "warmup")
    if not w.get("enabled", True):
        return {"requests": 0, "latencies_s": [], "cv": None, "converged": True, "mode": "disabled"}
    cv_mode = bool(w.get("convergence_detection", False))
    n = int(w.get("max_prompts", 20)) if cv_mode else int(w.get("n_warmup", 5))
    window = int(w.get("window_size", 5))
    min_prompts = int(w.get("min_prompts", 5))
    threshold = float(w.get("cv_threshold", 0.05))
    lat, cv, converged = [], None, not cv_mode
    proto.phase("warmup", "start")
    for i in range(n):
        t0 = time.perf_counter()
        try:
            call(i)
        except WorkerError:
            raise
        except Exception as e:  # a failed warmup call is reported and skipped, as in the original
            proto.warning("warmup_call_failed", "warmup request %d failed: %s" % (i, e))
            continue
        lat.append(time.perf_counter() - t0)
        if len(lat) >= window:
            cv = _cv(lat[-window:])
        if cv_mode and len(lat) >= max(min_prompts, window) and cv is not None and cv < threshold:
            converged = True
            break
    proto.phase("warmup", "end")
    floor = float(w.get("thermal_floor_seconds", 0) or 0)
    if floor > 0:
        time.sleep(floor)
    return {"requests": len(lat), "latencies_s": lat, "cv": cv, "converged": converged,
            "mode": "cv" if cv_mode else "fixed"}


def _cv(xs):
    m = sum(xs) / len(xs)
    if m <= 0:
        return None
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs)) / m


# --- model facts ------------------------------------------------------------------------------

_EXPERT = re.compile(r"\.experts\.(\d+)\.")


def _first(obj, *names):
    for n in names:
        v = obj.get(n) if isinstance(obj, dict) else getattr(obj, n, None)
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            return v
    return None


def facts_from_config(hf_config, name=None, dtype=None):
    """Architecture facts from a Hugging Face config (object or dict); unknown ones are None."""
    c = hf_config
    if c is not None and not isinstance(c, dict) and hasattr(c, "get_text_config"):
        try:
            c = c.get_text_config()
        except Exception:
            pass
    g = lambda *n: _first(c, *n) if c is not None else None  # noqa: E731
    heads = g("num_attention_heads", "n_head", "num_heads")
    hidden = g("hidden_size", "n_embd", "d_model")
    head_dim = g("head_dim")
    if head_dim is None and heads and hidden:
        head_dim = hidden // heads
    return {
        "name": name or "",
        "parameters": None, "non_embedding_parameters": None, "active_parameters": None,
        "layers": g("num_hidden_layers", "n_layer", "num_layers"),
        "hidden_size": hidden, "heads": heads,
        "kv_heads": g("num_key_value_heads", "num_kv_heads") or heads,
        "head_dim": head_dim,
        "ffn_size": g("intermediate_size", "n_inner", "ffn_dim"),
        "vocab_size": g("vocab_size"),
        "dtype": dtype or "",
    }


def experts_of(hf_config):
    """(experts, experts active per token) where the config says the model is a mixture of experts."""
    if hf_config is None:
        return None, None
    c = hf_config
    if not isinstance(c, dict) and hasattr(c, "get_text_config"):
        try:
            c = c.get_text_config()
        except Exception:
            pass
    e = _first(c, "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
    k = _first(c, "num_experts_per_tok", "moe_top_k", "top_k_experts", "num_selected_experts")
    if e and e > 1 and k:
        return e, k
    return None, None


def count_parameters(named_numels, experts=None, active=None):
    """Totals from (name, numel) pairs: all, non-embedding (names without "embed", the original's rule) and
    for a mixture of experts the parameters active per token: everything outside the experts plus
    active/experts of the expert weights."""
    total = non_embed = expert = 0
    for name, n in named_numels:
        total += n
        if "embed" not in name.lower():
            non_embed += n
        if _EXPERT.search(name):
            expert += n
    act = None
    if experts and active and expert > 0:
        act = total - expert + expert * active // experts
    return total, non_embed, act


_ST_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
                   "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def safetensors_numels(directory):
    """(name, numel) for every tensor in the directory's *.safetensors files, read from their
    headers only (8-byte length + JSON), with no library."""
    out = []
    for fn in sorted(os.listdir(directory)):
        if not fn.endswith(".safetensors"):
            continue
        with open(os.path.join(directory, fn), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            numel = 1
            for d in info.get("shape", []):
                numel *= d
            out.append((name, numel))
    return out


def checkpoint_facts(cfg, hf_config, directory):
    """The model event's facts: from the model's config (hf_config, a dict or a transformers
    config; None when unknown), with parameter counts taken from the checkpoint's safetensors
    files where the model is a local or cached directory (exact, no weights loaded)."""
    facts = facts_from_config(hf_config, name=cfg["model"], dtype=cfg.get("precision"))
    if directory:
        try:
            e, k = experts_of(hf_config)
            total, non_embed, active = count_parameters(safetensors_numels(directory), e, k)
            if total:
                facts.update(parameters=total, non_embedding_parameters=non_embed, active_parameters=active)
        except Exception:  # no readable safetensors: the config's estimate stands
            pass
    return facts


def model_dir(model, revision=None):
    """The local directory of a model: the path itself, or its Hugging Face cache snapshot
    (never downloads)."""
    if os.path.isdir(model):
        return model
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(model, revision=revision, local_files_only=True,
                                 allow_patterns=["*.safetensors", "*.json"])
    except Exception:
        return None


# --- memory -------------------------------------------------------------------------------------

def host_memory():
    """The worker process's peak resident memory (Linux reports KiB)."""
    return {"device": "cpu", "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "model_bytes": None}


class DeviceMemory:
    """GPU memory with one meaning for every backend (docs/design.md, "Memory fields"):
      model_bytes     the weights on the device;
      kv_cache_bytes  the KV cache the engine reserved up front (vLLM; null where it grows on demand);
      peak_bytes      the most device memory the run held: NVML "used" at its highest reading minus
                      "used" before the model loaded, so other tenants and earlier processes do not
                      count (pre-allocated KV cache, CUDA context and allocator slack do);
      device_used_bytes  NVML "used" at that reading, everything on the device included.
    NVML is read before the load and after each phase (engines' caching allocators and
    pre-allocation keep memory, so the last reading is the peak in practice)."""

    def __init__(self):
        self.before = nvml_used() or {}
        self.high = {}

    def read(self):
        for uuid, b in (nvml_used() or {}).items():
            self.high[uuid] = max(self.high.get(uuid, 0), b)

    def entries(self, model_bytes=None, kv_bytes=None, fallback_peak=None):
        """Memory entries per GPU; model_bytes / kv_bytes / fallback_peak map a UUID to bytes (or
        are one number for every GPU). fallback_peak is used where NVML could not be read."""
        def pick(v, uuid):
            return v.get(uuid) if isinstance(v, dict) else v
        self.read()
        out = []
        uuids = sorted(set(self.high) | (set(fallback_peak) if isinstance(fallback_peak, dict) else set()))
        for uuid in uuids:
            e = {"device": uuid, "model_bytes": pick(model_bytes, uuid), "kv_cache_bytes": pick(kv_bytes, uuid)}
            if uuid in self.high:
                e["peak_bytes"] = max(0, self.high[uuid] - self.before.get(uuid, 0))
                e["device_used_bytes"] = self.high[uuid]
            else:
                e["peak_bytes"] = pick(fallback_peak, uuid)
            out.append(e)
        return out


DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


def weight_bytes(parameters, cfg, devices):
    """Weights per device of an engine that loads them itself (vLLM, TensorRT-LLM): parameters x
    the run's element size / devices; null when quantization makes the element size unknown."""
    if not parameters or devices < 1 or cfg.get("precision") not in DTYPE_BYTES:
        return None
    return int(parameters) * DTYPE_BYTES[cfg["precision"]] // devices


def nvml_used():
    """{GPU UUID: used bytes} of the GPUs this process may use, by NVML (None without NVML)."""
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        keep = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        out = {}
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            uuid = pynvml.nvmlDeviceGetUUID(h)
            if isinstance(uuid, bytes):
                uuid = uuid.decode()
            if keep and uuid not in keep and str(i) not in keep:
                continue
            out[uuid] = int(pynvml.nvmlDeviceGetMemoryInfo(h).used)
        return out
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def ns():
    return now_ns()

"""Stand-in for vLLM: an engine that adds requests and produces one token per request per step,
recording LLM / SamplingParams / BeamSearchParams kwargs and add_request calls. Its EngineArgs
has the fields of the vLLM the tests stand for; LLEM_FAKE_VLLM_OLD=1 makes it the v0.11.0 of the
default image, without the newer attention_config and offload_* fields."""
import dataclasses
import os
import time
import types

import pynvml
from _fakelog import probe_env, record

from .sampling_params import RequestOutputKind

__version__ = "0.0-fake"

_NEWER = ["attention_config", "offload_group_size", "offload_num_in_group", "offload_prefetch_step", "offload_params"]
_FIELDS = ["model", "tokenizer", "dtype", "trust_remote_code", "seed", "gpu_memory_utilization", "swap_space",
           "cpu_offload_gb", "block_size", "kv_cache_dtype", "enforce_eager", "enable_chunked_prefill", "max_num_seqs",
           "max_num_batched_tokens", "max_model_len", "tensor_parallel_size", "pipeline_parallel_size",
           "enable_prefix_caching", "quantization", "speculative_config", "disable_custom_all_reduce",
           "kv_cache_memory_bytes", "compilation_config", "attention_backend", "enable_lora", "max_logprobs"]
if os.environ.get("LLEM_FAKE_VLLM_OLD") != "1":
    _FIELDS += _NEWER
EngineArgs = dataclasses.make_dataclass("EngineArgs", [(f, object, dataclasses.field(default=None)) for f in _FIELDS])

# The stand-in engine's memory: weights + a KV cache of NUM_GPU_BLOCKS blocks of BLOCK_SIZE tokens.
NUM_GPU_BLOCKS, BLOCK_SIZE = 100, 16
ENGINE_BYTES = 7 << 20


class _Params:
    def __init__(self, **kw):
        record(type(self).__name__, **kw)
        self.kw = kw
        self.__dict__.update(kw)

    def _fake_repr(self):
        return {type(self).__name__: self.kw}


class SamplingParams(_Params):
    pass


class BeamSearchParams(_Params):
    # The signature of vLLM 0.11's BeamSearchParams: no early_stopping.
    def __init__(self, beam_width, max_tokens, ignore_eos=False, temperature=0.0, length_penalty=1.0,
                 include_stop_str_in_output=False):
        kw = dict(beam_width=beam_width, max_tokens=max_tokens, ignore_eos=ignore_eos, temperature=temperature,
                  length_penalty=length_penalty, include_stop_str_in_output=include_stop_str_in_output)
        super().__init__(**kw)


class _Tok:
    def encode(self, text):
        return [10 + len(w) for w in text.split()]


class _Engine:
    def __init__(self):
        self.model_config = types.SimpleNamespace(hf_config=types.SimpleNamespace(
            num_hidden_layers=3, hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=32, vocab_size=200))
        self.vllm_config = types.SimpleNamespace(cache_config=types.SimpleNamespace(
            num_gpu_blocks=NUM_GPU_BLOCKS, block_size=BLOCK_SIZE, cache_dtype="auto"))
        self.reqs = []

    def add_request(self, rid, prompt, params):
        record("engine.add_request", rid, prompt, params)
        # Request k produces k+2 tokens.
        delta = getattr(params, "kw", {}).get("output_kind") == RequestOutputKind.DELTA
        self.reqs.append({"id": rid, "want": len(self.reqs) + 2, "toks": [], "delta": delta})

    def has_unfinished_requests(self):
        return any(len(r["toks"]) < r["want"] for r in self.reqs)

    def step(self):
        time.sleep(0.002)
        outs = []
        for r in self.reqs:
            if len(r["toks"]) < r["want"]:
                r["toks"].append(7)
                fin = len(r["toks"]) == r["want"]
                toks = [7] if r["delta"] else list(r["toks"])
                outs.append(types.SimpleNamespace(request_id=r["id"], finished=fin, metrics=None,
                                                  outputs=[types.SimpleNamespace(index=0, token_ids=toks)]))
        self.reqs = [r for r in self.reqs if len(r["toks"]) < r["want"]]
        return outs


class LLM:
    def __init__(self, **kw):
        record("LLM", **kw)
        if kw.get("model") == "fail-to-load":
            raise RuntimeError("fake: cannot load")
        EngineArgs(**{k: v for k, v in kw.items()})  # what the real LLM does with its kwargs: TypeError on a newer field
        probe_env("LLM")  # vLLM's V1 engine compiles at start (torch inductor, Triton)
        if os.path.isdir(kw["model"]):
            import transformers
            record("model_dir", kw["model"], **transformers._dir_facts(kw["model"]))
        pynvml.ENGINE["bytes"] = ENGINE_BYTES
        self.llm_engine = _Engine()

    def get_tokenizer(self):
        return _Tok()

    def generate(self, prompts, params, use_tqdm=True):
        record("LLM.generate", len(prompts), params)
        return []

    def beam_search(self, prompts, params):
        record("LLM.beam_search", len(prompts), params)
        return [types.SimpleNamespace(sequences=[types.SimpleNamespace(tokens=p["prompt_token_ids"] + [5, 6, 7])])
                for p in prompts]

"""Stand-in for TensorRT-LLM 1.x: records LLM / BuildConfig / SamplingParams kwargs, saves a fake
engine directory, streams one token per tick from generate_async. tensorrt_llm.LLM is the PyTorch
flow (as in 1.x); the engine flow is tensorrt_llm._tensorrt_engine.LLM, which fails to import
with LLEM_FAKE_TRT_NO_ENGINE=1. LLEM_FAKE_BUILD_WAIT=PATH makes a build wait until PATH exists
(to hold two builds side by side)."""
import asyncio
import json
import os
import time
import types

import pynvml
from _fakelog import record

__version__ = "1.0.0-fake"
ENGINE_BYTES = 11 << 20


class _Rec:
    def __init__(self, **kw):
        record(type(self).__name__, **kw)
        self.kw = kw

    def _fake_repr(self):
        return {type(self).__name__: {k: (v._fake_repr() if hasattr(v, "_fake_repr") else v) for k, v in self.kw.items()}}


class BuildConfig(_Rec):
    pass


class SamplingParams(_Rec):
    pass


class _Tok:
    def encode(self, text):
        return [10 + len(w) for w in text.split()]


class LLM:
    def __init__(self, **kw):
        record(self._name, **kw)
        if "build_config" in kw:
            record("build.start", os.getpid())
            wait = os.environ.get("LLEM_FAKE_BUILD_WAIT")
            while wait and not os.path.exists(wait):
                time.sleep(0.01)
        pynvml.ENGINE["bytes"] = ENGINE_BYTES
        self.tokenizer = _Tok()
        self.n = 0

    _name = "tensorrt_llm.LLM"

    def save(self, d):
        record("LLM.save", d)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"fake": True}, f)

    def generate(self, prompts, params):
        record("LLM.generate", len(prompts), params)
        return []

    async def generate_async(self, ids, params, streaming=False):
        record("generate_async", len(ids))
        self.n += 1
        want = self.n + 1
        for k in range(1, want + 1):
            await asyncio.sleep(0.002)
            yield types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=[9] * k)])

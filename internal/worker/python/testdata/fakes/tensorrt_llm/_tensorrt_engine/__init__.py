import os

import tensorrt_llm

if os.environ.get("LLEM_FAKE_TRT_NO_ENGINE") == "1":
    raise ImportError("cannot import name 'LLM' from 'tensorrt_llm._tensorrt_engine' (stand-in)")


class LLM(tensorrt_llm.LLM):
    _name = "_tensorrt_engine.LLM"

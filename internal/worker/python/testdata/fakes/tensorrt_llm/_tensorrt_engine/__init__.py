import tensorrt_llm


class LLM(tensorrt_llm.LLM):
    _name = "_tensorrt_engine.LLM"

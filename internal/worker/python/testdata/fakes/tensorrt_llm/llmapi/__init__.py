import types

import tensorrt_llm

QuantAlgo = types.SimpleNamespace(W8A8_SQ_PER_CHANNEL="W8A8_SQ_PER_CHANNEL", W4A16_AWQ="W4A16_AWQ", FP8="FP8")


class QuantConfig(tensorrt_llm._Rec):
    pass

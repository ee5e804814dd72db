"""Stand-in for tensorrt_llm.llmapi.llm_args: the argument models of the two flows, as pydantic
models expose them (model_fields)."""

_COMMON = ["model", "tokenizer", "dtype", "trust_remote_code", "tensor_parallel_size", "pipeline_parallel_size",
           "quant_config", "kv_cache_config", "max_batch_size",
           "max_input_len", "max_seq_len", "max_num_tokens"]


class TrtLlmArgs:
    model_fields = {f: None for f in _COMMON + ["build_config"]}


class TorchLlmArgs:
    model_fields = {f: None for f in _COMMON + ["cuda_graph_config", "backend"]}

"""Stand-in for vllm.sampling_params: the output kinds of RequestOutput."""
import enum


class RequestOutputKind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2

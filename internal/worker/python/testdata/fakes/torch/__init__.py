"""Stand-in for torch: nested-list tensors, records compile/seed calls. CPU only, unless
LLEM_FAKE_CUDA=1: then one CUDA device (the stand-in NVML's GPU) whose allocator reports
MODEL_BYTES after the load and PEAK_RESERVED at most."""
import collections
import contextlib
import os
import types

from _fakelog import probe_env, record

__version__ = "0.0-fake"


class dtype:
    def __init__(self, name):
        self.name = name

    def _fake_repr(self):
        return "torch." + self.name


float32, float16, bfloat16, bool = dtype("float32"), dtype("float16"), dtype("bfloat16"), dtype("bool")


class device:
    def __init__(self, name):
        self.type = name

    def _fake_repr(self):
        return "device:" + self.type


class Tensor:
    def __init__(self, data):
        self.data = data
        self.device = device("cpu")

    @property
    def shape(self):
        s, d = [], self.data
        while isinstance(d, list):
            s.append(len(d))
            d = d[0] if d else None
        return tuple(s)

    def to(self, dev):
        return self

    def tolist(self):
        return self.data

    def sum(self, dim):
        assert dim == 1
        return Tensor([sum(r) for r in self.data])


def tensor(data):
    return Tensor(data)


def zeros(shape, dtype=None, device=None):
    return Tensor([False] * shape[0])


def manual_seed(s):
    record("torch.manual_seed", s)


# torch._dynamo.utils.counters["stats"]["unique_graphs"]: graphs compiled so far.
_dynamo = types.SimpleNamespace(utils=types.SimpleNamespace(counters=collections.defaultdict(collections.Counter)))


def compile(fn, **kw):
    """Like torch.compile: returns a wrapper that compiles (here: counts a graph) on its first
    call. What is compiled is recorded: a module (whose own forward generate would not use) or
    its bound forward method."""
    record("torch.compile", target=getattr(fn, "__name__", type(fn).__name__), **kw)
    probe_env("torch.compile")
    state = {"compiled": False}

    def compiled(*a, **k):
        if not state["compiled"]:
            state["compiled"] = True
            _dynamo.utils.counters["stats"]["unique_graphs"] += 1
        return fn(*a, **k)
    compiled._fake_compiled = True
    return compiled


@contextlib.contextmanager
def no_grad():
    yield


MODEL_BYTES = 3 << 20
PEAK_RESERVED = 5 << 20


def _fake_cuda():
    return os.environ.get("LLEM_FAKE_CUDA") == "1"


class _Cuda:
    @staticmethod
    def is_available():
        return _fake_cuda()

    @staticmethod
    def device_count():
        return 1 if _fake_cuda() else 0

    @staticmethod
    def synchronize():
        pass

    @staticmethod
    def memory_allocated(i):
        return MODEL_BYTES

    @staticmethod
    def max_memory_reserved(i):
        return PEAK_RESERVED

    @staticmethod
    def reset_peak_memory_stats(i):
        pass

    @staticmethod
    def get_device_properties(i):
        import pynvml
        return types.SimpleNamespace(uuid=pynvml.UUID[len("GPU-"):])


cuda = _Cuda()

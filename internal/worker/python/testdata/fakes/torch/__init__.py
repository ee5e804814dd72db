"""Stand-in for torch: CPU only, nested-list tensors, records compile/seed calls."""
import contextlib

from _fakelog import record

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


def compile(model, **kw):
    record("torch.compile", **kw)
    return model


@contextlib.contextmanager
def no_grad():
    yield


class _Cuda:
    @staticmethod
    def is_available():
        return False

    @staticmethod
    def device_count():
        return 0

    @staticmethod
    def synchronize():
        pass


cuda = _Cuda()

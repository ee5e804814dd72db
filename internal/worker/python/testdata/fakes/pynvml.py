"""Stand-in for NVML's Python bindings: one GPU on which another tenant already uses 1 GiB; the
stand-in engines add what they "allocate" (ENGINE["bytes"]) to its used memory, so a worker's
memory figures can be checked against known numbers."""
import os
import types

UUID = "GPU-fa4e0000-0000-4000-8000-000000000000"
OTHER_TENANT = 1 << 30
ENGINE = {"bytes": 0}


def nvmlInit():
    pass


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    return 1


def nvmlDeviceGetHandleByIndex(i):
    return i


def nvmlDeviceGetUUID(h):
    return UUID


def nvmlDeviceGetName(h):
    return os.environ.get("LLEM_FAKE_GPU_NAME", "Fake H100")


def nvmlDeviceGetCudaComputeCapability(h):
    return 9, 0


def nvmlDeviceGetMemoryInfo(h):
    return types.SimpleNamespace(total=80 << 30, used=OTHER_TENANT + ENGINE["bytes"], free=0)

"""Stand-in modules record every engine call they receive, as JSON lines in $LLEM_FAKE_LOG, so
tests can prove each config field reached the call."""
import enum
import json
import os
import time


def _plain(v):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, set):
        return {"__set__": sorted(_plain(x) for x in v)}
    if isinstance(v, dict):
        # Keys keep their type where it is not a string: {"int:0": ...}.
        return {(k if isinstance(k, str) else "%s:%r" % (type(k).__name__, k)): _plain(x) for k, x in v.items()}
    if hasattr(v, "_fake_repr"):
        return _plain(v._fake_repr())
    if isinstance(v, enum.Enum):
        return str(v)
    return "<%s>" % type(v).__name__


def record(call, *args, **kwargs):
    with open(os.environ["LLEM_FAKE_LOG"], "a") as f:
        f.write(json.dumps({"call": call, "t": time.time_ns(), "args": _plain(list(args)), "kwargs": _plain(kwargs)}) + "\n")


def probe_env(call):
    """What torch inductor / Triton / vLLM's compile step need from the process: a user name
    (getpass.getuser(), which raises for a uid without a passwd entry unless USER/LOGNAME is set),
    writable cache directories, and the ulimits and IPC namespace the container was given."""
    import getpass
    import resource
    info = {}
    try:
        info["user"] = getpass.getuser()
    except Exception as e:  # noqa: BLE001 — what the real library would die of
        raise RuntimeError("getpass.getuser() failed as in torch inductor's cache setup: %r" % e)
    for k in ("HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "VLLM_CACHE_ROOT", "XDG_CACHE_HOME"):
        d = os.environ.get(k)
        if not d:
            continue
        try:
            p = os.path.join(d, ".llem-probe-%d" % os.getpid())
            with open(p, "w") as f:
                f.write("ok")
            os.remove(p)
            info[k] = "writable"
        except OSError as e:
            info[k] = "not writable: %s" % e
    info["memlock"] = list(resource.getrlimit(resource.RLIMIT_MEMLOCK))
    info["stack"] = list(resource.getrlimit(resource.RLIMIT_STACK))
    try:
        info["ipc_ns"] = os.readlink("/proc/self/ns/ipc")
    except OSError:
        pass
    record(call + ".env", **info)

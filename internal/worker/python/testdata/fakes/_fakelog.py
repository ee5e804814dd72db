"""Stand-in modules record every engine call they receive, as JSON lines in $LLEM_FAKE_LOG, so
tests can prove each config field reached the call."""
import json
import os


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
        return v._fake_repr()
    return "<%s>" % type(v).__name__


def record(call, *args, **kwargs):
    with open(os.environ["LLEM_FAKE_LOG"], "a") as f:
        f.write(json.dumps({"call": call, "args": _plain(list(args)), "kwargs": _plain(kwargs)}) + "\n")

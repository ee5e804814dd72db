"""Dispatch to a backend, with the protocol's error handling: any failure becomes an `error`
event and a non-zero exit; SIGTERM (llem-exec's timeout or interrupt) ends the run the same way."""
import importlib
import os
import signal
import sys
import threading
import traceback

from .common import WorkerError, load_input
from .protocol import Protocol

BACKENDS = {"pytorch": "pytorch_backend", "vllm": "vllm_backend", "tensorrt": "tensorrt_backend"}


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so cleanup (finally blocks) still runs."""


def _on_term(signum, frame):
    raise Terminated()


def _watch_stdin():
    """stdin is llem-exec's connection (the docker runner attaches it and never writes): its end
    means llem-exec is gone, so this worker ends too, as if it had been sent SIGTERM."""
    # The raw fd, not sys.stdin: a daemon thread blocked inside a buffered reader aborts the
    # interpreter's shutdown ("could not acquire lock for <stdin>").
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv):
    proto = Protocol()
    if len(argv) != 1 or argv[0] not in BACKENDS:
        proto.error("usage", "usage: run_worker.py {%s}" % "|".join(sorted(BACKENDS)))
        return 2
    backend = argv[0]
    signal.signal(signal.SIGTERM, _on_term)
    if os.environ.get("LLEM_STDIN_WATCHDOG") == "1":
        threading.Thread(target=_watch_stdin, name="llem-stdin-watchdog", daemon=True).start()
    try:
        mod = importlib.import_module("llem_worker." + BACKENDS[backend])
        doc, cfg, prompts = load_input()
        mod.run(proto, doc, cfg, prompts)
        return 0
    except WorkerError as e:
        proto.error(e.code, str(e), e.hint)
        return 1
    except Terminated:
        proto.error("terminated", "stopped by SIGTERM (llem-exec timeout or interrupt)")
        return 130  # the exit code table of internal/cli: interrupted by a signal
    except KeyboardInterrupt:
        proto.error("interrupted", "interrupted (SIGINT)")
        return 130
    except ImportError as e:
        code, msg, hint = _import_failure(backend, e)
        proto.error(code, msg, hint)
        return 1
    except Exception as e:  # noqa: BLE001 — every failure must reach llem-exec as an event
        traceback.print_exc(file=sys.stderr)
        code = _classify(e)
        proto.error(code, "%s: %s" % (type(e).__name__, e),
                    "lower batch size / max_output_tokens, or use a quantised or smaller model" if code == "oom" else None)
        return 1


# The top-level modules that are each backend itself; any other missing module is a dependency.
BACKEND_MODULES = {"pytorch": ("torch", "transformers"), "vllm": ("vllm",), "tensorrt": ("tensorrt_llm", "tensorrt")}


def _import_failure(backend, e):
    """(code, message, hint) of an ImportError: the backend itself missing, or a module it needs,
    named (flash_attn, peft, bitsandbytes...), so the fix is the right one."""
    name = getattr(e, "name", None) or ""
    top = name.split(".")[0]
    if not top or top in BACKEND_MODULES[backend]:
        return ("backend_missing", "cannot import the %s backend: %s" % (backend, e),
                "run it in the backend's image (runners: {%s: docker}) or install it into this Python" % backend)
    return ("dependency_missing", "the %s worker needs the Python module %s, which %s lacks: %s" % (backend, top, sys.executable, e),
            "install %s into the image or environment the %s worker runs in" % (top, backend))


def _classify(e):
    # torch.cuda.OutOfMemoryError (and older RuntimeError subclasses) by type, not by message.
    for cls in type(e).__mro__:
        if cls.__name__ == "OutOfMemoryError":
            return "oom"
    return "worker_exception"

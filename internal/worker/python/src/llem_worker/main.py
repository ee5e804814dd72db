"""Dispatch to a backend, with the protocol's error handling: any failure becomes an `error`
event and a non-zero exit; SIGTERM (llem-exec's timeout or interrupt) ends the run the same way."""
import importlib
import signal
import sys
import traceback

from .common import WorkerError, load_input
from .protocol import Protocol

BACKENDS = {"pytorch": "pytorch_backend", "vllm": "vllm_backend", "tensorrt": "tensorrt_backend"}


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so cleanup (finally blocks) still runs."""


def _on_term(signum, frame):
    raise Terminated()


def main(argv):
    proto = Protocol()
    if len(argv) != 1 or argv[0] not in BACKENDS:
        proto.error("usage", "usage: run_worker.py {%s}" % "|".join(sorted(BACKENDS)))
        return 2
    backend = argv[0]
    signal.signal(signal.SIGTERM, _on_term)
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
        return 143
    except KeyboardInterrupt:
        proto.error("interrupted", "interrupted (SIGINT)")
        return 130
    except ImportError as e:
        proto.error("backend_missing", "cannot import the %s backend: %s" % (backend, e),
                    "run it in the backend's image (runners: {%s: docker}) or install it into this Python" % backend)
        return 1
    except Exception as e:  # noqa: BLE001 — every failure must reach llem-exec as an event
        traceback.print_exc(file=sys.stderr)
        code = _classify(e)
        proto.error(code, "%s: %s" % (type(e).__name__, e),
                    "lower batch size / max_output_tokens, or use a quantised or smaller model" if code == "oom" else None)
        return 1


def _classify(e):
    # torch.cuda.OutOfMemoryError (and older RuntimeError subclasses) by type, not by message.
    for cls in type(e).__mro__:
        if cls.__name__ == "OutOfMemoryError":
            return "oom"
    return "worker_exception"

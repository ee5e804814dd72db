"""The worker protocol (docs/design.md, "Worker protocol"): NDJSON events on stdout.

Libraries print to stdout freely (transformers, vLLM, TensorRT-LLM, even C code), so the
protocol stream is moved to a private duplicate of file descriptor 1 and fd 1 itself is pointed
at stderr: nothing but events can reach the protocol stream.
"""
import json
import os
import sys
import threading
import time

now_ns = time.time_ns  # wall clock, shared by host and containers


class Protocol:
    def __init__(self):
        fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def emit(self, event, **fields):
        rec = {"event": event, "t": fields.pop("t", None) or now_ns()}
        rec.update(fields)
        line = json.dumps(rec, separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def hello(self, backend, version):
        self.emit("hello", backend=backend, version=str(version), pid=os.getpid())

    def phase(self, phase, edge):
        self.emit("phase", phase=phase, edge=edge)

    def model(self, facts):
        self.emit("model", model={k: v for k, v in facts.items() if not (k in ("name", "dtype") and not v)})

    def request(self, rid, batch, input_tokens, output_tokens, t_start, t_first, t_end, itl_ns):
        self.emit("request", request={
            "id": int(rid), "batch": int(batch), "input_tokens": int(input_tokens),
            "output_tokens": int(output_tokens), "t_start": int(t_start),
            "t_first_token": int(t_first), "t_end": int(t_end),
            "itl_ns": [max(0, int(x)) for x in itl_ns],
        })

    def memory(self, devices):
        self.emit("memory", memory=devices)

    def warning(self, code, message, hint=None):
        f = {"code": code, "message": message or code}
        if hint:
            f["hint"] = hint
        self.emit("warning", **f)

    def error(self, code, message, hint=None):
        f = {"code": code, "message": message or code}
        if hint:
            f["hint"] = hint
        self.emit("error", **f)

    def done(self, totals, warmup):
        self.emit("done", totals=totals, warmup=warmup)

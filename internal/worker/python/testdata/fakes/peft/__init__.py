"""Stand-in for peft: records the adapter a model is wrapped with and merges."""
from _fakelog import record


class _Wrapped:
    def __init__(self, model):
        self.base = model

    def merge_and_unload(self):
        record("PeftModel.merge_and_unload")
        return self.base

    def __getattr__(self, k):
        return getattr(self.base, k)


class PeftModel:
    @staticmethod
    def from_pretrained(model, source, **kw):
        record("PeftModel.from_pretrained", source, **kw)
        return _Wrapped(model)

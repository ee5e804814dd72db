"""Stand-in for transformers: a word tokenizer and a model whose generate() runs real steps,
calling the stopping criteria after each, and records every kwarg it was given."""
import os
import time

import torch
from _fakelog import record

__version__ = "0.0-fake"
EOS = 2


def set_seed(s):
    record("transformers.set_seed", s)


class BitsAndBytesConfig:
    def __init__(self, **kw):
        record("BitsAndBytesConfig", **kw)
        self.kw = kw

    def _fake_repr(self):
        return {"BitsAndBytesConfig": {k: (v._fake_repr() if hasattr(v, "_fake_repr") else v) for k, v in self.kw.items()}}


class StoppingCriteriaList(list):
    pass


class _Tok:
    eos_token, eos_token_id = "</s>", EOS

    def __init__(self):
        self.pad_token, self.pad_token_id, self.padding_side = None, None, "right"

    def __setattr__(self, k, v):
        object.__setattr__(self, k, v)
        if k == "pad_token" and v == "</s>":
            object.__setattr__(self, "pad_token_id", EOS)

    def __call__(self, texts, return_tensors=None, padding=False, truncation=False, max_length=None):
        record("tokenizer", texts, return_tensors=return_tensors, padding=padding, truncation=truncation,
               max_length=max_length, padding_side=self.padding_side)
        ids = [[10 + len(w) for w in t.split()] for t in texts]
        if truncation:
            ids = [r[:max_length] for r in ids]
        width = max(len(r) for r in ids)
        pad = self.pad_token_id
        left = self.padding_side == "left"
        inp = [([pad] * (width - len(r)) + r) if left else (r + [pad] * (width - len(r))) for r in ids]
        mask = [([0] * (width - len(r)) + [1] * len(r)) if left else ([1] * len(r) + [0] * (width - len(r))) for r in ids]
        return {"input_ids": torch.tensor(inp), "attention_mask": torch.tensor(mask)}


class AutoTokenizer:
    @staticmethod
    def from_pretrained(name, **kw):
        record("AutoTokenizer.from_pretrained", name, **kw)
        return _Tok()


class _P:
    def __init__(self, n):
        self.n = n

    def numel(self):
        return self.n


class _Cfg:
    def __init__(self, moe):
        self.num_hidden_layers, self.hidden_size, self.num_attention_heads = 2, 8, 2
        self.num_key_value_heads, self.intermediate_size, self.vocab_size = 1, 16, 100
        if moe:
            self.num_local_experts, self.num_experts_per_tok = 4, 2


class _GenCfg:
    eos_token_id = EOS


class _Model:
    def __init__(self, moe):
        self.config = _Cfg(moe)
        self.generation_config = _GenCfg()
        self.device = torch.device("cpu")
        self.moe = moe

    def named_parameters(self):
        yield "model.embed_tokens.weight", _P(800)
        yield "model.layers.0.self_attn.q_proj.weight", _P(64)
        if self.moe:
            for e in range(4):
                yield "model.layers.0.block_sparse_moe.experts.%d.w1.weight" % e, _P(100)
        yield "lm_head.weight", _P(800)

    def eval(self):
        return self

    def forward(self, rows):
        """One decoding step (the real model's forward); generate calls it through the instance
        attribute, as transformers' generate does (self(...) -> self.forward)."""
        return rows

    def generate(self, input_ids=None, attention_mask=None, stopping_criteria=None, **kw):
        record("model.generate", batch=len(input_ids.data), **kw)
        rows = [list(r) for r in input_ids.data]
        n = kw["max_new_tokens"]
        compiled_steps = 0
        # Row i stops (emits EOS) after i+2 tokens; the rest is padding.
        for step in range(n):
            self.forward(rows)
            compiled_steps += 1 if getattr(self.forward, "_fake_compiled", False) else 0
            for i, r in enumerate(rows):
                done = EOS in r[len(input_ids.data[i]):]
                r.append(kw["pad_token_id"] if done else (EOS if step == i + 1 else 50 + step))
            time.sleep(0.002)
            for c in stopping_criteria or []:
                c(torch.tensor(rows), None)
        record("model.generate.done", steps=n, compiled_steps=compiled_steps)
        return torch.tensor(rows)


class AutoModelForCausalLM:
    @staticmethod
    def from_pretrained(name, **kw):
        record("AutoModelForCausalLM.from_pretrained", name, **kw)
        if name == "hang":
            time.sleep(3600)
        if name == "fail-to-load":
            raise OSError("fake: no such model " + name)
        if os.path.isdir(name):
            record("model_dir", name, **_dir_facts(name))
        if torch.cuda.is_available():
            import pynvml
            pynvml.ENGINE["bytes"] = torch.PEAK_RESERVED + (1 << 20)  # allocator reservation + CUDA context
        return _Model(moe=name.endswith("-moe"))


def _dir_facts(d):
    """What a loader sees of a local model directory: its files, and whether it could write there."""
    files = sorted(os.listdir(d))
    try:
        p = os.path.join(d, ".llem-write-probe")
        open(p, "w").close()
        os.remove(p)
        writable = True
    except OSError:
        writable = False
    return {"files": files, "writable": writable}

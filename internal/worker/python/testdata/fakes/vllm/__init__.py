"""Stand-in for vLLM: an engine that adds requests and produces one token per request per step,
recording LLM / SamplingParams / BeamSearchParams kwargs and add_request calls."""
import time
import types

from _fakelog import record

__version__ = "0.0-fake"


class _Params:
    def __init__(self, **kw):
        record(type(self).__name__, **kw)
        self.kw = kw

    def _fake_repr(self):
        return {type(self).__name__: self.kw}


class SamplingParams(_Params):
    pass


class BeamSearchParams(_Params):
    # The signature of vLLM 0.11's BeamSearchParams: no early_stopping.
    def __init__(self, beam_width, max_tokens, ignore_eos=False, temperature=0.0, length_penalty=1.0,
                 include_stop_str_in_output=False):
        kw = dict(beam_width=beam_width, max_tokens=max_tokens, ignore_eos=ignore_eos, temperature=temperature,
                  length_penalty=length_penalty, include_stop_str_in_output=include_stop_str_in_output)
        super().__init__(**kw)


class _Tok:
    def encode(self, text):
        return [10 + len(w) for w in text.split()]


class _Engine:
    def __init__(self):
        self.model_config = types.SimpleNamespace(hf_config=types.SimpleNamespace(
            num_hidden_layers=3, hidden_size=16, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=32, vocab_size=200))
        self.reqs = []

    def add_request(self, rid, prompt, params):
        record("engine.add_request", rid, prompt, params)
        # Request k produces k+2 tokens.
        self.reqs.append({"id": rid, "want": len(self.reqs) + 2, "toks": []})

    def has_unfinished_requests(self):
        return any(len(r["toks"]) < r["want"] for r in self.reqs)

    def step(self):
        time.sleep(0.002)
        outs = []
        for r in self.reqs:
            if len(r["toks"]) < r["want"]:
                r["toks"].append(7)
                fin = len(r["toks"]) == r["want"]
                outs.append(types.SimpleNamespace(request_id=r["id"], finished=fin, metrics=None,
                                                  outputs=[types.SimpleNamespace(token_ids=list(r["toks"]))]))
        self.reqs = [r for r in self.reqs if len(r["toks"]) < r["want"]]
        return outs


class LLM:
    def __init__(self, **kw):
        record("LLM", **kw)
        if kw.get("model") == "fail-to-load":
            raise RuntimeError("fake: cannot load")
        self.llm_engine = _Engine()

    def get_tokenizer(self):
        return _Tok()

    def generate(self, prompts, params, use_tqdm=True):
        record("LLM.generate", len(prompts), params)
        return []

    def beam_search(self, prompts, params):
        record("LLM.beam_search", len(prompts), params)
        return [types.SimpleNamespace(sequences=[types.SimpleNamespace(tokens=p["prompt_token_ids"] + [5, 6, 7])])
                for p in prompts]

#!/usr/bin/env python3
"""PyTorch eager side of scripts/bench/native: what a user would otherwise run
on a CPU. The same checkpoint as the Go engine, the same work: a prefill of
`batch` prompts of `prompt` tokens (logits of each prompt's last row), then
`steps` decode steps of one token per sequence; float32, torch.inference_mode,
torch.set_num_threads(threads). The model is a batched Llama forward pass in
plain PyTorch (the weights are read by internal/native/testdata/torch_llama.py,
the cross-check's independent reader) with a preallocated KV cache and
Hugging Face eager's repeat_kv for grouped-query attention.

    torch_bench.py model CKPT THREADS BATCHES PROMPT STEPS MIN_SECONDS
    torch_bench.py matmul THREADS MIN_SECONDS ROWSxINxOUT...

Prints JSON: median seconds per prefill and per decode step for each batch,
or median seconds per product.
"""
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../internal/native/testdata"))
from torch_llama import Llama  # noqa: E402


class Batched:
    def __init__(self, ref, batch, max_len):
        self.r = ref
        self.w = ref.w
        kv, d = ref.kv_heads, ref.head_dim
        self.k = [torch.zeros(batch, kv, max_len, d) for _ in range(ref.layers)]
        self.v = [torch.zeros(batch, kv, max_len, d) for _ in range(ref.layers)]
        ang = torch.arange(max_len, dtype=torch.float64)[:, None] * ref.inv_freq[None, :]
        emb = torch.cat([ang, ang], dim=-1)
        self.cos, self.sin = emb.cos().float(), emb.sin().float()

    def rot(self, x, start):
        T = x.shape[2]
        c, s = self.cos[start:start + T], self.sin[start:start + T]
        half = x.shape[-1] // 2
        return x * c + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * s

    def forward(self, ids, start):
        """ids: [B, T] at positions start..; returns the last row's logits."""
        r, w = self.r, self.w
        B, T = ids.shape
        H, KV, d = r.heads, r.kv_heads, r.head_dim
        x = w["model.embed_tokens.weight"][ids]
        mask = None
        if T > 1:
            mask = torch.full((T, start + T), float("-inf")).triu(start + 1)
        for i in range(r.layers):
            p = "model.layers.%d." % i
            h = r.rmsnorm(x, w[p + "input_layernorm.weight"])
            q = r.linear(h, p + "self_attn.q_proj").view(B, T, H, d).transpose(1, 2)
            k = r.linear(h, p + "self_attn.k_proj").view(B, T, KV, d).transpose(1, 2)
            v = r.linear(h, p + "self_attn.v_proj").view(B, T, KV, d).transpose(1, 2)
            q, k = self.rot(q, start), self.rot(k, start)
            self.k[i][:, :, start:start + T] = k
            self.v[i][:, :, start:start + T] = v
            K = self.k[i][:, :, :start + T].repeat_interleave(H // KV, dim=1)
            V = self.v[i][:, :, :start + T].repeat_interleave(H // KV, dim=1)
            s = q @ K.transpose(-1, -2) / math.sqrt(d)
            if mask is not None:
                s = s + mask
            a = (torch.softmax(s, dim=-1) @ V).transpose(1, 2).reshape(B, T, H * d)
            x = x + r.linear(a, p + "self_attn.o_proj")
            h = r.rmsnorm(x, w[p + "post_attention_layernorm.weight"])
            g = h @ w[p + "mlp.gate_proj.weight"].T
            u = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
        return r.rmsnorm(x[:, -1], w["model.norm.weight"]) @ r.lm_head.T


def model(ckpt, batches, prompt, steps, min_s):
    ref = Llama(ckpt)
    vocab = ref.lm_head.shape[0]
    out = []
    for batch in batches:
        m = Batched(ref, batch, prompt + steps)
        ids = (torch.arange(batch)[:, None] * 131 + torch.arange(prompt)[None, :] * 7) % vocab
        pre, dec = [], []
        t_end = time.perf_counter() + min_s
        while len(pre) < 3 or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            logits = m.forward(ids, 0)
            pre.append(time.perf_counter() - t0)
            tok = torch.argmax(logits, dim=-1)[:, None]
            for s in range(steps):
                t0 = time.perf_counter()
                logits = m.forward(tok, prompt + s)
                dec.append(time.perf_counter() - t0)
                tok = torch.argmax(logits, dim=-1)[:, None]
        out.append({"batch": batch, "prefill_s": statistics.median(pre), "decode_step_s": statistics.median(dec),
                    "prefill_reps": len(pre), "decode_steps": len(dec)})
    return out


def matmul(shapes, min_s):
    out = []
    for sh in shapes:
        rows, k, n = (int(v) for v in sh.split("x"))
        x, w = torch.randn(rows, k), torch.randn(n, k)
        ts = []
        t_end = time.perf_counter() + min_s
        while len(ts) < 5 or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            x @ w.T
            ts.append(time.perf_counter() - t0)
        out.append({"shape": sh, "seconds": statistics.median(ts), "best_seconds": min(ts)})
    return out


def main():
    kind = sys.argv[1]
    with torch.inference_mode():
        if kind == "model":
            ckpt, threads, batches, prompt, steps, min_s = sys.argv[2:8]
            torch.set_num_threads(int(threads))
            res = model(ckpt, [int(b) for b in batches.split(",")], int(prompt), int(steps), float(min_s))
        else:
            torch.set_num_threads(int(sys.argv[2]))
            res = matmul(sys.argv[4:], float(sys.argv[3]))
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": res}, sys.stdout)


if __name__ == "__main__":
    main()

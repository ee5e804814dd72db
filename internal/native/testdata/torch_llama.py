#!/usr/bin/env python3
"""An independent Llama-family forward pass in plain PyTorch, for checking
llem's Go engine (internal/native) against a second implementation.

It shares no code with the engine: it parses the safetensors file itself (an
8-byte little-endian header length, a JSON header, raw tensors) and follows
the Hugging Face config.json fields: embedding, RMSNorm, rotary embeddings
("rotate half" layout, optional llama3 rope_scaling), grouped-query attention
with a KV cache, optional q/k/v(/o) biases (Qwen2, attention_bias), head_dim
apart from hidden/heads, SwiGLU MLP, LM head (tied or not).

    torch_llama.py CKPT_DIR REQUEST.json OUT.bin

REQUEST.json: {"prompts": [[ids...], ...], "steps": N}. For each prompt it
runs a prefill and N greedy decode steps (argmax, lowest id on ties) and
writes, for each prompt in order, the (N+1) × vocab float32 logits (the
prefill's last row, then each decode step's) to OUT.bin; the greedy tokens
go to stdout as JSON: {"tokens": [[...], ...]}.
"""
import json
import math
import struct
import sys

import torch

DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dtype, size = DTYPES[t["dtype"]]
        b, e = t["data_offsets"]
        buf = bytearray(data[base + b:base + e])
        x = torch.frombuffer(buf, dtype=dtype) if e > b else torch.empty(0, dtype=dtype)
        out[name] = x.reshape(t["shape"]).to(torch.float32)
    return out


def load(ckpt):
    with open(ckpt + "/config.json") as f:
        cfg = json.load(f)
    try:
        with open(ckpt + "/model.safetensors.index.json") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    except FileNotFoundError:
        shards = ["model.safetensors"]
    w = {}
    for s in shards:
        w.update(read_safetensors(ckpt + "/" + s))
    return cfg, w


def inv_freq(cfg, head_dim):
    theta = cfg.get("rope_theta", 10000.0)
    f = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind != "llama3":
            raise SystemExit("rope_scaling %r not implemented here" % kind)
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / f
        scaled = torch.where(wavelen > old / lo, f / factor, f)
        smooth = (old / wavelen - lo) / (hi - lo)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        is_mid = (wavelen >= old / hi) & (wavelen <= old / lo)
        f = torch.where(is_mid, mid, scaled)
    return f


class Llama:
    def __init__(self, ckpt):
        cfg, self.w = load(ckpt)
        self.cfg = cfg
        self.layers = cfg["num_hidden_layers"]
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads") or self.heads
        self.head_dim = cfg.get("head_dim") or self.hidden // self.heads
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.inv_freq = inv_freq(cfg, self.head_dim)
        if cfg.get("tie_word_embeddings") or "lm_head.weight" not in self.w:
            self.lm_head = self.w["model.embed_tokens.weight"]
        else:
            self.lm_head = self.w["lm_head.weight"]

    def new_cache(self):
        return [[None, None] for _ in range(self.layers)]

    def rmsnorm(self, x, g):
        var = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps) * g

    def rotate(self, x, pos):
        # x: [heads, T, d]; positions pos: [T]
        ang = pos[:, None].to(torch.float64) * self.inv_freq[None, :]
        emb = torch.cat([ang, ang], dim=-1)
        cos, sin = emb.cos().to(torch.float32), emb.sin().to(torch.float32)
        half = x.shape[-1] // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rot * sin

    def linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        return y if b is None else y + b

    def forward(self, ids, start, cache):
        """Logits of every row of ids (a list), placed at start.. in cache."""
        T = len(ids)
        x = self.w["model.embed_tokens.weight"][torch.tensor(ids)]
        pos = torch.arange(start, start + T)
        group = self.heads // self.kv_heads
        for i in range(self.layers):
            p = "model.layers.%d." % i
            h = self.rmsnorm(x, self.w[p + "input_layernorm.weight"])
            q = self.linear(h, p + "self_attn.q_proj").view(T, self.heads, self.head_dim).transpose(0, 1)
            k = self.linear(h, p + "self_attn.k_proj").view(T, self.kv_heads, self.head_dim).transpose(0, 1)
            v = self.linear(h, p + "self_attn.v_proj").view(T, self.kv_heads, self.head_dim).transpose(0, 1)
            q, k = self.rotate(q, pos), self.rotate(k, pos)
            c = cache[i]
            c[0] = k if c[0] is None else torch.cat([c[0], k], dim=1)
            c[1] = v if c[1] is None else torch.cat([c[1], v], dim=1)
            K = c[0].repeat_interleave(group, dim=0)
            V = c[1].repeat_interleave(group, dim=0)
            S = K.shape[1]
            scores = (q @ K.transpose(1, 2)) / math.sqrt(self.head_dim)
            # causal: row t (absolute position start+t) sees keys 0..start+t
            mask = torch.arange(S)[None, :] > pos[:, None]
            scores = scores.masked_fill(mask[None], float("-inf"))
            att = torch.softmax(scores, dim=-1) @ V
            att = att.transpose(0, 1).reshape(T, self.heads * self.head_dim)
            x = x + self.linear(att, p + "self_attn.o_proj")
            h = self.rmsnorm(x, self.w[p + "post_attention_layernorm.weight"])
            g = h @ self.w[p + "mlp.gate_proj.weight"].T
            u = h @ self.w[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ self.w[p + "mlp.down_proj.weight"].T
        x = self.rmsnorm(x, self.w["model.norm.weight"])
        return x @ self.lm_head.T


def greedy(model, prompt, steps):
    cache = model.new_cache()
    logits = model.forward(prompt, 0, cache)[-1]
    rows, toks = [logits], []
    for s in range(steps):
        t = int(torch.argmax(logits))  # first maximum: lowest id on ties
        toks.append(t)
        logits = model.forward([t], len(prompt) + s, cache)[-1]
        rows.append(logits)
    return torch.stack(rows), toks


def main():
    ckpt, req_path, out_path = sys.argv[1:4]
    with open(req_path) as f:
        req = json.load(f)
    torch.set_num_threads(1)
    model = Llama(ckpt)
    all_toks = []
    with torch.inference_mode(), open(out_path, "wb") as out:
        for prompt in req["prompts"]:
            rows, toks = greedy(model, prompt, req["steps"])
            out.write(rows.contiguous().numpy().astype("<f4").tobytes())
            all_toks.append(toks)
    json.dump({"tokens": all_toks, "torch": torch.__version__}, sys.stdout)


if __name__ == "__main__":
    main()

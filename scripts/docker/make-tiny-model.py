#!/usr/bin/env python3
"""Creates a causal LM with random weights from a config — nothing is downloaded — plus a
word-level tokenizer, saved as safetensors (bf16), for GPU checks of the pytorch/vllm workers:

    make-tiny-model.py DIR [--moe] [--size tiny|1b|3b|8b]

Llama-style; --size tiny (default: 4 layers, hidden 256, GQA 4/2 heads) is for wiring checks;
1b, 3b and 8b have the shapes of real models of that size (8b: Llama-3-8B's), large enough that
an H100/H200 is busy and joules per token mean something. --moe makes a Mixtral-style tiny model
(4 experts, 2 active per token) so the worker's active-parameter figure can be checked.
The weights are made on the GPU when there is one (an 8B model in seconds, not minutes).
Needs torch and transformers (and tokenizers, which transformers brings).
"""
import argparse
import os

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM, PreTrainedTokenizerFast

WORDS = ("the a of to and in is it that for on with as was by at be this are from or an have not "
         "energy power token model measure watt joule time request prompt answer question hello world").split()


# Shapes of real models of each size (parameters with untied embeddings of vocab 32000; 8b: 128256).
SIZES = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8),
    "3b": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               vocab_size=128256),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--moe", action="store_true")
    ap.add_argument("--size", choices=["tiny"] + sorted(SIZES), default="tiny")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for w in WORDS + ["w%d" % i for i in range(1024 - len(WORDS) - 3)]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>")
    fast.save_pretrained(a.dir)
    common = dict(vocab_size=len(vocab), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    if a.size != "tiny":
        common.update(vocab_size=32000, max_position_embeddings=8192)
        common.update(SIZES[a.size])
        # Token ids beyond the word-level tokenizer's vocabulary are never produced by it; the
        # embedding is simply as large as the real model's.
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_default_dtype(torch.bfloat16)  # made in bf16: an 8B model in fp32 would need 32 GB
    with torch.device(dev):
        if a.moe:
            model = MixtralForCausalLM(MixtralConfig(num_local_experts=4, num_experts_per_tok=2, **common))
        else:
            model = LlamaForCausalLM(LlamaConfig(torch_dtype="bfloat16", **common))
    model.save_pretrained(a.dir, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print("%s: %s model (%s), %d parameters (%.2f B), vocab %d, made on %s" % (
        a.dir, "Mixtral" if a.moe else "Llama", a.size, n, n / 1e9, common["vocab_size"], dev))


if __name__ == "__main__":
    main()

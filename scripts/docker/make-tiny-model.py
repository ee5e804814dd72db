#!/usr/bin/env python3
"""Creates a small causal LM with random weights from a config — nothing is downloaded — plus a
word-level tokenizer, saved as safetensors, for GPU checks of the pytorch/vllm workers:

    make-tiny-model.py DIR [--moe]

Llama-style by default (4 layers, hidden 256, GQA 4/2 heads); --moe makes a Mixtral-style model
(4 experts, 2 active per token) so the worker's active-parameter figure can be checked.
Needs torch and transformers (and tokenizers, which transformers brings).
"""
import argparse
import os

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM, PreTrainedTokenizerFast

WORDS = ("the a of to and in is it that for on with as was by at be this are from or an have not "
         "energy power token model measure watt joule time request prompt answer question hello world").split()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--moe", action="store_true")
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
    if a.moe:
        model = MixtralForCausalLM(MixtralConfig(num_local_experts=4, num_experts_per_tok=2, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    model.save_pretrained(a.dir, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print("%s: %s model, %d parameters, vocab %d" % (a.dir, "Mixtral" if a.moe else "Llama", n, len(vocab)))


if __name__ == "__main__":
    main()

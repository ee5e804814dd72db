#!/usr/bin/env python3
"""Trains a small SentencePiece BPE model with byte fallback (Debian's
python3-sentencepiece) and writes what the Go test compares against:

    sp_reference.py CORPUS STRINGS.json OUTDIR

OUTDIR/tokenizer.json: the model as a Hugging Face tokenizer.json, built the
way Hugging Face converts Llama's tokenizer.model (vocab = pieces; merges =
every pair of pieces whose concatenation is a piece, ranked by that piece's
score; byte_fallback; "▁" for spaces and in front; <s> before the text).
OUTDIR/expected.json: {"ids": [...], "text": [...]}: SentencePiece's own
encoding of each string and its decoding of those ids.
"""
import json
import os
import sys

import sentencepiece as spm

corpus, strings_path, out = sys.argv[1:4]
prefix = os.path.join(out, "sp")
spm.SentencePieceTrainer.train(
    input=corpus, model_prefix=prefix, vocab_size=1000, model_type="bpe",
    byte_fallback=True, normalization_rule_name="identity",
    remove_extra_whitespaces=False, character_coverage=0.9995,
    num_threads=1, minloglevel=2)
sp = spm.SentencePieceProcessor(model_file=prefix + ".model")

vocab, scores, added = {}, {}, []
for i in range(sp.get_piece_size()):
    p = sp.id_to_piece(i)
    vocab[p], scores[p] = i, sp.get_score(i)
    if sp.is_control(i) or sp.is_unknown(i):
        added.append({"id": i, "content": p, "special": True, "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": False})
merges = []
for piece, pid in vocab.items():
    if sp.is_byte(pid) or sp.is_control(pid) or sp.is_unknown(pid):
        continue
    for k in range(1, len(piece)):
        left, right = piece[:k], piece[k:]
        if left in vocab and right in vocab:
            merges.append((-scores[piece], pid, vocab[left], vocab[right], left, right))
merges.sort()
tok = {
    "version": "1.0",
    "added_tokens": added,
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": None,
    "post_processor": {"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                  {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [], "special_tokens": {}},
    "decoder": None,
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
              "continuing_subword_prefix": None, "end_of_word_suffix": None,
              "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
              "vocab": vocab, "merges": [[m[4], m[5]] for m in merges]},
}
with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False)
with open(strings_path, encoding="utf-8") as f:
    strings = json.load(f)
ids = [sp.encode(s) for s in strings]
with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
    json.dump({"ids": ids, "text": [sp.decode(i) for i in ids]}, f, ensure_ascii=False)

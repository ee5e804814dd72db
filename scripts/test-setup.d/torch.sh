# internal/native: the engine is cross-checked against an independent forward
# pass in PyTorch (internal/native/testdata/torch_llama.py; CPU build from
# Debian), and internal/tokenizer against SentencePiece, which trains a small
# model at test time. Both tests skip with a message where these are missing.
apt_install python3-torch python3-sentencepiece

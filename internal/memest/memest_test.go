package memest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/native"
	"github.com/llem/llem/internal/native/preset"
)

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	c, _, err := config.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// llem-tiny (native preset, fp32), computed by hand:
//
//	per layer: 2·128 (norms) + 128·128 (Q) + 2·64·128 (K, V) + 128·128 (O) + 3·352·128 (MLP) = 184 576
//	params: 4·184 576 + 512·128 (embedding) + 128 (norm) + 512·128 (LM head) = 869 504
//	weights: 869 504 · 4 B = 3 478 016
//	KV: 2 · 4 layers · 2 KV heads · 32 head dim · (64 + 32 tokens) · 4 batch · 4 B = 786 432
//	overhead: 15 % of the weights = 521 702 (floor of 521 702.4)
func TestLlemTiny(t *testing.T) {
	c := parse(t, "model: llem-tiny\nn: 8\nmax_output_tokens: 32\ndataset: {input_len: 64}\nnative: {batch_size: 4}\n")
	e, err := ForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	want := Estimate{Params: 869504, WeightsBytes: 3478016, KVCacheBytes: 786432, OverheadBytes: 521702, TotalBytes: 3478016 + 786432 + 521702, Source: "native section"}
	if e != want {
		t.Errorf("got  %+v\nwant %+v", e, want)
	}
	// The same count as the engine's own (untied LM head).
	a, _ := preset.Lookup("llem-tiny")
	if p := native.Params(a); p != e.Params {
		t.Errorf("native.Params %d, estimate %d", p, e.Params)
	}
}

// A Llama-3.2-1B-shaped checkpoint (bf16, tied embeddings, GQA), by hand:
//
//	per layer: 2·2048 + 2048·2048 (Q) + 2·512·2048 (K, V) + 2048·2048 (O) + 3·8192·2048 = 60 821 504
//	params: 16·60 821 504 + 128 256·2048 (embedding = LM head) + 2048 = 1 235 814 400
//	weights: · 2 B = 2 471 628 800
//	KV: 2 · 16 · 8 · 64 · (512 + 128) · 4 · 2 B = 83 886 080
//	overhead: 0.15 · 2 471 628 800 = 370 744 320
func TestLlamaCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
	  "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": true}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c := parse(t, "model: "+dir+"\nbackend: pytorch\nmax_input_tokens: 512\nmax_output_tokens: 128\npytorch: {batch_size: 4}\n")
	e, err := ForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	want := Estimate{Params: 1235814400, WeightsBytes: 2471628800, KVCacheBytes: 83886080, OverheadBytes: 370744320,
		TotalBytes: 2471628800 + 83886080 + 370744320, Source: filepath.Join(dir, "config.json")}
	if e != want {
		t.Errorf("got  %+v\nwant %+v", e, want)
	}
	// 4-bit weights: an eighth of fp32, a quarter of bf16.
	c.PyTorch.LoadIn4bit = new(bool)
	*c.PyTorch.LoadIn4bit = true
	if e, _ := ForConfig(c); e.WeightsBytes != 1235814400/2 {
		t.Errorf("4-bit weights %d", e.WeightsBytes)
	}
}

// GPT-2 small from its config.json: the published 124 439 808 parameters
// (12·(12·768² + 13·768) + 50 257·768 + 1024·768 + 2·768).
func TestGPT2Config(t *testing.T) {
	s, err := FromConfigJSON([]byte(`{"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "vocab_size": 50257}`))
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Params(); p != 124439808 {
		t.Errorf("gpt2 params %d", p)
	}
}

// A Hugging Face id is found in the cache; one that is not says so.
func TestHFCache(t *testing.T) {
	hub := t.TempDir()
	t.Setenv("HF_HUB_CACHE", hub)
	snap := filepath.Join(hub, "models--org--tiny", "snapshots", "abc123")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snap, "config.json"), []byte(`{"model_type": "gpt2", "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16, "vocab_size": 10}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if e, err := ForConfig(parse(t, "model: org/tiny\nbackend: pytorch\n")); err != nil || e.Source != filepath.Join(snap, "config.json") {
		t.Errorf("%+v %v", e, err)
	}
	if _, err := ForConfig(parse(t, "model: org/absent\nbackend: pytorch\n")); err == nil {
		t.Error("no error for a model that is not cached")
	}
}

// sglang: max_running_requests is the batch, fp8 quantization and KV cache
// halve the bf16 bytes; without max_running_requests every prompt counts.
func TestSGLang(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
	  "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": true}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const head = "backend: sglang\nmax_input_tokens: 512\nmax_output_tokens: 128\nn: 10\nserving: {rate: 1, requests: 10}\n"
	e, err := ForConfig(parse(t, "model: "+dir+"\n"+head+"sglang: {max_running_requests: 4, quantization: fp8, kv_cache_dtype: fp8_e4m3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	// As TestLlamaCheckpoint (batch 4), with 1-byte weights and KV.
	if e.WeightsBytes != 1235814400 || e.KVCacheBytes != 83886080/2 {
		t.Errorf("fp8 sglang: %+v", e)
	}
	e, _ = ForConfig(parse(t, "model: "+dir+"\n"+head))
	if e.WeightsBytes != 2471628800 || e.KVCacheBytes != 83886080/4*10 { // bf16, all 10 prompts
		t.Errorf("bf16 sglang: %+v", e)
	}
}

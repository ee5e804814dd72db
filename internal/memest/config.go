package memest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/llem/llem/internal/config"
)

// ForConfig estimates an effective config's memory. The error says why there
// is no estimate (a Hugging Face model not in the local cache, an
// architecture config.json does not describe).
func ForConfig(c *config.Config) (Estimate, error) {
	s, src, err := shapeOf(c)
	if err != nil {
		return Estimate{}, err
	}
	wb, kvb := bytesPer(c)
	e := Compute(s, wb, kvb, contextOf(c), batchOf(c))
	e.Source = src
	return e, nil
}

func shapeOf(c *config.Config) (Shape, string, error) {
	if c.Backend == config.BackendNative && c.Native != nil {
		n := c.Native
		if n.Layers != nil && n.HiddenSize != nil && n.Heads != nil && n.KVHeads != nil && n.FFNSize != nil && n.VocabSize != nil {
			return Shape{Layers: *n.Layers, Hidden: *n.HiddenSize, Heads: *n.Heads, KVHeads: *n.KVHeads, HeadDim: *n.HiddenSize / *n.Heads,
				FFN: *n.FFNSize, Vocab: *n.VocabSize, Gated: true}, "native section", nil
		}
	}
	p, err := configJSON(c.Model)
	if err != nil {
		return Shape{}, "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return Shape{}, "", err
	}
	s, err := FromConfigJSON(b)
	return s, p, err
}

// configJSON finds the model's config.json: in the model's directory, else in
// the Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else
// ~/.cache/huggingface/hub), newest snapshot last in name order.
func configJSON(model string) (string, error) {
	if st, err := os.Stat(model); err == nil && st.IsDir() {
		return filepath.Join(model, "config.json"), nil
	}
	hub := os.Getenv("HF_HUB_CACHE")
	if hub == "" {
		home := os.Getenv("HF_HOME")
		if home == "" {
			if h, err := os.UserHomeDir(); err == nil {
				home = filepath.Join(h, ".cache", "huggingface")
			}
		}
		hub = filepath.Join(home, "hub")
	}
	pat := filepath.Join(hub, "models--"+strings.ReplaceAll(model, "/", "--"), "snapshots", "*", "config.json")
	found, _ := filepath.Glob(pat)
	if len(found) == 0 {
		return "", fmt.Errorf("no config.json for %s: not a local directory and not in the Hugging Face cache %s", model, hub)
	}
	sort.Strings(found)
	return found[len(found)-1], nil
}

// bytesPer is the bytes per weight and per KV-cache element: the precision,
// or the quantization the backend section asks for.
func bytesPer(c *config.Config) (weights, kv float64) {
	switch c.Precision {
	case "fp32":
		weights = 4
	default:
		weights = 2
	}
	kv = weights
	switch {
	case c.PyTorch != nil && c.PyTorch.LoadIn4bit != nil && *c.PyTorch.LoadIn4bit:
		weights = 0.5
	case c.PyTorch != nil && c.PyTorch.LoadIn8bit != nil && *c.PyTorch.LoadIn8bit:
		weights = 1
	case c.VLLM != nil && c.VLLM.Engine != nil:
		e := c.VLLM.Engine
		if e.Quantization != nil {
			weights = quantBytes(*e.Quantization, weights)
		}
		if e.KVCacheDtype != nil && strings.HasPrefix(*e.KVCacheDtype, "fp8") {
			kv = 1
		}
	case c.TensorRT != nil && c.TensorRT.Quantization != nil:
		weights = quantBytes(*c.TensorRT.Quantization, weights)
	case c.SGLang != nil:
		if q := c.SGLang.Quantization; q != nil {
			weights = quantBytes(*q, weights)
		}
		if d := c.SGLang.KVCacheDtype; d != nil && strings.HasPrefix(*d, "fp8") {
			kv = 1
		}
	}
	return weights, kv
}

func quantBytes(q string, def float64) float64 {
	switch {
	case q == "awq" || q == "gptq" || q == "marlin" || q == "bitsandbytes" || q == "int4_awq":
		return 0.5
	case strings.HasPrefix(q, "fp8") || q == "int8_sq":
		return 1
	}
	return def
}

// contextOf is the tokens one sequence holds at its longest: the prompt
// (the synthetic input length, else max_input_tokens) plus max_output_tokens.
func contextOf(c *config.Config) int {
	in := c.MaxInputTokens
	if s := c.Dataset.Synthetic; s != nil {
		in = s.InputLen
	}
	return in + c.MaxOutputTokens
}

// batchOf is the sequences held at once: the backend's batch size (vLLM: the
// scheduler's max_num_seqs, default 256; SGLang: max_running_requests, else
// every prompt, as SGLang sizes its running batch from the memory left),
// at most the number of prompts.
func batchOf(c *config.Config) int {
	b := 1
	switch {
	case c.Native != nil && c.Backend == config.BackendNative:
		b = c.Native.BatchSize
	case c.PyTorch != nil:
		b = c.PyTorch.BatchSize
	case c.VLLM != nil:
		b = 256
		if c.VLLM.Engine != nil && c.VLLM.Engine.MaxNumSeqs != nil {
			b = *c.VLLM.Engine.MaxNumSeqs
		}
	case c.TensorRT != nil:
		b = c.TensorRT.MaxBatchSize
	case c.SGLang != nil:
		b = c.N
		if r := c.SGLang.MaxRunningRequests; r != nil {
			b = *r
		}
	}
	return max(1, min(b, c.N))
}

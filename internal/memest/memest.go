// Package memest estimates the accelerator memory one run needs, before it
// runs: the weights (parameter count × bytes per parameter at the config's
// precision or quantization), the KV cache (2 × layers × KV heads × head dim
// × context × batch × bytes per element) and an overhead share (activations,
// CUDA context, allocator slack: OverheadShare of the weights, as
// LLenergyMeasure v0.8's dry run did). The architecture comes from the native
// section (presets filled in) or from a checkpoint's config.json: a local
// model directory, or the Hugging Face cache. llem-exec --dry-run puts the
// estimate on each planned run and compares it with the GPUs the run would
// get.
package memest

import (
	"encoding/json"
	"fmt"
)

// OverheadShare is the overhead as a share of the weights.
const OverheadShare = 0.15

// Shape is a decoder-only transformer's architecture.
type Shape struct {
	Layers    int
	Hidden    int
	Heads     int
	KVHeads   int
	HeadDim   int
	FFN       int
	Vocab     int
	Positions int  // learned position embeddings (GPT-2); 0 for rotary models
	Gated     bool // gated MLP (gate, up, down: Llama, Qwen, Mistral); else up, down (GPT-2)
	Tied      bool // the LM head is the token embedding
	Biases    bool // GPT-2's linear and layer-norm biases
}

// Params is the parameter count.
func (s Shape) Params() int64 {
	h, q, kv := int64(s.Hidden), int64(s.Heads*s.HeadDim), int64(s.KVHeads*s.HeadDim)
	f, v := int64(s.FFN), int64(s.Vocab)
	mlp := 2 * f * h
	if s.Gated {
		mlp = 3 * f * h
	}
	layer := 2*h + q*h + 2*kv*h + h*q + mlp // two norms, Q K V O, MLP
	if s.Biases {
		layer += 2*h + q + 2*kv + h + f + h // norm biases, QKV, O, up, down biases
	}
	n := int64(s.Layers)*layer + v*h + h + int64(s.Positions)*h // layers, embedding, final norm
	if s.Biases {
		n += h // final norm bias
	}
	if !s.Tied {
		n += v * h
	}
	return n
}

// Estimate is the memory one run needs, in bytes.
type Estimate struct {
	Params        int64
	WeightsBytes  int64
	KVCacheBytes  int64
	OverheadBytes int64
	TotalBytes    int64
	Source        string // where the architecture came from
}

// Compute is the estimate for shape s with bytesPerParam for the weights,
// kvBytes per KV element, context tokens per sequence and batch sequences at
// once.
func Compute(s Shape, bytesPerParam, kvBytes float64, context, batch int) Estimate {
	e := Estimate{Params: s.Params()}
	e.WeightsBytes = int64(float64(e.Params) * bytesPerParam)
	e.KVCacheBytes = int64(2 * float64(s.Layers) * float64(s.KVHeads) * float64(s.HeadDim) * float64(context) * float64(batch) * kvBytes)
	e.OverheadBytes = int64(float64(e.WeightsBytes) * OverheadShare)
	e.TotalBytes = e.WeightsBytes + e.KVCacheBytes + e.OverheadBytes
	return e
}

// hfConfig is the part of a Hugging Face config.json the estimate reads,
// under the names the common model families use.
type hfConfig struct {
	ModelType  string           `json:"model_type"`
	Hidden     *int             `json:"hidden_size"`
	NEmbd      *int             `json:"n_embd"`
	DModel     *int             `json:"d_model"`
	Layers     *int             `json:"num_hidden_layers"`
	NLayer     *int             `json:"n_layer"`
	Heads      *int             `json:"num_attention_heads"`
	NHead      *int             `json:"n_head"`
	KVHeads    *int             `json:"num_key_value_heads"`
	HeadDim    *int             `json:"head_dim"`
	FFN        *int             `json:"intermediate_size"`
	NInner     *int             `json:"n_inner"`
	Vocab      *int             `json:"vocab_size"`
	NPositions *int             `json:"n_positions"`
	Tied       *bool            `json:"tie_word_embeddings"`
	TextConfig *json.RawMessage `json:"text_config"`
}

func first(ps ...*int) int {
	for _, p := range ps {
		if p != nil {
			return *p
		}
	}
	return 0
}

// FromConfigJSON reads a shape from a config.json (Llama-style families and
// GPT-2); a multimodal config's text_config is read when the top level has
// no layers.
func FromConfigJSON(b []byte) (Shape, error) {
	var c hfConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return Shape{}, fmt.Errorf("config.json: %w", err)
	}
	if first(c.Layers, c.NLayer) == 0 && c.TextConfig != nil {
		return FromConfigJSON(*c.TextConfig)
	}
	s := Shape{Hidden: first(c.Hidden, c.NEmbd, c.DModel), Layers: first(c.Layers, c.NLayer), Heads: first(c.Heads, c.NHead),
		Vocab: first(c.Vocab), Tied: c.Tied == nil || *c.Tied}
	if s.Hidden <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.Vocab <= 0 {
		return Shape{}, fmt.Errorf("config.json: no hidden size, layer count, head count or vocabulary size this estimate knows (model_type %q)", c.ModelType)
	}
	s.KVHeads = first(c.KVHeads, &s.Heads)
	s.HeadDim = first(c.HeadDim)
	if s.HeadDim == 0 {
		s.HeadDim = s.Hidden / s.Heads
	}
	s.FFN = first(c.FFN, c.NInner)
	if c.ModelType == "gpt2" {
		s.Positions, s.Biases = first(c.NPositions), true
		if s.FFN == 0 {
			s.FFN = 4 * s.Hidden
		}
	} else {
		s.Gated = c.FFN != nil
		if s.FFN == 0 {
			s.FFN = 4 * s.Hidden
		}
	}
	return s, nil
}

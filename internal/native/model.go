// Package native is llem's built-in inference engine: a Llama-style
// decoder-only transformer (token embedding, RMSNorm, rotary position
// embeddings, grouped-query attention with a KV cache, SwiGLU MLP, LM head) in
// plain Go, run on CPU cores. It exists so that the whole measuring pipeline
// runs for real on any machine, with no GPU and no Python.
//
// Weights are synthetic: generated deterministically from a seed for any
// architecture. The numbers are the same on every run, every thread count and
// every batch composition, so a benchmark's token stream can be reproduced bit
// for bit.
package native

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/llem/llem/internal/native/preset"
)

// Arch is the architecture of a model: the preset's fields.
type Arch = preset.Arch

// Hyper-parameters of the synthetic models (Llama-2's values); a loaded
// checkpoint brings its own.
const (
	RopeTheta = 10000.0
	NormEps   = 1e-5
)

// Limits on an architecture, so that a hostile or mistyped config fails with
// a message rather than an attempt to allocate terabytes.
const (
	maxParams = 4 << 30 // float32 parameters: 16 GiB
)

// Layer holds one decoder block's weights. Every matrix is stored row-major
// as [out][in]: each output element is the dot product of one contiguous
// weight row with one contiguous activation row, which is the access pattern
// of the matrix-vector kernels.
type Layer struct {
	AttnNorm []float32 // [hidden]
	WQ       []float32 // [heads*headDim][hidden]
	WK       []float32 // [kvHeads*headDim][hidden]
	WV       []float32 // [kvHeads*headDim][hidden]
	WO       []float32 // [hidden][heads*headDim]
	MLPNorm  []float32 // [hidden]
	WGate    []float32 // [ffn][hidden]
	WUp      []float32 // [ffn][hidden]
	WDown    []float32 // [hidden][ffn]
	// Biases of the attention projections, nil where the checkpoint has
	// none (Llama); Qwen2 has BQ, BK, BV, Llama with attention_bias all four.
	BQ, BK, BV, BO []float32
}

// Model is an architecture and its weights.
type Model struct {
	Arch      Arch
	HeadDim   int
	RopeTheta float64
	NormEps   float64
	Embed     []float32 // [vocab][hidden]
	Layers    []Layer
	Norm      []float32 // [hidden]
	LMHead    []float32 // [vocab][hidden]; untied from Embed, as in Llama-2
	Tied      bool      // LMHead is Embed (a checkpoint with tie_word_embeddings)
	// RopeScaling rescales the rotary frequencies (Llama 3.1's "llama3"
	// rope_scaling); nil = plain θ^(−2i/d).
	RopeScaling *RopeScaling
	// ModelType is the checkpoint's model_type ("llama", "qwen2", ...), for
	// SaveLlama; empty = llama.
	ModelType string
	// EOS is the id that ends a sequence: the checkpoint's eos_token_id
	// (the first of a list), 0 for the synthetic models' tokenizer.
	EOS int32
}

// RopeScaling is a Hugging Face rope_scaling of type "llama3": wavelengths
// longer than OrigMaxPos/LowFreqFactor are divided by Factor, shorter than
// OrigMaxPos/HighFreqFactor kept, and those between interpolated.
type RopeScaling struct {
	Factor         float64 `json:"factor"`
	LowFreqFactor  float64 `json:"low_freq_factor"`
	HighFreqFactor float64 `json:"high_freq_factor"`
	OrigMaxPos     float64 `json:"original_max_position_embeddings"`
}

// Params is the model's parameter count (a tied LM head counted once).
func (m *Model) Params() int64 {
	a := m.Arch
	n := Params(a)
	if hd := a.HiddenSize / a.Heads; m.HeadDim != hd { // head_dim given apart from hidden/heads
		n += int64(a.Layers) * int64(a.Heads+a.KVHeads) * int64(m.HeadDim-hd) * 2 * int64(a.HiddenSize)
	}
	if len(m.Layers) > 0 {
		L := m.Layers[0]
		n += int64(a.Layers) * int64(len(L.BQ)+len(L.BK)+len(L.BV)+len(L.BO))
	}
	if m.Tied {
		n -= int64(a.VocabSize) * int64(a.HiddenSize)
	}
	return n
}

// NonEmbeddingParams is Params less the token embedding (PaLM convention:
// a tied LM head is the embedding, so it is left out too).
func (m *Model) NonEmbeddingParams() int64 {
	return m.Params() - int64(m.Arch.VocabSize)*int64(m.Arch.HiddenSize)
}

// Validate checks that an architecture is one the engine can run.
func Validate(a Arch) error { return validate(a, 0) }

// validate checks a with head dimension hd, or hidden/heads where hd is 0.
func validate(a Arch, hd int) error {
	if hd == 0 && a.Heads > 0 {
		if a.HiddenSize%a.Heads != 0 {
			return fmt.Errorf("native.hidden_size: %d is not a multiple of native.heads (%d)", a.HiddenSize, a.Heads)
		}
		hd = a.HiddenSize / a.Heads
	}
	switch {
	case a.Layers < 1:
		return fmt.Errorf("native.layers: %d, want ≥ 1", a.Layers)
	case a.HiddenSize < 2:
		return fmt.Errorf("native.hidden_size: %d, want ≥ 2", a.HiddenSize)
	case a.Heads < 1:
		return fmt.Errorf("native.heads: %d, want ≥ 1", a.Heads)
	case a.KVHeads < 1:
		return fmt.Errorf("native.kv_heads: %d, want ≥ 1", a.KVHeads)
	case hd%2 != 0:
		return fmt.Errorf("native.hidden_size/heads: head dimension %d is odd; rotary embeddings need an even one", hd)
	case a.Heads%a.KVHeads != 0:
		return fmt.Errorf("native.heads: %d is not a multiple of native.kv_heads (%d)", a.Heads, a.KVHeads)
	case a.FFNSize < 1:
		return fmt.Errorf("native.ffn_size: %d, want ≥ 1", a.FFNSize)
	case a.VocabSize < MinVocab:
		return fmt.Errorf("native.vocab_size: %d, want ≥ %d (the byte-level tokenizer needs an id per byte and one for end of sequence)", a.VocabSize, MinVocab)
	case a.MaxSeqLen < 2:
		return fmt.Errorf("native.max_seq_len: %d, want ≥ 2", a.MaxSeqLen)
	}
	if p := Params(a); p > maxParams {
		return fmt.Errorf("native: architecture has %d parameters, more than the engine's limit of %d", p, int64(maxParams))
	}
	return nil
}

// Params is the number of parameters of an architecture (embedding and LM
// head included).
func Params(a Arch) int64 {
	return NonEmbeddingParams(a) + int64(a.VocabSize)*int64(a.HiddenSize)
}

// NonEmbeddingParams counts every parameter but the token embedding, the
// PaLM convention (the LM head counts: it is a matrix product per token).
func NonEmbeddingParams(a Arch) int64 {
	h, kv := int64(a.HiddenSize), int64(a.KVHeads)*int64(a.HiddenSize/a.Heads)
	perLayer := 2*h + // norms
		h*h + 2*kv*h + h*h + // q, k, v, o
		3*h*int64(a.FFNSize) // gate, up, down
	return int64(a.Layers)*perLayer + h + int64(a.VocabSize)*h
}

// MatmulFLOPsPerToken is 2 × the weights a token passes through in one
// forward step that ends in logits (the PaLM figure 2·N_nonembed without
// the norms, which are not matrix products).
func MatmulFLOPsPerToken(a Arch) int64 {
	h, kv := int64(a.HiddenSize), int64(a.KVHeads)*int64(a.HiddenSize/a.Heads)
	perLayer := h*h + 2*kv*h + h*h + 3*h*int64(a.FFNSize)
	return 2 * (int64(a.Layers)*perLayer + int64(a.VocabSize)*h)
}

// AttentionFLOPs is the cost of attention for one token at position pos
// (0-based; it attends to pos+1 keys): scores and weighted values, per head.
func AttentionFLOPs(a Arch, pos int) int64 {
	return 4 * int64(a.Layers) * int64(a.HiddenSize) * int64(pos+1)
}

// NewSynthetic builds a model with weights drawn deterministically from seed.
// Each tensor has its own random stream (seed, tensor index), so tensors can
// be filled in parallel and a tensor's values do not depend on the others.
//
// Scaled initialisation keeps activations sane through any depth: projections
// are N(0, 1/fan_in), the two matrices that write into the residual stream
// (WO, WDown) are further scaled by 1/sqrt(2·layers), embeddings are N(0, 1)
// (RMSNorm follows them) and norm gains are 1.
func NewSynthetic(a Arch, seed int64) (*Model, error) {
	if err := Validate(a); err != nil {
		return nil, err
	}
	hd := a.HiddenSize / a.Heads
	h, q, kv, f, v := a.HiddenSize, a.Heads*hd, a.KVHeads*hd, a.FFNSize, a.VocabSize
	m := &Model{Arch: a, HeadDim: hd, RopeTheta: RopeTheta, NormEps: NormEps, Layers: make([]Layer, a.Layers)}

	type job struct {
		dst []float32
		std float64
	}
	var jobs []job
	add := func(n int, std float64) []float32 {
		s := make([]float32, n)
		jobs = append(jobs, job{s, std})
		return s
	}
	resid := 1 / math.Sqrt(2*float64(a.Layers))
	m.Embed = add(v*h, 1)
	for i := range m.Layers {
		l := &m.Layers[i]
		l.AttnNorm = add(h, 0)
		l.WQ = add(q*h, 1/math.Sqrt(float64(h)))
		l.WK = add(kv*h, 1/math.Sqrt(float64(h)))
		l.WV = add(kv*h, 1/math.Sqrt(float64(h)))
		l.WO = add(h*q, resid/math.Sqrt(float64(q)))
		l.MLPNorm = add(h, 0)
		l.WGate = add(f*h, 1/math.Sqrt(float64(h)))
		l.WUp = add(f*h, 1/math.Sqrt(float64(h)))
		l.WDown = add(h*f, resid/math.Sqrt(float64(f)))
	}
	m.Norm = add(h, 0)
	m.LMHead = add(v*h, 1/math.Sqrt(float64(h)))

	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if j.std == 0 { // a norm gain
				for k := range j.dst {
					j.dst[k] = 1
				}
				return
			}
			r := rand.New(rand.NewPCG(uint64(seed), uint64(i)+0x9e3779b97f4a7c15))
			for k := range j.dst {
				j.dst[k] = float32(r.NormFloat64() * j.std)
			}
		}()
	}
	wg.Wait()
	return m, nil
}

// Bytes is the memory the weights take.
func (m *Model) Bytes() int64 { return 4 * m.Params() }

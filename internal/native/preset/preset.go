// Package preset names the architectures of the native backend's synthetic
// models, so that a study's `model:` can name one (model: llem-tiny). The
// config package fills unset `native:` fields from the preset; the engine builds
// the model from the filled-in section.
package preset

import "sort"

// Arch is a Llama-style decoder architecture.
type Arch struct {
	Layers     int `json:"layers"`
	HiddenSize int `json:"hidden_size"`
	Heads      int `json:"heads"`
	KVHeads    int `json:"kv_heads"`
	FFNSize    int `json:"ffn_size"`
	VocabSize  int `json:"vocab_size"`
	MaxSeqLen  int `json:"max_seq_len"`
}

// Presets by model name. Sizes are chosen so a CPU runs them at useful speed:
// llem-tiny (~1M parameters) for tests, llem-small (~15M) for the quickstart.
var presets = map[string]Arch{
	"llem-tiny":  {Layers: 4, HiddenSize: 128, Heads: 4, KVHeads: 2, FFNSize: 352, VocabSize: 512, MaxSeqLen: 1024},
	"llem-small": {Layers: 8, HiddenSize: 384, Heads: 6, KVHeads: 2, FFNSize: 1024, VocabSize: 2048, MaxSeqLen: 2048},
}

// Lookup returns the preset for a model name.
func Lookup(model string) (Arch, bool) {
	a, ok := presets[model]
	return a, ok
}

// Names lists the preset names in order.
func Names() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

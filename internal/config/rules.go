package config

import (
	"fmt"
	"strings"

	"github.com/llem/llem/internal/native/preset"
)

// Finalize fills the defaults that depend on other fields: the precision
// (per backend), the decoder preset (into the fields no key set), the
// backend's own section, the native architecture from a preset model, the
// lognormal sigma, and the gamma shape of a serving section. It maps the energy backends kept for compatibility.
// It is idempotent, so an effective config decodes to itself. It returns
// remarks for the user.
func (c *Config) Finalize() (notes []string) {
	if c.Backend == "" {
		c.Backend = DefaultBackend(c)
	}
	if c.Dataset.Name == "" && c.Dataset.Synthetic == nil {
		c.Dataset = DefaultDataset(c.Backend)
	}
	if c.Precision == "" {
		if p, ok := PrecisionSupport[c.Backend]; ok {
			c.Precision = p[0]
		} else {
			c.Precision = "bf16"
		}
	}
	if c.Decoder.Preset != nil {
		p := decoderPresets[*c.Decoder.Preset]
		for _, i := range presetFields[*c.Decoder.Preset] {
			if c.Decoder.explicit&(1<<uint(i)) != 0 {
				continue
			}
			switch i {
			case 0:
				c.Decoder.Temperature = p.Temperature
			case 1:
				c.Decoder.DoSample = p.DoSample
			case 3:
				c.Decoder.TopP = p.TopP
			case 4:
				c.Decoder.RepetitionPenalty = p.RepetitionPenalty
			}
		}
	}
	if b := c.Energy.Backend; b != nil && (*b == "zeus" || *b == "codecarbon") {
		notes = append(notes, fmt.Sprintf("energy.backend %s is read as nvml: llem samples NVML itself", *b))
		c.Energy.Backend = ptr("nvml")
	}
	c.EnsureSection()
	c.finalizeServing()
	if s := c.Dataset.Synthetic; s != nil {
		if s.Distribution == "lognormal" && s.Sigma == nil {
			n := *s
			n.Sigma = ptr(0.5)
			c.Dataset.Synthetic = &n
		} else if s.Distribution != "lognormal" && s.Sigma != nil {
			// sigma means nothing for fixed lengths: drop it, so that it does not
			// split one experiment into two ids.
			n := *s
			n.Sigma = nil
			c.Dataset.Synthetic = &n
		}
	}
	return notes
}

// DefaultBackend is the backend of a config that names none: native when the
// model is a native preset (llem-tiny, llem-small) or the config has a
// native: section (e.g. native.weights_path), else pytorch, as in
// LLenergyMeasure v0.8, whose studies name Hugging Face models.
func DefaultBackend(c *Config) string {
	if _, ok := preset.Lookup(c.Model); ok || c.Native != nil {
		return BackendNative
	}
	return BackendPyTorch
}

// DefaultDataset is the dataset of a config that names none: the synthetic
// generator on the native backend (its models have no tokenizer for real
// text), else aienergyscore, v0.8's default.
func DefaultDataset(backend string) Dataset {
	if backend == BackendNative {
		return Dataset{Synthetic: defaultSynthetic()}
	}
	return Dataset{Name: DatasetAIEnergyScore}
}

// EnsureSection creates the section of the config's own backend when it is
// missing, with its defaults, and fills the native architecture from a preset
// model. Finalize calls it; a sweep calls it once on its base, so that the
// configs it derives share the section.
func (c *Config) EnsureSection() { c.ensureSection(true) }

// CreateSection creates the section of the config's own backend when it is
// missing, with its defaults (no preset architecture).
func (c *Config) CreateSection() { c.ensureSection(false) }

func (c *Config) ensureSection(fill bool) {
	switch c.Backend {
	case BackendNative:
		if c.Native == nil {
			c.Native = &Native{}
			c.Native.setDefaults()
		}
		if a, ok := preset.Lookup(c.Model); ok && fill && !archComplete(c.Native) {
			n := *c.Native // copy on write: sections may be shared between configs
			fill := func(p **int, v int) {
				if *p == nil {
					*p = ptr(v)
				}
			}
			fill(&n.Layers, a.Layers)
			fill(&n.HiddenSize, a.HiddenSize)
			fill(&n.Heads, a.Heads)
			fill(&n.KVHeads, a.KVHeads)
			fill(&n.FFNSize, a.FFNSize)
			fill(&n.VocabSize, a.VocabSize)
			fill(&n.MaxSeqLen, a.MaxSeqLen)
			c.Native = &n
		}
	case BackendPyTorch:
		if c.PyTorch == nil {
			c.PyTorch = &PyTorch{}
			c.PyTorch.setDefaults()
		}
	case BackendVLLM:
		if c.VLLM == nil {
			c.VLLM = &VLLM{}
		}
	case BackendTensorRT:
		if c.TensorRT == nil {
			c.TensorRT = &TensorRT{}
			c.TensorRT.setDefaults()
		}
	case BackendSGLang:
		if c.SGLang == nil {
			c.SGLang = &SGLang{}
			c.SGLang.setDefaults()
		}
	}
}

// Validate checks the rules that involve more than one field (the original's
// cross-field rules plus llem's precision table and native architecture rules). Field-level
// type, enum and range errors are found while decoding. The errors carry a
// field path and a hint, but no position.
func (c *Config) Validate() Errors {
	var es Errors
	add := func(path, hint, format string, a ...any) {
		es = append(es, &Error{Path: path, Message: fmt.Sprintf(format, a...), Hint: hint})
	}
	if c.Model == "" {
		add("model", "add model: <name> (llem-tiny or llem-small run on the native backend anywhere)", "model is required")
	}
	sections := []struct {
		name string
		set  bool
	}{
		{BackendNative, c.Native != nil}, {BackendPyTorch, c.PyTorch != nil},
		{BackendVLLM, c.VLLM != nil}, {BackendTensorRT, c.TensorRT != nil}, {BackendSGLang, c.SGLang != nil},
	}
	for _, s := range sections {
		if s.set && s.name != c.Backend {
			add(s.name, fmt.Sprintf("remove the %s section, or set backend: %s", s.name, s.name),
				"a %s section needs backend %s, but backend is %s", s.name, s.name, c.Backend)
		}
	}
	if sup, ok := PrecisionSupport[c.Backend]; ok && !contains(sup, c.Precision) {
		add("precision", "use one of: "+strings.Join(sup, ", "),
			"backend %s does not support precision %s", c.Backend, c.Precision)
	}
	if len(c.PassthroughKwargs) > 0 {
		top := TopLevelFields()
		for k := range c.PassthroughKwargs {
			if contains(top, k) {
				add("passthrough_kwargs."+k, fmt.Sprintf("set %s at the top level instead", k),
					"key %q collides with the top-level field of the same name", k)
			}
		}
	}
	isTrue := func(b *bool) bool { return b != nil && *b }
	if p := c.PyTorch; p != nil {
		if isTrue(p.LoadIn4bit) && isTrue(p.LoadIn8bit) {
			add("pytorch.load_in_8bit", "choose one of load_in_4bit and load_in_8bit", "load_in_4bit and load_in_8bit are both true")
		}
		if (p.TorchCompileMode != nil || p.TorchCompileBackend != nil) && !isTrue(p.TorchCompile) {
			add("pytorch.torch_compile", "set pytorch.torch_compile: true", "torch_compile_mode or torch_compile_backend is set but torch_compile is not true")
		}
		if (p.Bnb4bitComputeDtype != nil || p.Bnb4bitQuantType != nil || p.Bnb4bitUseDoubleQuant != nil) && !isTrue(p.LoadIn4bit) {
			add("pytorch.load_in_4bit", "set pytorch.load_in_4bit: true", "a bnb_4bit_* option is set but load_in_4bit is not true")
		}
		if p.CacheImplementation != nil && p.UseCache != nil && !*p.UseCache {
			add("pytorch.cache_implementation", "remove cache_implementation or use_cache: false", "cache_implementation is set but use_cache is false")
		}
	}
	if v := c.VLLM; v != nil {
		if e := v.Engine; e != nil {
			if e.SpeculativeModel != nil && e.NumSpeculativeTokens == nil {
				add("vllm.engine.num_speculative_tokens", "set vllm.engine.num_speculative_tokens", "speculative_model is set without num_speculative_tokens")
			}
			if e.KVCacheMemoryBytes != nil && e.GPUMemoryUtilization != nil {
				add("vllm.engine.kv_cache_memory_bytes", "keep one of kv_cache_memory_bytes and gpu_memory_utilization", "kv_cache_memory_bytes and gpu_memory_utilization are both set")
			}
		}
		if v.BeamSearch != nil && v.Sampling != nil {
			add("vllm.beam_search", "keep one of vllm.beam_search and vllm.sampling", "beam_search and sampling are both set")
		}
	}
	if l := c.LoRA; l != nil && (l.AdapterID == nil) == (l.AdapterPath == nil) {
		add("lora", "set exactly one of lora.adapter_id and lora.adapter_path", "lora needs exactly one adapter source")
	}
	if s := c.Dataset.Synthetic; s != nil && s.Distribution == "lognormal" && s.Sigma == nil {
		add("dataset.sigma", "", "lognormal needs a sigma")
	}
	if c.Warmup.ConvergenceDetection && c.Warmup.MinPrompts > c.Warmup.MaxPrompts {
		add("warmup.min_prompts", "lower min_prompts or raise max_prompts", "min_prompts %d is above max_prompts %d", c.Warmup.MinPrompts, c.Warmup.MaxPrompts)
	}
	if n := c.Native; n != nil && c.Backend == BackendNative && c.Model != "" {
		c.validateNative(add)
	}
	c.Energy.validateFootprint(add)
	c.validateServing(add)
	return es
}

// validateFootprint checks the cost assumptions: a price is in a currency.
func (e *Energy) validateFootprint(add func(path, hint, format string, a ...any)) {
	if e.Currency != nil && !IsCurrency(*e.Currency) {
		add("energy.currency", "use an ISO 4217 code such as EUR or USD", "currency %q is not a three-letter ISO 4217 code", *e.Currency)
	}
	if (e.PricePerKWh == nil) != (e.Currency == nil) {
		add("energy.currency", "set both energy.price_per_kwh and energy.currency, or neither", "price_per_kwh and currency go together")
	}
}

// IsCurrency says whether s looks like an ISO 4217 code (three capital letters).
func IsCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func (c *Config) validateNative(add func(path, hint, format string, a ...any)) {
	n := c.Native
	arch := []*int{n.Layers, n.HiddenSize, n.Heads, n.KVHeads, n.FFNSize, n.VocabSize, n.MaxSeqLen}
	complete := true
	for _, p := range arch {
		if p == nil {
			complete = false
		}
	}
	if !complete && n.WeightsPath == nil {
		add("native", fmt.Sprintf("use a preset model (%s), set native.weights_path, or set every architecture field (layers, hidden_size, heads, kv_heads, ffn_size, vocab_size, max_seq_len)",
			strings.Join(preset.Names(), ", ")),
			"model %q is not a native preset and the architecture is incomplete", c.Model)
	}
	if n.Heads != nil && n.HiddenSize != nil && *n.HiddenSize%*n.Heads != 0 {
		add("native.heads", "choose heads that divide hidden_size", "heads %d does not divide hidden_size %d", *n.Heads, *n.HiddenSize)
	}
	if n.Heads != nil && n.KVHeads != nil && *n.Heads%*n.KVHeads != 0 {
		add("native.kv_heads", "choose kv_heads that divide heads", "kv_heads %d does not divide heads %d", *n.KVHeads, *n.Heads)
	}
	if n.MaxSeqLen != nil {
		in := c.MaxInputTokens
		if s := c.Dataset.Synthetic; s != nil && s.Distribution == "fixed" && s.InputLen < in {
			in = s.InputLen
		}
		if in+c.MaxOutputTokens > *n.MaxSeqLen {
			add("max_output_tokens", "lower max_input_tokens, dataset.input_len or max_output_tokens, or raise native.max_seq_len",
				"%d input + %d output tokens exceed the model's max_seq_len %d", in, c.MaxOutputTokens, *n.MaxSeqLen)
		}
	}
}

func archComplete(n *Native) bool {
	return n.Layers != nil && n.HiddenSize != nil && n.Heads != nil && n.KVHeads != nil &&
		n.FFNSize != nil && n.VocabSize != nil && n.MaxSeqLen != nil
}

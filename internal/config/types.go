package config

// Config is one experiment's configuration: the schema of LLenergyMeasure v0.8
// (its config model, docs/expand.md) plus llem's `native` backend section.
// JSON names are the original's YAML keys.
//
// An effective Config (from Parse, Decode or a study's expansion) has every
// default filled in: a field that is nil/null means "null" in the schema (the
// backend's own default, or unknown), never "forgotten". The sections of the
// backends the config does not use are nil.
type Config struct {
	Model             string         `json:"model" v:"nonempty"`
	Backend           string         `json:"backend" v:"enum=native|pytorch|vllm|tensorrt|sglang"`
	N                 int            `json:"n" v:"min=1"`
	Dataset           Dataset        `json:"dataset"`
	DatasetOrder      string         `json:"dataset_order" v:"enum=interleaved|grouped|shuffled"`
	Precision         string         `json:"precision" v:"enum=fp32|fp16|bf16"`
	RandomSeed        int64          `json:"random_seed"`
	MaxInputTokens    int            `json:"max_input_tokens" v:"min=1"`
	MaxOutputTokens   int            `json:"max_output_tokens" v:"min=1"`
	Decoder           DecoderConfig  `json:"decoder"`
	Warmup            Warmup         `json:"warmup"`
	Baseline          Baseline       `json:"baseline"`
	Energy            Energy         `json:"energy"`
	Native            *Native        `json:"native"`
	PyTorch           *PyTorch       `json:"pytorch"`
	VLLM              *VLLM          `json:"vllm"`
	TensorRT          *TensorRT      `json:"tensorrt"`
	SGLang            *SGLang        `json:"sglang" llem:"omitnull"` // left out of the canonical form while nil, so configs of the other backends keep their IDs
	LoRA              *LoRA          `json:"lora"`
	Serving           *Serving       `json:"serving" llem:"omitnull"` // nil: a batch run; left out of the canonical form (and the ID) then
	PassthroughKwargs map[string]any `json:"passthrough_kwargs"`
	OutputDir         *string        `json:"output_dir"`
}

// Backends, in the order llem lists them. Native is the embedded default.
const (
	BackendNative   = "native"
	BackendPyTorch  = "pytorch"
	BackendVLLM     = "vllm"
	BackendTensorRT = "tensorrt"
	BackendSGLang   = "sglang" // server only: a config with it needs a serving section
)

// Backends lists every backend name.
var Backends = []string{BackendNative, BackendPyTorch, BackendVLLM, BackendTensorRT, BackendSGLang}

// IsBackend reports whether s names a backend.
func IsBackend(s string) bool {
	switch s {
	case BackendNative, BackendPyTorch, BackendVLLM, BackendTensorRT, BackendSGLang:
		return true
	}
	return false
}

// ServingBackends are the backends with an OpenAI-compatible server, the
// ones a serving section may use (pytorch has none).
var ServingBackends = []string{BackendNative, BackendVLLM, BackendTensorRT, BackendSGLang}

// PrecisionSupport is the precision table per backend; it is enforced. The
// first entry is the backend's default precision.
var PrecisionSupport = map[string][]string{
	BackendNative:   {"fp32"},
	BackendPyTorch:  {"bf16", "fp16", "fp32"},
	BackendVLLM:     {"bf16", "fp16"},
	BackendTensorRT: {"bf16", "fp16"},
	BackendSGLang:   {"bf16", "fp16"},
}

// Dataset is a named dataset (an alias or a path to a .jsonl file) or a
// synthetic prompt generator. Exactly one of Name and Synthetic is set.
type Dataset struct {
	Name      string
	Synthetic *Synthetic
}

// Dataset aliases. `synthetic` is the synthetic generator with its defaults;
// `aienergyscore` resolves at run time from $LLEM_DATASETS (llem bundles no
// prompt text).
const (
	DatasetSynthetic     = "synthetic"
	DatasetAIEnergyScore = "aienergyscore"
)

// Synthetic generates prompts of a given length from a seeded generator.
type Synthetic struct {
	InputLen     int      `json:"input_len" v:"min=1"`
	OutputLen    int      `json:"output_len" v:"min=1"`
	Seed         int64    `json:"seed"`
	Distribution string   `json:"distribution" v:"enum=fixed|lognormal"`
	Sigma        *float64 `json:"sigma" v:"gt=0,max=10"` // lognormal only; null for fixed
}

// DecoderConfig holds the universal sampling parameters.
type DecoderConfig struct {
	Temperature       float64  `json:"temperature" v:"min=0,max=2"`
	DoSample          bool     `json:"do_sample"`
	TopK              int      `json:"top_k" v:"min=0"`
	TopP              float64  `json:"top_p" v:"min=0,max=1"`
	RepetitionPenalty float64  `json:"repetition_penalty" v:"min=0.1,max=10"`
	MinP              *float64 `json:"min_p" v:"min=0,max=1"`
	MinNewTokens      *int     `json:"min_new_tokens" v:"min=1"`
	Preset            *string  `json:"preset" v:"enum=deterministic|standard|creative|factual"`

	// explicit has a bit per field index set by a YAML key, so that a preset
	// fills only the fields nobody set (explicit keys win, whichever layer set
	// them: base file, shared fields, sweep or experiment entry).
	explicit uint16
}

// Greedy reports whether decoding is greedy: temperature 0 or do_sample false.
func (d DecoderConfig) Greedy() bool { return d.Temperature == 0 || !d.DoSample }

// Warmup configures the warmup before the measured phase.
type Warmup struct {
	Enabled              bool    `json:"enabled"`
	NWarmup              int     `json:"n_warmup" v:"min=1"`
	ThermalFloorSeconds  float64 `json:"thermal_floor_seconds" v:"min=0,max=3600"`
	ConvergenceDetection bool    `json:"convergence_detection"`
	CVThreshold          float64 `json:"cv_threshold" v:"min=0.01,max=0.5"`
	MaxPrompts           int     `json:"max_prompts" v:"min=5"`
	WindowSize           int     `json:"window_size" v:"min=3"`
	MinPrompts           int     `json:"min_prompts" v:"min=1"`
}

// Baseline configures the idle-power measurement.
type Baseline struct {
	Enabled         bool    `json:"enabled"`
	DurationSeconds float64 `json:"duration_seconds" v:"min=1,max=600"`
}

// Energy selects the energy source. Backend nil (YAML null) disables energy
// measurement.
//
// The footprint assumptions (carbon intensity, PUE, price, currency) are
// read by llem-aggregate, whose command line wins over them; they are left
// out of the canonical form while unset, so configs without them keep their ids.
type Energy struct {
	Backend                *string  `json:"backend" v:"enum=auto|nvml|rapl|estimate|zeus|codecarbon"`
	CarbonIntensityGPerKWh *float64 `json:"carbon_intensity_g_per_kwh" v:"min=0,max=5000" llem:"omitnull"`
	PUE                    *float64 `json:"pue" v:"min=1,max=10" llem:"omitnull"`
	PricePerKWh            *float64 `json:"price_per_kwh" v:"min=0" llem:"omitnull"`
	Currency               *string  `json:"currency" llem:"omitnull"`
}

// Native is the section of llem's built-in CPU backend. Architecture fields
// left unset are filled from the preset named by `model` (llem-tiny,
// llem-small); they stay null when weights_path supplies them at run time.
type Native struct {
	Layers      *int    `json:"layers" v:"min=1,max=1024"`
	HiddenSize  *int    `json:"hidden_size" v:"min=1,max=1048576"`
	Heads       *int    `json:"heads" v:"min=1,max=65536"`
	KVHeads     *int    `json:"kv_heads" v:"min=1,max=65536"`
	FFNSize     *int    `json:"ffn_size" v:"min=1,max=4194304"`
	VocabSize   *int    `json:"vocab_size" v:"min=2,max=16777216"`
	MaxSeqLen   *int    `json:"max_seq_len" v:"min=2,max=16777216"`
	Seed        int64   `json:"seed"`
	Threads     int     `json:"threads" v:"min=0,max=65536"` // 0 = all cores
	BatchSize   int     `json:"batch_size" v:"min=1,max=65536"`
	IgnoreEOS   bool    `json:"ignore_eos"` // true: every request produces max_output_tokens
	WeightsPath *string `json:"weights_path"`
}

// PyTorch is the transformers backend's section. Null fields take the
// backend's own default; extra keys are forwarded to from_pretrained.
type PyTorch struct {
	BatchSize             int            `json:"batch_size" v:"min=1"`
	AttnImplementation    *string        `json:"attn_implementation" v:"enum=sdpa|flash_attention_2|flash_attention_3|eager"`
	TorchCompile          *bool          `json:"torch_compile"`
	TorchCompileMode      *string        `json:"torch_compile_mode"`
	TorchCompileBackend   *string        `json:"torch_compile_backend"`
	LoadIn4bit            *bool          `json:"load_in_4bit"`
	LoadIn8bit            *bool          `json:"load_in_8bit"`
	Bnb4bitComputeDtype   *string        `json:"bnb_4bit_compute_dtype" v:"enum=float16|bfloat16|float32"`
	Bnb4bitQuantType      *string        `json:"bnb_4bit_quant_type" v:"enum=nf4|fp4"`
	Bnb4bitUseDoubleQuant *bool          `json:"bnb_4bit_use_double_quant"`
	UseCache              *bool          `json:"use_cache"`
	CacheImplementation   *string        `json:"cache_implementation" v:"enum=static|offloaded_static|sliding_window"`
	NumBeams              *int           `json:"num_beams" v:"min=1"`
	EarlyStopping         *bool          `json:"early_stopping"`
	LengthPenalty         *float64       `json:"length_penalty"`
	NoRepeatNgramSize     *int           `json:"no_repeat_ngram_size" v:"min=0"`
	PromptLookupNumTokens *int           `json:"prompt_lookup_num_tokens" v:"min=1"`
	DeviceMap             *string        `json:"device_map"`
	MaxMemory             map[string]any `json:"max_memory"`
	Revision              *string        `json:"revision"`
	TrustRemoteCode       *bool          `json:"trust_remote_code"`
	NumProcesses          *int           `json:"num_processes" v:"min=1"`
	Extra                 map[string]any `json:"-" llem:"extra"`
}

// VLLM is the vLLM backend's section.
type VLLM struct {
	Engine     *VLLMEngine     `json:"engine"`
	Sampling   *VLLMSampling   `json:"sampling"`
	BeamSearch *VLLMBeamSearch `json:"beam_search"`
	Extra      map[string]any  `json:"-" llem:"extra"`
}

// VLLMEngine holds the arguments of vllm.LLM(...).
type VLLMEngine struct {
	GPUMemoryUtilization   *float64       `json:"gpu_memory_utilization" v:"min=0,lt=1"`
	SwapSpace              *float64       `json:"swap_space" v:"min=0"`
	CPUOffloadGB           *float64       `json:"cpu_offload_gb" v:"min=0"`
	BlockSize              *int           `json:"block_size" v:"oneof=8|16|32"`
	KVCacheDtype           *string        `json:"kv_cache_dtype" v:"enum=auto|fp8|fp8_e5m2|fp8_e4m3"`
	EnforceEager           *bool          `json:"enforce_eager"`
	EnableChunkedPrefill   *bool          `json:"enable_chunked_prefill"`
	MaxNumSeqs             *int           `json:"max_num_seqs" v:"min=1"`
	MaxNumBatchedTokens    *int           `json:"max_num_batched_tokens" v:"min=1"`
	MaxModelLen            *int           `json:"max_model_len" v:"min=1"`
	TensorParallelSize     *int           `json:"tensor_parallel_size" v:"min=1"`
	PipelineParallelSize   *int           `json:"pipeline_parallel_size" v:"min=1"`
	EnablePrefixCaching    *bool          `json:"enable_prefix_caching"`
	Quantization           *string        `json:"quantization" v:"enum=awq|gptq|fp8|fp8_e5m2|fp8_e4m3|marlin|bitsandbytes"`
	SpeculativeModel       *string        `json:"speculative_model"`
	NumSpeculativeTokens   *int           `json:"num_speculative_tokens" v:"min=1"`
	OffloadGroupSize       *int           `json:"offload_group_size" v:"min=0"`
	OffloadNumInGroup      *int           `json:"offload_num_in_group" v:"min=1"`
	OffloadPrefetchStep    *int           `json:"offload_prefetch_step" v:"min=0"`
	OffloadParams          []string       `json:"offload_params"`
	DisableCustomAllReduce *bool          `json:"disable_custom_all_reduce"`
	KVCacheMemoryBytes     *int           `json:"kv_cache_memory_bytes" v:"min=1"`
	CompilationConfig      map[string]any `json:"compilation_config"`
	Attention              *VLLMAttention `json:"attention"`
	Extra                  map[string]any `json:"-" llem:"extra"`
}

// VLLMAttention holds the attention settings (sent as attention_backend etc.).
type VLLMAttention struct {
	Backend                           *string        `json:"backend"`
	FlashAttnVersion                  *int           `json:"flash_attn_version"`
	FlashAttnMaxNumSplitsForCudaGraph *int           `json:"flash_attn_max_num_splits_for_cuda_graph"`
	UsePrefillDecodeAttention         *bool          `json:"use_prefill_decode_attention"`
	UsePrefillQueryQuantization       *bool          `json:"use_prefill_query_quantization"`
	UseCudnnPrefill                   *bool          `json:"use_cudnn_prefill"`
	DisableFlashinferPrefill          *bool          `json:"disable_flashinfer_prefill"`
	DisableFlashinferQQuantization    *bool          `json:"disable_flashinfer_q_quantization"`
	UseTrtllmAttention                *bool          `json:"use_trtllm_attention"`
	UseTrtllmRaggedDeepseekPrefill    *bool          `json:"use_trtllm_ragged_deepseek_prefill"`
	Extra                             map[string]any `json:"-" llem:"extra"`
}

// VLLMSampling holds SamplingParams extras.
type VLLMSampling struct {
	MaxTokens        *int           `json:"max_tokens" v:"min=1"`
	MinTokens        *int           `json:"min_tokens" v:"min=0"`
	PresencePenalty  *float64       `json:"presence_penalty" v:"min=-2,max=2"`
	FrequencyPenalty *float64       `json:"frequency_penalty" v:"min=-2,max=2"`
	IgnoreEOS        *bool          `json:"ignore_eos"`
	N                *int           `json:"n" v:"min=1"`
	Extra            map[string]any `json:"-" llem:"extra"`
}

// VLLMBeamSearch holds BeamSearchParams.
type VLLMBeamSearch struct {
	BeamWidth     *int           `json:"beam_width" v:"min=1"`
	LengthPenalty *float64       `json:"length_penalty"`
	EarlyStopping *bool          `json:"early_stopping"`
	MaxTokens     *int           `json:"max_tokens" v:"min=1"`
	Extra         map[string]any `json:"-" llem:"extra"`
}

// TensorRT is the TensorRT-LLM backend's section.
type TensorRT struct {
	MaxBatchSize int            `json:"max_batch_size" v:"min=1"`
	TPSize       int            `json:"tp_size" v:"min=1"`
	Quantization *string        `json:"quantization" v:"enum=int8_sq|int4_awq|fp8"`
	EnginePath   *string        `json:"engine_path"`
	Extra        map[string]any `json:"-" llem:"extra"`
}

// SGLang is the section of SGLang's server (python3 -m sglang.launch_server),
// a server-only backend: each typed field is the launch_server flag of the
// same name in kebab case (tp_size → --tp-size); null leaves the server's
// own default. Extra keys are passed through the same way (--key-with-dashes
// value; true as a bare flag, false left out, as SGLang's boolean options
// are presence flags).
type SGLang struct {
	TPSize             int            `json:"tp_size" v:"min=1"`
	DPSize             int            `json:"dp_size" v:"min=1"`
	MemFractionStatic  *float64       `json:"mem_fraction_static" v:"gt=0,lt=1"`
	MaxRunningRequests *int           `json:"max_running_requests" v:"min=1"`
	MaxTotalTokens     *int           `json:"max_total_tokens" v:"min=1"`
	ChunkedPrefillSize *int           `json:"chunked_prefill_size" v:"min=-1"` // -1 disables chunked prefill
	SchedulePolicy     *string        `json:"schedule_policy" v:"enum=lpm|random|fcfs|dfs-weight|lof"`
	ContextLength      *int           `json:"context_length" v:"min=1"`
	Quantization       *string        `json:"quantization"`
	KVCacheDtype       *string        `json:"kv_cache_dtype" v:"enum=auto|fp8_e5m2|fp8_e4m3"`
	DisableRadixCache  *bool          `json:"disable_radix_cache"`
	EnableTorchCompile *bool          `json:"enable_torch_compile"`
	AttentionBackend   *string        `json:"attention_backend"`
	Extra              map[string]any `json:"-" llem:"extra"`
}

// Serving makes the experiment a serving run: llem-exec starts the backend's
// OpenAI-compatible server (or uses Endpoint, a server already running),
// drives it with traffic from internal/load and measures the steady-state
// window. Nil: a batch run. Prompts and their lengths come from the config's
// dataset, as for a batch run. Phases: load, idle (IdleS), warmup (WarmupS),
// measure (DurationS or Requests), cooldown (CooldownS).
type Serving struct {
	Endpoint        *string  `json:"endpoint"` // base URL (…/v1) of a running server; nil: llem-exec starts one
	API             string   `json:"api" v:"enum=completions|chat"`
	Arrival         string   `json:"arrival" v:"enum=poisson|constant|gamma"`
	Rate            *float64 `json:"rate" v:"gt=0"`           // requests/s, open loop; exactly one of rate and concurrency
	Burstiness      *float64 `json:"burstiness" v:"gt=0"`     // gamma only: shape; 1 is Poisson
	Concurrency     *int     `json:"concurrency" v:"min=1"`   // closed loop: requests kept in flight
	MaxInFlight     *int     `json:"max_in_flight" v:"min=1"` // open loop cap; null: none
	DurationS       *float64 `json:"duration_s" v:"gt=0"`     // measure window; exactly one of duration_s and requests
	Requests        *int     `json:"requests" v:"min=1"`      // measure window as a request count
	IdleS           float64  `json:"idle_s" v:"min=0"`
	WarmupS         float64  `json:"warmup_s" v:"min=0"`
	CooldownS       float64  `json:"cooldown_s" v:"min=0"`
	Trace           *string  `json:"trace"` // arrival offsets and lengths replayed from a file (JSONL or Azure CSV)
	Seed            *int64   `json:"seed"`  // arrival schedule seed; null: random_seed
	StartupTimeoutS float64  `json:"startup_timeout_s" v:"gt=0"`
	RequestTimeoutS float64  `json:"request_timeout_s" v:"gt=0"`
	SLO             SLO      `json:"slo"`
}

// SLO holds the service-level objectives goodput counts against; a null
// objective is not checked.
type SLO struct {
	TTFTMs *float64 `json:"ttft_ms" v:"gt=0"`
	TPOTMs *float64 `json:"tpot_ms" v:"gt=0"`
	E2EMs  *float64 `json:"e2e_ms" v:"gt=0"`
}

// LoRA names one adapter (exactly one of AdapterID and AdapterPath).
type LoRA struct {
	AdapterID    *string `json:"adapter_id"`
	AdapterPath  *string `json:"adapter_path"`
	MergeWeights bool    `json:"merge_weights"`
}

func ptr[T any](v T) *T { return &v }

// Default returns a config with every default of the schema and no model.
// The backend and the dataset are left unset (empty) and the precision and
// the backend's own section too: Finalize fills them, because their defaults
// depend on the model (DefaultBackend) and on the backend.
func Default() Config {
	return Config{
		N:               100,
		DatasetOrder:    "interleaved",
		RandomSeed:      42,
		MaxInputTokens:  512,
		MaxOutputTokens: 128,
		Decoder:         DecoderConfig{Temperature: 1.0, DoSample: true, TopK: 50, TopP: 1.0, RepetitionPenalty: 1.0},
		Warmup: Warmup{Enabled: true, NWarmup: 5, ThermalFloorSeconds: 60, CVThreshold: 0.05,
			MaxPrompts: 20, WindowSize: 5, MinPrompts: 5},
		Baseline: Baseline{Enabled: true, DurationSeconds: 30},
		Energy:   Energy{Backend: ptr("auto")},
	}
}

func defaultSynthetic() *Synthetic {
	return &Synthetic{InputLen: 512, OutputLen: 128, Seed: 42, Distribution: "fixed"}
}

// Defaults of a section, applied when a section is created (by a YAML key,
// or by Finalize for the config's own backend).
func (s *Native) setDefaults()    { s.BatchSize = 1; s.IgnoreEOS = true }
func (s *PyTorch) setDefaults()   { s.BatchSize = 1 }
func (s *TensorRT) setDefaults()  { s.MaxBatchSize = 8; s.TPSize = 1 }
func (s *SGLang) setDefaults()    { s.TPSize = 1; s.DPSize = 1 }
func (s *Serving) setDefaults()   { *s = defaultServing() }
func (s *Synthetic) setDefaults() { *s = *defaultSynthetic() }

// Decoder presets: applied before validation to the fields no key set.
var decoderPresets = map[string]DecoderConfig{
	"deterministic": {Temperature: 0, DoSample: false},
	"standard":      {Temperature: 1.0, DoSample: true, TopP: 0.95},
	"creative":      {Temperature: 0.8, DoSample: true, TopP: 0.9, RepetitionPenalty: 1.1},
	"factual":       {Temperature: 0.3, DoSample: true},
}

// presetFields lists, per preset, the decoder field indexes it sets
// (0 temperature, 1 do_sample, 3 top_p, 4 repetition_penalty).
var presetFields = map[string][]int{
	"deterministic": {0, 1},
	"standard":      {0, 1, 3},
	"creative":      {0, 1, 3, 4},
	"factual":       {0, 1},
}

func (d *DecoderConfig) markExplicit(i int) { d.explicit |= 1 << uint(i) }

package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, _, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	return c
}

func parseErr(t *testing.T, src string) Errors {
	t.Helper()
	_, _, err := Parse("t.yaml", []byte(src))
	es, ok := err.(Errors)
	if !ok {
		if e, ok2 := err.(*Error); ok2 {
			return Errors{e}
		}
		t.Fatalf("parse %q: want Errors, got %T %v", src, err, err)
	}
	return es
}

// The effective config of the smallest experiment, byte for byte (golden).
func TestEffectiveConfigGolden(t *testing.T) {
	for name, src := range map[string]string{
		"native-default":  "model: llem-tiny\n",
		"pytorch-default": "model: gpt2\nbackend: pytorch\n",
		"vllm-extras":     "model: m\nbackend: vllm\nvllm: {engine: {max_num_seqs: 64, attention: {backend: FLASHINFER}, custom_knob: 3}, zeta: [1, {b: 2, a: 1}]}\n",
		"native-serving":  "model: llem-tiny\nserving: {rate: 4, duration_s: 60, slo: {ttft_ms: 500}}\n",
		"sglang-serving":  "model: org/m\nbackend: sglang\nsglang: {mem_fraction_static: 0.8, enable_mixed_chunk: true}\nserving: {concurrency: 8, duration_s: 100, arrival: poisson}\n",
	} {
		c := mustParse(t, src)
		b, err := c.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		var pretty json.RawMessage = b
		out, _ := json.MarshalIndent(pretty, "", "  ")
		out = append(out, '\n')
		golden := filepath.Join("testdata", name+".json")
		if *update {
			os.WriteFile(golden, out, 0o644)
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if string(want) != string(out) {
			t.Errorf("%s: effective config differs from %s (run go test -update):\n%s", name, golden, out)
		}
	}
}

// An effective config decodes to itself: same bytes, same id.
func TestDecodeRoundTrip(t *testing.T) {
	for _, src := range []string{
		"model: llem-tiny\n",
		"model: llem-small\nnative: {threads: 2, batch_size: 4}\ndecoder: {preset: creative, temperature: 0.5}\nenergy: {backend: null}\n",
		"model: gpt2\nbackend: pytorch\nprecision: fp16\npytorch: {load_in_4bit: true, bnb_4bit_quant_type: nf4, extra_arg: {x: [1, 2.5]}}\npassthrough_kwargs: {foo: bar}\n",
		"model: m\nbackend: vllm\nvllm: {engine: {offload_params: [a, b], compilation_config: {level: 3}}, sampling: {n: 2}}\ndataset: {distribution: lognormal, sigma: 0.3}\n",
		"model: m\nbackend: tensorrt\nlora: {adapter_id: a/b}\noutput_dir: /tmp/x\ndataset: data/p.jsonl\n",
		"model: llem-tiny\nserving: {rate: 2, arrival: gamma, requests: 10, endpoint: 'http://h:1/v1', seed: 5, slo: {e2e_ms: 100}}\n",
		"model: org/m\nbackend: sglang\nsglang: {tp_size: 2, schedule_policy: lpm, x_knob: [1]}\nserving: {trace: t.jsonl, duration_s: 5}\n",
	} {
		c := mustParse(t, src)
		b1, _ := c.Canonical()
		c2, err := Decode(b1)
		if err != nil {
			t.Fatalf("%s: decode: %v\n%s", src, err, b1)
		}
		b2, _ := c2.Canonical()
		if string(b1) != string(b2) {
			t.Errorf("round trip differs:\n%s\n%s", b1, b2)
		}
		id, _ := c.ID()
		sum := sha256.Sum256(b1)
		if id != hex.EncodeToString(sum[:8]) || len(id) != 16 {
			t.Errorf("id %s is not the first 16 hex of SHA-256 of the canonical JSON", id)
		}
		// encoding/json goes through the same form.
		var c3 Config
		if err := json.Unmarshal(b1, &c3); err != nil {
			t.Fatal(err)
		}
		b3, _ := json.Marshal(c3)
		if string(b3) != string(b1) {
			t.Errorf("json.Marshal differs:\n%s\n%s", b1, b3)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, "model: llem-tiny\n")
	if c.Backend != "native" || c.Precision != "fp32" || c.N != 100 || c.Native == nil || *c.Native.Layers != 4 ||
		c.Native.BatchSize != 1 || !c.Native.IgnoreEOS || c.PyTorch != nil || c.Dataset.Synthetic == nil ||
		c.Dataset.Synthetic.InputLen != 512 || *c.Energy.Backend != "auto" {
		t.Errorf("defaults: %+v", c)
	}
	p := mustParse(t, "model: gpt2\nbackend: pytorch\n")
	if p.Precision != "bf16" || p.PyTorch == nil || p.PyTorch.BatchSize != 1 || p.Native != nil {
		t.Errorf("pytorch defaults: %+v", p)
	}
	// Unset and the default give one id.
	a, _ := mustParse(t, "model: gpt2\nbackend: pytorch\n").ID()
	b, _ := mustParse(t, "model: gpt2\nbackend: pytorch\nprecision: bf16\npytorch: {batch_size: 1}\nn: 100\n").ID()
	if a != b {
		t.Errorf("defaults written out change the id: %s %s", a, b)
	}
	d, _ := mustParse(t, "model: gpt2\nbackend: pytorch\nn: 50\n").ID()
	if d == a {
		t.Error("a changed field keeps the id")
	}
	// Explicit null disables energy measurement.
	if e := mustParse(t, "model: llem-tiny\nenergy: {backend: null}\n"); e.Energy.Backend != nil {
		t.Error("energy.backend null should disable")
	}
	z, notes, _ := Parse("t.yaml", []byte("model: llem-tiny\nenergy: {backend: codecarbon}\ndataset: {n: 5}\n"))
	if *z.Energy.Backend != "nvml" || len(notes) != 2 {
		t.Errorf("codecarbon → nvml with a note, dataset.n ignored with a note: %v %v", *z.Energy.Backend, notes)
	}
	if s := mustParse(t, "model: llem-tiny\ndataset: synthetic\n"); s.Dataset.Synthetic == nil {
		t.Error("synthetic alias")
	}
	if s := mustParse(t, "model: llem-tiny\ndataset: aienergyscore\n"); s.Dataset.Name != "aienergyscore" {
		t.Error("aienergyscore alias")
	}
	// A non-preset native model with weights_path: architecture stays null.
	w := mustParse(t, "model: my-llama\nnative: {weights_path: /models/x}\n")
	if w.Native.Layers != nil {
		t.Error("weights_path model should keep null architecture")
	}
}

// Preset expansion, explicit keys winning, from any layer.
func TestDecoderPreset(t *testing.T) {
	c := mustParse(t, "model: llem-tiny\ndecoder: {preset: creative, temperature: 0.5}\n")
	if c.Decoder.Temperature != 0.5 || c.Decoder.TopP != 0.9 || c.Decoder.RepetitionPenalty != 1.1 || !c.Decoder.DoSample {
		t.Errorf("creative + explicit temperature: %+v", c.Decoder)
	}
	c = mustParse(t, "model: llem-tiny\ndecoder: {preset: deterministic}\n")
	if c.Decoder.Temperature != 0 || c.Decoder.DoSample || !c.Decoder.Greedy() || *c.Decoder.Preset != "deterministic" {
		t.Errorf("deterministic: %+v", c.Decoder)
	}
	// Layers: an explicit key in an earlier layer still wins over a later preset.
	base := Default()
	d := NewDecoder("t")
	n1, _ := ParseYAML("t", []byte("decoder: {top_p: 0.5}"))
	n2, _ := ParseYAML("t", []byte("decoder: {preset: standard}\nmodel: x"))
	d.Overlay(&base, n1, "")
	d.Overlay(&base, n2, "")
	base.Finalize()
	if base.Decoder.TopP != 0.5 || base.Decoder.Temperature != 1.0 {
		t.Errorf("layered preset: %+v", base.Decoder)
	}
}

// Every cross-field rule of the original's config model, with path and hint.
func TestValidationRules(t *testing.T) {
	cases := []struct{ src, path, msg string }{
		{"model: x\nbackend: pytorch\nvllm: {}\n", "vllm", "needs backend vllm"},
		{"model: x\nbackend: pytorch\npassthrough_kwargs: {n: 3}\n", "passthrough_kwargs.n", "collides"},
		{"model: x\nbackend: pytorch\npytorch: {load_in_4bit: true, load_in_8bit: true}\n", "pytorch.load_in_8bit", "both true"},
		{"model: x\nbackend: pytorch\npytorch: {torch_compile_mode: max-autotune}\n", "pytorch.torch_compile", "torch_compile is not true"},
		{"model: x\nbackend: pytorch\npytorch: {bnb_4bit_quant_type: nf4}\n", "pytorch.load_in_4bit", "bnb_4bit"},
		{"model: x\nbackend: pytorch\npytorch: {cache_implementation: static, use_cache: false}\n", "pytorch.cache_implementation", "use_cache is false"},
		{"model: x\nbackend: vllm\nvllm: {beam_search: {beam_width: 2}, sampling: {n: 1}}\n", "vllm.beam_search", "both set"},
		{"model: x\nbackend: vllm\nvllm: {engine: {kv_cache_memory_bytes: 100, gpu_memory_utilization: 0.5}}\n", "vllm.engine.kv_cache_memory_bytes", "both set"},
		{"model: x\nbackend: vllm\nvllm: {engine: {speculative_model: y}}\n", "vllm.engine.num_speculative_tokens", "without"},
		{"model: x\nlora: {adapter_id: a, adapter_path: b}\n", "lora", "exactly one"},
		{"model: x\nbackend: vllm\nprecision: fp32\n", "precision", "does not support"},
		{"model: llem-tiny\nprecision: fp16\n", "precision", "does not support"},
		{"model: x\nbackend: tensorrt\nprecision: fp32\n", "precision", "does not support"},
		{"model: custom\nbackend: native\n", "native", "not a native preset"},
		{"model: llem-tiny\nnative: {heads: 3}\n", "native.heads", "does not divide"},
		{"model: llem-tiny\nnative: {kv_heads: 3}\n", "native.kv_heads", "does not divide"},
		{"model: llem-tiny\nmax_output_tokens: 1000\n", "max_output_tokens", "exceed"},
		{"n: 3\n", "model", "required"},
	}
	for _, c := range cases {
		wantRuleError(t, c.src, c.path, c.msg)
	}
}

func TestFieldErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"model: x\nprecison: fp16\n", `t.yaml:2:1: precison: unknown field "precison" (hint: did you mean "precision"?)`},
		{"model: x\nprecision: fp61\n", `t.yaml:2:12: precision: expected one of fp32, fp16, bf16, got "fp61" (hint: did you mean "fp16"?)`},
		{"model: x\nbackend: pytorh\n", `t.yaml:2:10: backend: expected one of native, pytorch, vllm, tensorrt, sglang, got "pytorh" (hint: did you mean "pytorch"?)`},
		{"model: x\ndecoder: {temprature: 1}\n", `t.yaml:2:11: decoder.temprature: unknown field "temprature" (hint: did you mean "temperature"?)`},
		{"model: x\nn: 99999999999999999999\n", `t.yaml:2:4: n: integer 99999999999999999999 is out of range (±2^53) (hint: write e.g. n: 1)`},
		{"model: x\ndecoder: {top_p: .nan}\n", `t.yaml:2:18: decoder.top_p: expected a finite number ≥ 0 and ≤ 1, got the number .nan (hint: write e.g. top_p: 0)`},
		{"model: x\nwarmup: {enabled: yes}\n", `t.yaml:2:19: warmup.enabled: expected true or false, got the string "yes" (hint: write e.g. enabled: true)`},
	}
	for _, c := range cases {
		es := parseErr(t, c.src)
		if es[0].Error() != c.want {
			t.Errorf("got  %s\nwant %s", es[0].Error(), c.want)
		}
	}
	// version: is stripped; backend sections pass unknown keys through.
	c := mustParse(t, "version: 3\nmodel: gpt2\nbackend: pytorch\npytorch: {batch_sise: 2, my_flag: true}\n")
	if c.PyTorch.Extra["my_flag"] != true || c.PyTorch.Extra["batch_sise"] == nil {
		t.Errorf("extras: %v", c.PyTorch.Extra)
	}
	// A dotted key lands in its section (CLI-style override).
	c = mustParse(t, "model: gpt2\nbackend: vllm\nvllm.engine.attention.backend: FLASHINFER\n")
	if *c.VLLM.Engine.Attention.Backend != "FLASHINFER" {
		t.Error("dotted key")
	}
}

func TestFieldLookup(t *testing.T) {
	c := mustParse(t, "model: gpt2\nbackend: vllm\nvllm: {engine: {attention: {backend: X}, knob: {deep: 1}}}\n")
	for path, want := range map[string]any{"vllm.engine.attention.backend": "X", "vllm.engine.knob.deep": int64(1), "n": int64(100), "dataset": "aienergyscore"} {
		if v, ok := c.Field(path); !ok || v != want {
			t.Errorf("%s: %v %v", path, v, ok)
		}
	}
	if _, ok := c.Field("pytorch.batch_size"); ok {
		t.Error("absent section")
	}
}

// The memoizing Encoder writes the same bytes as AppendCanonical over a
// sequence of configs that share and replace sections.
func TestEncoderMatchesCanonical(t *testing.T) {
	srcs := []string{
		"model: llem-tiny\n",
		"model: llem-tiny\nn: 5\n",
		"model: llem-small\nnative: {threads: 2}\n",
		"model: gpt2\nbackend: pytorch\npytorch: {x: 1}\n",
		"model: gpt2\nbackend: pytorch\npytorch: {x: 2}\n",
		"model: m\nbackend: vllm\nvllm: {engine: {max_num_seqs: 4}}\ndecoder: {preset: creative}\n",
		"model: llem-tiny\nserving: {rate: 2, requests: 9}\n",
		"model: m\nbackend: sglang\nserving: {rate: 3, requests: 9}\n",
		"model: llem-tiny\n",
	}
	var enc Encoder
	base := mustParse(t, srcs[0])
	for round := 0; round < 2; round++ {
		for _, s := range srcs {
			c := mustParse(t, s)
			if round == 1 { // share sections with a base, as a sweep does
				cp := *base
				cp.N = c.N
				c = &cp
			}
			want, _ := c.Canonical()
			got, err := enc.Append(nil, c)
			if err != nil || string(got) != string(want) {
				t.Fatalf("%q: encoder differs:\n%s\n%s", s, got, want)
			}
		}
	}
}

// wantRuleError checks that parsing src fails with an error at path whose
// message holds msg, with a hint and a line.
func wantRuleError(t *testing.T, src, path, msg string) {
	t.Helper()
	es := parseErr(t, src)
	for _, e := range es {
		if e.Path == path && strings.Contains(e.Message, msg) && e.Hint != "" && e.Line > 0 {
			return
		}
	}
	t.Errorf("%q: want %s: %q with a hint and a line, got %v", src, path, msg, es)
}

package study

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/config"
)

// Studies written for LLenergyMeasure v0.8 (its own tests' and docs' forms),
// expanded by llem; docs/expand.md lists the differences asserted here.

// summary writes backend/precision and the given fields of each config.
func summary(cs []*config.Config, fields ...string) string {
	var out []string
	for _, c := range cs {
		s := c.Backend + "/" + c.Precision
		for _, f := range fields {
			v, _ := c.Field(f)
			s += "/" + config.FormatValue(v)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func expandErr(t *testing.T, src string) string {
	t.Helper()
	_, err := Expand("s.yaml", []byte(src), Options{})
	if err == nil {
		t.Fatalf("want an error for\n%s", src)
	}
	return err.Error()
}

// Item: a top-level backend list with backend-scoped axes is one grid per
// backend, the same configs as the list under sweep:.
func TestV08TopLevelBackendList(t *testing.T) {
	top := `model: gpt2
backend: [pytorch, vllm]
sweep:
  precision: [fp16, bf16]
  pytorch.batch_size: [1, 8]
  vllm.engine.max_num_seqs: [64, 256]
`
	cs := configs(t, expand(t, top))
	want := "pytorch/fp16/1/null pytorch/fp16/8/null pytorch/bf16/1/null pytorch/bf16/8/null " +
		"vllm/fp16/null/64 vllm/fp16/null/256 vllm/bf16/null/64 vllm/bf16/null/256"
	if got := summary(cs, "pytorch.batch_size", "vllm.engine.max_num_seqs"); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	for _, c := range cs {
		if c.Backend == "pytorch" && c.VLLM != nil || c.Backend == "vllm" && c.PyTorch != nil {
			t.Errorf("%s config carries another backend's section", c.Backend)
		}
	}
	swept := strings.Replace(top, "backend: [pytorch, vllm]\nsweep:\n", "sweep:\n  backend: [pytorch, vllm]\n", 1)
	a, b := expand(t, top), expand(t, swept)
	if a.Hash != b.Hash || a.Unique != 8 {
		t.Errorf("top-level list %s (%d configs), sweep axis %s", a.Hash, a.Unique, b.Hash)
	}
	// Without a sweep: one config per backend.
	cs = configs(t, expand(t, "model: gpt2\nbackend: [pytorch, vllm]\nprecision: fp16\n"))
	if got := summary(cs); got != "pytorch/fp16 vllm/fp16" {
		t.Errorf("no sweep: %s", got)
	}
	// Both places, a bad name, an empty list: errors with positions.
	for src, want := range map[string]string{
		"model: gpt2\nbackend: [pytorch]\nsweep:\n  backend: [vllm]\n": "s.yaml:2:1: backend: backend is a list at the top level and a sweep axis (sweep.backend, line 4)",
		"model: gpt2\nbackend: [pytorch, vlm]\n":                       `s.yaml:2:20: backend[1]: expected one of native, pytorch, vllm, tensorrt, sglang, got "vlm" (hint: did you mean "vllm"?)`,
		"model: gpt2\nbackend: []\n":                                   "s.yaml:2:10: backend: an empty backend list",
	} {
		if got := expandErr(t, src); !strings.Contains(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

// Item: the default backend follows the model (a native preset or a native:
// section: native; anything else pytorch, as in v0.8), and so does the
// default dataset (synthetic on native, aienergyscore otherwise).
func TestV08DefaultBackendFromModel(t *testing.T) {
	cases := []struct{ src, want string }{
		{"model: gpt2\nprecision: fp16\n", "pytorch/fp16/aienergyscore/1"},
		{"model: gpt2\nsweep:\n  pytorch.batch_size: [1, 4]\n", "pytorch/bf16/aienergyscore/1 pytorch/bf16/aienergyscore/4"},
		{"model: llem-tiny\n", `native/fp32/{"distribution":"fixed","input_len":512,"output_len":128,"seed":42,"sigma":null}/null`},
		{"model: my-weights\nnative: {weights_path: /w/model.safetensors}\n", `native/fp32/{"distribution":"fixed","input_len":512,"output_len":128,"seed":42,"sigma":null}/null`},
		{"model: gpt2\ndataset: {input_len: 64}\n", `pytorch/bf16/{"distribution":"fixed","input_len":64,"output_len":128,"seed":42,"sigma":null}/1`},
		// A model axis over both kinds: each config takes its model's backend.
		{"sweep:\n  model: [llem-tiny, gpt2]\n", `native/fp32/{"distribution":"fixed","input_len":512,"output_len":128,"seed":42,"sigma":null}/null pytorch/bf16/aienergyscore/1`},
		// Explicit entries decide one by one.
		{"experiments:\n  - {model: llem-small}\n  - {model: Qwen/Qwen2.5-0.5B, precision: fp16}\n", `native/fp32/{"distribution":"fixed","input_len":512,"output_len":128,"seed":42,"sigma":null}/null pytorch/fp16/aienergyscore/1`},
	}
	for _, c := range cases {
		if got := summary(configs(t, expand(t, c.src)), "dataset", "pytorch.batch_size"); got != c.want {
			t.Errorf("%q:\ngot  %s\nwant %s", c.src, got, c.want)
		}
	}
	got := expandErr(t, "sweep:\n  model: [llem-tiny, gpt2]\n  pytorch.batch_size: [1, 4]\n")
	if !strings.Contains(got, "s.yaml:3:3: sweep.pytorch.batch_size: axis is scoped to backend pytorch, but the sweep's experiments use the backend each model implies") {
		t.Errorf("scoped axis under mixed models: %s", got)
	}
}

// Item: every deliberate difference from v0.8, on v0.8's own forms.
func TestV08DeepMerges(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "common.yaml"), []byte("model: gpt2\nbackend: pytorch\ndecoder: {temperature: 0.5, top_k: 10}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// base: deep-merged (v0.8 replaced the whole decoder: temperature 1.0).
	s, err := Expand(filepath.Join(dir, "s.yaml"), []byte("base: common.yaml\ndecoder: {top_k: 5}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(configs(t, s), "decoder.temperature", "decoder.top_k"); got != "pytorch/bf16/0.5/5" {
		t.Errorf("base deep merge: %s", got)
	}
	// An explicit entry is deep-merged over the shared fields (v0.8: the
	// entry's pytorch section replaced the shared one, batch_size 1).
	cs := configs(t, expand(t, "model: gpt2\nbackend: pytorch\npytorch: {batch_size: 4}\nexperiments:\n  - {pytorch: {attn_implementation: sdpa}}\n"))
	if got := summary(cs, "pytorch.batch_size", "pytorch.attn_implementation"); got != "pytorch/bf16/4/sdpa" {
		t.Errorf("explicit deep merge: %s", got)
	}
	// A dict-valued axis is deep-merged too (v0.8: top_k back to 50).
	cs = configs(t, expand(t, "model: gpt2\nbackend: pytorch\ndecoder: {top_k: 10}\nsweep:\n  decoder: [{temperature: 0.0}, {temperature: 0.5}]\n"))
	if got := summary(cs, "decoder.temperature", "decoder.top_k"); got != "pytorch/bf16/0/10 pytorch/bf16/0.5/10" {
		t.Errorf("dict-valued axis: %s", got)
	}
}

func TestV08OtherDifferences(t *testing.T) {
	// Shared model + experiments, no sweep: only the entries run (v0.8 also
	// ran the shared config: 3 configs).
	cs := configs(t, expand(t, "model: gpt2\nbackend: pytorch\nexperiments:\n  - {n: 50}\n  - {n: 60}\n"))
	if got := summary(cs, "n"); got != "pytorch/bf16/50 pytorch/bf16/60" {
		t.Errorf("experiments only: %s", got)
	}
	// The backend axis is the slowest whatever its place (v0.8: file order,
	// fp16 pytorch, fp16 vllm, bf16 pytorch, bf16 vllm).
	cs = configs(t, expand(t, "model: gpt2\nsweep:\n  precision: [fp16, bf16]\n  backend: [pytorch, vllm]\n"))
	if got := summary(cs); got != "pytorch/fp16 pytorch/bf16 vllm/fp16 vllm/bf16" {
		t.Errorf("backend axis order: %s", got)
	}
	// Refused at expand time (v0.8 coerced the strings, kept the last
	// repeated key, failed unknown datasets at run time, and accepted any
	// runner string until the run).
	for src, want := range map[string]string{
		"model: gpt2\nbackend: pytorch\nexperiments:\n  - {n: 50}\n  - {n: 60, precison: fp16}\n": `s.yaml:5:13: experiments[1].precison: unknown field "precison"; the whole study is refused, not only experiments[1] (hint: did you mean "precision"?)`,
		"model: gpt2\nn: \"50\"\n":                                              `s.yaml:2:4: n: expected an integer ≥ 1, got the string "50"`,
		"model: gpt2\npytorch: {torch_compile: \"true\"}\n":                     `s.yaml:2:26: pytorch.torch_compile: expected true or false, got the string "true"`,
		"model: gpt2\nn: 5\nn: 6\n":                                             `s.yaml:3:1: n: key "n" appears twice`,
		"model: gpt2\ndataset: wikitext\n":                                      `s.yaml:2:10: dataset: unknown dataset "wikitext"`,
		"model: gpt2\nrunners: {pytorch: \"singularity:x\"}\nsweep: {n: [1]}\n": `s.yaml:2:20: runners.pytorch: unknown runner "singularity:x"`,
	} {
		if got := expandErr(t, src); !strings.Contains(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

package study

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/llem/llem/internal/config"
)

func aliasBomb() string {
	var b strings.Builder
	b.WriteString("model: llem-tiny\npassthrough_kwargs:\n  a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n")
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		fmt.Fprintf(&b, "  %s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = n
	}
	return b.String()
}

func deepNesting() string {
	return "model: llem-tiny\npassthrough_kwargs: {x: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}\n"
}

// badStudies lists bad study files: each must fail with exit-2 errors that
// name bad.yaml:line:col, the field path, what was expected and a hint.
var badStudies = []struct {
	name, src string
	want      string // "line:col path" of the first error
	msg       string // part of its message or hint
}{
	{"unknown key", "modle: llem-tiny\n", "1:1 modle", `did you mean "model"?`},
	{"misspelt study key", "model: x\nsweeps: {n: [1]}\n", "2:1 sweeps", `did you mean "sweep"?`},
	{"misspelt enum", "model: x\nprecision: fp61\n", "2:12 precision", `did you mean "fp16"?`},
	{"sweep value type", "model: x\nbackend: pytorch\nsweep:\n  pytorch.batch_size: [1, eight]\n", "4:27 sweep.pytorch.batch_size[1]", "expected an integer ≥ 1"},
	{"sweep path misspelt", "model: x\nsweep:\n  decoder.temprature: [0, 1]\n", "3:3 sweep.decoder.temprature", `did you mean "temperature"?`},
	{"scoped axis, absent backend", "model: x\nbackend: vllm\nsweep:\n  pytorch.batch_size: [1, 4]\n", "4:3 sweep.pytorch.batch_size", "scoped to backend pytorch"},
	{"empty axis", "model: x\nsweep:\n  n: []\n", "3:6 sweep.n", "at least one value"},
	{"axis as mapping", "model: x\nsweep:\n  decoder: {temperature: [0, 1]}\n", "3:12 sweep.decoder", "use dotted keys"},
	{"sweep not a mapping", "model: x\nsweep: [n, 1]\n", "2:8 sweep", "expected a mapping"},
	{"experiments not a list", "model: x\nexperiments: {model: y}\n", "2:14 experiments", "expected a list"},
	{"experiment not a mapping", "model: x\nexperiments:\n  - llem-tiny\n", "3:5 experiments[0]", "expected a mapping"},
	{"experiment unknown key", "model: x\nexperiments:\n  - {modl: y}\n", "3:6 experiments[0].modl", `did you mean "model"?`},
	{"execution unknown key", "model: x\nexecution: {n_cycle: 3}\n", "2:13 execution.n_cycle", `did you mean "n_cycles"?`},
	{"cycle order", "model: x\nexecution: {cycle_order: interleave}\n", "2:26 execution.cycle_order", `did you mean "interleaved"?`},
	{"zero cycles", "model: x\nexecution: {n_cycles: 0}\n", "2:23 execution.n_cycles", "≥ 1"},
	{"negative gap", "model: x\nexecution: {cycle_gap_seconds: -5}\n", "2:32 execution.cycle_gap_seconds", "≥ 0"},
	{"runner backend", "model: x\nrunners: {pytroch: docker}\n", "2:11 runners.pytroch", `did you mean "pytorch"?`},
	{"runner value", "model: x\nrunners: {vllm: 'singularity:img'}\n", "2:17 runners.vllm", "docker:<image>"},
	{"missing base", "base: nowhere.yaml\nmodel: x\n", "1:7 base", "cannot read base file"},
	{"base not a path", "base: [a]\nmodel: x\n", "1:7 base", "expected the path"},
	{"unsafe name", "name: ../up\nmodel: x\n", "1:7 name", "folder name"},
	{"float overflow", "model: x\ndecoder: {temperature: 1e400}\n", "2:24 decoder.temperature", "finite"},
	{"int overflow", "model: x\nn: 99999999999999999999\n", "2:4 n", "out of range"},
	{"alias bomb", aliasBomb(), "", "alias"},
	{"deep nesting", deepNesting(), "2:89 passthrough_kwargs", "nested more than"},
	{"huge string", "model: " + strings.Repeat("x", config.MaxString+1) + "\n", "1:8 model", "longer than the limit"},
	{"duplicate key", "model: a\nmodel: b\n", "2:1 model", "appears twice"},
	{"merge key", "model: x\ndecoder:\n  <<: {temperature: 0}\n", "3:3 decoder", "merge keys"},
	{"section of wrong type", "model: x\ndecoder: 5\n", "2:10 decoder", "expected a mapping"},
	{"unknown dataset", "model: x\ndataset: wikitxt\n", "2:10 dataset", "unknown dataset"},
	{"dataset alias misspelt", "model: x\ndataset: synthetc\n", "2:10 dataset", `did you mean "synthetic"?`},
	{"native range", "model: llem-tiny\nnative: {heads: 0}\n", "2:17 native.heads", "≥ 1"},
	{"backend axis value", "model: x\nsweep:\n  backend: [pytorch, vlm]\n", "3:22 sweep.backend[1]", `did you mean "vllm"?`},
	{"yaml syntax", "model: x\nsweep: n: 1\n", "2:1 ", "invalid YAML"},
	{"tab indentation", "model: x\nsweep:\n\tn: [1]\n", "3:1 ", "invalid YAML"},
	{"empty file", "", "1:1 ", "empty"},
	{"top-level list", "- model: x\n", "1:1 ", "expected a mapping"},
	{"two documents", "model: x\n---\nmodel: y\n", "2:1 ", "more than one YAML document"},
	{"energy backend", "model: x\nenergy: {backend: nvlm}\n", "2:19 energy.backend", `did you mean "nvml"?`},
	{"bool as string", "model: x\nwarmup: {enabled: 'no'}\n", "2:19 warmup.enabled", "true or false"},
}

func TestBadStudies(t *testing.T) {
	if len(badStudies) < 25 {
		t.Fatalf("only %d bad studies", len(badStudies))
	}
	for _, c := range badStudies {
		t.Run(c.name, func(t *testing.T) {
			_, err := Expand("bad.yaml", []byte(c.src), Options{})
			var es config.Errors
			var e1 *config.Error
			switch {
			case errors.As(err, &es) && len(es) > 0:
				e1 = es[0]
			case errors.As(err, &e1):
			default:
				t.Fatalf("want config errors, got %T %v", err, err)
			}
			if e1.File != "bad.yaml" || e1.Line < 1 || e1.Col < 1 || e1.Hint == "" {
				t.Errorf("error lacks file:line:col or hint: %v", e1)
			}
			if c.want != "" {
				got := fmt.Sprintf("%d:%d %s", e1.Line, e1.Col, e1.Path)
				if got != c.want {
					t.Errorf("got %q, want %q: %v", got, c.want, e1)
				}
				if !strings.HasSuffix(c.want, " ") && e1.Path == "" {
					t.Errorf("no field path: %v", e1)
				}
			} else if e1.Path == "" {
				t.Errorf("no field path: %v", e1)
			}
			if !strings.Contains(e1.Error(), c.msg) {
				t.Errorf("%q not in %v", c.msg, e1)
			}
			if strings.Count(e1.Error(), "\n") > 0 {
				t.Errorf("error is not one line: %q", e1.Error())
			}
		})
	}
}

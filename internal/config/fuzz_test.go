package config

import (
	"github.com/llem/llem/internal/fuzzguard"
	"testing"
)

// FuzzParse: any bytes give a config or positioned errors, never a panic; a
// config re-encodes to itself through Decode.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"model: llem-tiny\n",
		"model: gpt2\nbackend: pytorch\npytorch: {batch_size: 4, x: [1, {a: b}]}\ndecoder: {preset: creative}\n",
		"model: m\nbackend: vllm\nvllm: {engine: {attention: {backend: X}}, sampling: {n: 2}}\ndataset: {distribution: lognormal}\n",
		"model: x\nn: 1e400\nprecision: fp61\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fuzzer does not notice a hang: a slow input panics the worker,
		// so that it is kept as a crasher.
		defer fuzzguard.Start("FuzzParse")()
		c, _, err := Parse("f.yaml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		b, err := c.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Decode(b)
		if err != nil {
			t.Fatalf("effective config does not decode: %v\n%s", err, b)
		}
		if b2, _ := c2.Canonical(); string(b2) != string(b) {
			t.Fatalf("round trip:\n%s\n%s", b, b2)
		}
	})
}

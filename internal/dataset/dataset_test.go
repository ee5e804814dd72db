package dataset

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/llem/llem/internal/config"
)

func cfgFor(name string, n int, ord string) *config.Config {
	c := config.Default()
	c.Dataset = config.Dataset{Name: name}
	c.N, c.DatasetOrder = n, ord
	return &c
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const odd = `{"_provenance":"test","_license":"none"}

{"prompt": "  first  ", "source": "b"}
{"prompt": "", "text": "second from text", "source": "a"}` + "\r\n" + `   
{"instruction": "third", "source": "b"}
{"id": 7}
{"prompt": 12, "question": "fourth", "source": "a"}
{"input": "fifth"}
`

func TestJSONLOddLines(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "p.jsonl", odd)
	got, info, err := LoadInfo(cfgFor("p.jsonl", 5, "interleaved"), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"first", "second from text", "third", "fourth", "fifth"}
	if !slices.Equal(got, want) {
		t.Fatalf("prompts %q, want %q", got, want)
	}
	if info.Blank != 2 || info.Meta != 1 || info.NoText != 1 || info.Read != 7 {
		t.Fatalf("info %+v", info)
	}
	// grouped: stable by source; "" (no source) first
	got, err = Load(cfgFor("p.jsonl", 5, "grouped"), dir)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"fifth", "second from text", "fourth", "first", "third"}
	if !slices.Equal(got, want) {
		t.Fatalf("grouped %q, want %q", got, want)
	}
	// shuffled: a permutation, the same for the same seed, another for another
	c := cfgFor("p.jsonl", 5, "shuffled")
	a, _ := Load(c, dir)
	b, _ := Load(c, dir)
	if !slices.Equal(a, b) {
		t.Fatalf("shuffle not deterministic: %q vs %q", a, b)
	}
	s := slices.Clone(a)
	sort.Strings(s)
	w := []string{"fifth", "first", "fourth", "second from text", "third"}
	if !slices.Equal(s, w) {
		t.Fatalf("shuffle lost records: %q", a)
	}
	diff := false
	for seed := int64(1); seed < 20 && !diff; seed++ {
		c.RandomSeed = seed
		x, _ := Load(c, dir)
		diff = !slices.Equal(x, a)
	}
	if !diff {
		t.Fatal("shuffle ignores random_seed")
	}
}

func TestJSONLErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ body, want string }{
		{`{"prompt":"a"}` + "\n" + `{"prompt": "b"` + "\n", "bad.jsonl:2: invalid JSON"},
		{`{"prompt":"a"}` + "\n\n" + `["x"]` + "\n", "bad.jsonl:3: not a JSON object"},
		{`null`, "bad.jsonl:1: not a JSON object"},
		{`{"prompt":"a"}`, "1 usable prompts, fewer than n = 2"},
	} {
		write(t, dir, "bad.jsonl", c.body)
		_, err := Load(cfgFor("bad.jsonl", 2, "grouped"), dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.body, err, c.want)
		}
	}
	// interleaved stops after n records: a bad line later is not read
	write(t, dir, "late.jsonl", `{"prompt":"a"}`+"\n"+`garbage`)
	if got, err := Load(cfgFor("late.jsonl", 1, "interleaved"), dir); err != nil || got[0] != "a" {
		t.Fatalf("interleaved n=1: %q, %v", got, err)
	}
	// a line over the limit
	write(t, dir, "long.jsonl", `{"prompt":"`+strings.Repeat("x", MaxLineBytes)+`"}`)
	if _, err := Load(cfgFor("long.jsonl", 1, "interleaved"), dir); err == nil || !strings.Contains(err.Error(), "long.jsonl:1: line longer") {
		t.Fatalf("long line: %v", err)
	}
	if _, err := Load(cfgFor("missing.jsonl", 1, "interleaved"), dir); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestAIEnergyScore(t *testing.T) {
	t.Setenv(EnvDatasets, "")
	_, err := Load(cfgFor(config.DatasetAIEnergyScore, 1, "interleaved"), "")
	if err == nil || !strings.Contains(err.Error(), "LLEM_DATASETS is not set") {
		t.Fatalf("unset: %v", err)
	}
	dir := t.TempDir()
	t.Setenv(EnvDatasets, dir)
	if _, err := Load(cfgFor(config.DatasetAIEnergyScore, 1, "interleaved"), ""); err == nil || !strings.Contains(err.Error(), "aienergyscore.jsonl") {
		t.Fatalf("missing: %v", err)
	}
	write(t, dir, "aienergyscore.jsonl", `{"_provenance":"x"}`+"\n"+`{"prompt":"p1"}`+"\n")
	got, err := Load(cfgFor(config.DatasetAIEnergyScore, 1, "interleaved"), "/elsewhere")
	if err != nil || got[0] != "p1" {
		t.Fatalf("%q, %v", got, err)
	}
}

func synth(n, inputLen int, seed int64, dist string, sigma float64) (*config.Config, []string, error) {
	c := config.Default()
	s := &config.Synthetic{InputLen: inputLen, OutputLen: 16, Seed: seed, Distribution: dist}
	if dist == "lognormal" {
		s.Sigma = &sigma
	}
	c.Dataset = config.Dataset{Synthetic: s}
	c.N = n
	p, err := Load(&c, "")
	return &c, p, err
}

func TestSyntheticFixed(t *testing.T) {
	_, a, err := synth(20, 100, 7, "fixed", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, b, _ := synth(30, 100, 7, "fixed", 0)
	_, c, _ := synth(20, 100, 8, "fixed", 0)
	if !slices.Equal(a, b[:20]) {
		t.Fatal("the first 20 prompts change with n")
	}
	if slices.Equal(a, c) {
		t.Fatal("the prompts do not change with the seed")
	}
	seen := map[string]bool{}
	for _, p := range a {
		if len(p) != 100 {
			t.Fatalf("prompt of %d bytes, want 100: %q", len(p), p)
		}
		if seen[p] {
			t.Fatalf("repeated prompt %q", p)
		}
		seen[p] = true
		if strings.Count(p, " ") < 8 {
			t.Fatalf("not words: %q", p)
		}
	}
}

// TestSyntheticLognormal: over 4000 prompts, the median length is input_len
// and the standard deviation of log length is sigma (within sampling error).
func TestSyntheticLognormal(t *testing.T) {
	const n, median, sigma = 4000, 200, 0.5
	_, ps, err := synth(n, median, 3, "lognormal", sigma)
	if err != nil {
		t.Fatal(err)
	}
	lens := make([]float64, n)
	var mean float64
	for i, p := range ps {
		lens[i] = float64(len(p))
		mean += math.Log(lens[i]) / n
	}
	var v float64
	for _, l := range lens {
		v += (math.Log(l) - mean) * (math.Log(l) - mean) / (n - 1)
	}
	sort.Float64s(lens)
	if m := lens[n/2]; math.Abs(m-median)/median > 0.05 {
		t.Errorf("median length %g, want %d ± 5%%", m, median)
	}
	if s := math.Sqrt(v); math.Abs(s-sigma)/sigma > 0.05 {
		t.Errorf("sd of log length %g, want %g ± 5%%", s, sigma)
	}
	if lens[0] == lens[n-1] {
		t.Error("all lengths equal")
	}
}

func TestSyntheticOrders(t *testing.T) {
	c, base, _ := synth(12, 40, 1, "fixed", 0)
	c.DatasetOrder = "grouped" // no source: generation order
	g, _ := Load(c, "")
	if !slices.Equal(g, base) {
		t.Fatal("grouped synthetic changed the order")
	}
	c.DatasetOrder = "shuffled"
	s, _ := Load(c, "")
	if slices.Equal(s, base) {
		t.Fatal("shuffled synthetic kept the order")
	}
	ss, sb := slices.Clone(s), slices.Clone(base)
	sort.Strings(ss)
	sort.Strings(sb)
	if !slices.Equal(ss, sb) {
		t.Fatal("shuffled synthetic is not a permutation")
	}
	if _, _, err := synth(1, 10, 1, "lognormal", 0); err == nil {
		t.Fatal("lognormal without sigma accepted")
	}
}

// FuzzJSONL: any file content gives prompts or an error naming file:line,
// never a panic, and every prompt returned is non-empty and trimmed.
func FuzzJSONL(f *testing.F) {
	f.Add([]byte(odd))
	f.Add([]byte("{\"prompt\":\"a\"}\r\n\n{\"_x\":1}\n[1]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.jsonl")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := Load(cfgFor(p, 1, "grouped"), "")
		if err != nil {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for _, s := range got {
			if s == "" || s != strings.TrimSpace(s) {
				t.Fatalf("prompt %q", s)
			}
		}
	})
}

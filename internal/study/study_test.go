package study

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
)

func expand(t *testing.T, src string, opts ...Options) *Study {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := Expand("s.yaml", []byte(src), o)
	if err != nil {
		t.Fatalf("expand: %v\n%s", err, src)
	}
	return s
}

// runs collects every run, checking each record against the record type
// strictly and against Record (the typed form).
func runs(t *testing.T, s *Study) []record.Experiment {
	t.Helper()
	var buf bytes.Buffer
	if err := s.WriteNDJSON(&buf, false); err != nil {
		t.Fatal(err)
	}
	var out []record.Experiment
	r := record.NewReader(&buf, "out")
	for r.Next() {
		var e record.Experiment
		if err := r.Line().Decode(&e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	i := 0
	if err := s.Each(func(run *Run) error {
		want := s.Record(run)
		got := out[i]
		if !reflect.DeepEqual(want, got) {
			t.Errorf("run %d: ndjson and Record differ:\n%s\n%s", i, brief(got), brief(want))
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if i != len(out) {
		t.Fatalf("Each gave %d runs, ndjson %d", i, len(out))
	}
	return out
}

// configs returns the unique configs of cycle 1 in expansion order.
func brief(e record.Experiment) string {
	e.Config = nil
	b, _ := json.Marshal(e)
	return string(b)
}

func configs(t *testing.T, s *Study) []*config.Config {
	t.Helper()
	s.Order, s.NCycles = OrderSequential, 1
	s.prefix = s.recordPrefix()
	var out []*config.Config
	for _, e := range runs(t, s) {
		c, err := config.Decode(e.Config)
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := c.ID(); id != e.ID || e.RunID != e.ID+"-c1" {
			t.Fatalf("id %s does not match the config (%s)", e.ID, id)
		}
		out = append(out, c)
	}
	return out
}

// Universal Cartesian product.
func TestUniversalProduct(t *testing.T) {
	s := expand(t, "model: gpt2\nbackend: pytorch\nsweep:\n  precision: [fp16, bf16]\n  n: [50, 100]\n")
	cs := configs(t, s)
	got := []string{}
	for _, c := range cs {
		got = append(got, c.Precision+"/"+itoa(c.N))
	}
	if strings.Join(got, " ") != "fp16/50 fp16/100 bf16/50 bf16/100" || s.Skipped != 0 {
		t.Errorf("got %v, skipped %d", got, s.Skipped)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// Backend-scoped axes form per-backend grids; 3- and
// 4-segment paths land at their nested fields.
func TestScopedAxes(t *testing.T) {
	s := expand(t, `model: m
sweep:
  backend: [pytorch, vllm]
  precision: [fp16, bf16]
  pytorch.batch_size: [1, 8]
  vllm.engine.max_num_seqs: [64, 256]
  vllm.engine.attention.backend: [FLASH_ATTN]
`)
	cs := configs(t, s)
	if len(cs) != 8 || s.Skipped != 0 {
		t.Fatalf("want 8 configs, got %d (skipped %d)", len(cs), s.Skipped)
	}
	for i, c := range cs {
		if i < 4 {
			if c.Backend != "pytorch" || c.VLLM != nil || c.PyTorch == nil {
				t.Errorf("config %d: %s", i, c.Backend)
			}
			continue
		}
		if c.Backend != "vllm" || c.PyTorch != nil || c.VLLM.Engine.MaxNumSeqs == nil ||
			c.VLLM.Engine.Attention == nil || *c.VLLM.Engine.Attention.Backend != "FLASH_ATTN" || len(c.VLLM.Engine.Extra) != 0 {
			t.Errorf("config %d: %+v", i, c.VLLM)
		}
	}
	if *cs[5].VLLM.Engine.MaxNumSeqs != 256 || cs[1].PyTorch.BatchSize != 8 {
		t.Error("product order: first axis slowest")
	}
}

// Defects of the original, fixed.
func TestDottedUniversalAxisSingleBackend(t *testing.T) {
	cs := configs(t, expand(t, "model: llem-tiny\nsweep:\n  decoder.temperature: [0.0, 1.5]\n"))
	if len(cs) != 2 || cs[0].Backend != "native" || cs[0].Decoder.Temperature != 0 || cs[1].Decoder.Temperature != 1.5 {
		t.Errorf("decoder.temperature axis: %+v", cs)
	}
}

func TestScopedAxisForAbsentBackend(t *testing.T) {
	_, err := Expand("s.yaml", []byte("model: m\nbackend: vllm\nsweep:\n  pytorch.batch_size: [1, 4]\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "s.yaml:4:3: sweep.pytorch.batch_size: axis is scoped to backend pytorch") {
		t.Fatalf("want an error naming the axis, got %v", err)
	}
}

func TestDuplicatesKeptOnce(t *testing.T) {
	s := expand(t, "model: llem-tiny\nsweep:\n  model: [llem-tiny, llem-tiny, llem-small]\n  n: [100, 100.0]\nexperiments:\n  - {model: llem-small}\n")
	if s.Unique != 2 || s.Duplicates != 5 || s.Generated != 7 {
		t.Errorf("unique %d duplicates %d generated %d", s.Unique, s.Duplicates, s.Generated)
	}
	if !strings.Contains(strings.Join(s.Summary(), "\n"), "duplicate") {
		t.Error("no note on duplicates")
	}
	rs := runs(t, s)
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.RunID] {
			t.Errorf("run_id %s twice", r.RunID)
		}
		seen[r.RunID] = true
	}
}

// Invalid combinations are skipped with reasons.
func TestSkipping(t *testing.T) {
	s := expand(t, `model: gpt2
backend: pytorch
sweep:
  precision: [fp16, bf16]
  pytorch.load_in_4bit: [true, false]
  pytorch.load_in_8bit: [true, false]
experiments:
  - {backend: vllm, pytorch: {batch_size: 2}}
`)
	if s.Generated != 9 || s.Unique != 6 || s.Skipped != 3 {
		t.Fatalf("generated %d unique %d skipped %d", s.Generated, s.Unique, s.Skipped)
	}
	var labels []string
	s.EachSkipped(func(r *record.Skipped) error {
		labels = append(labels, r.Label)
		if len(r.Reasons) == 0 || r.Reasons[0].Path == "" || r.Reasons[0].Hint == "" || r.StudyHash != s.Hash {
			t.Errorf("skipped record: %+v", r)
		}
		return nil
	})
	if strings.Join(labels, "|") != "pytorch, fp16|pytorch, bf16|vllm, bf16" {
		t.Errorf("labels %v", labels)
	}
	_, err := Expand("s.yaml", []byte("model: gpt2\nbackend: vllm\nsweep:\n  precision: [fp32]\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "nothing to run: all 1 generated configs are invalid") {
		t.Errorf("all invalid: %v", err)
	}
}

// Sweep configs first, then explicit entries; base file.
func TestExplicitAndBase(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "common.yaml"), []byte("model: llem-small\nn: 7\nmax_output_tokens: 16\nsweep: {n: [1, 2, 3]}\nname: ignored\n"), 0o644)
	src := "base: common.yaml\nmax_output_tokens: 32\nsweep:\n  native.batch_size: [1, 2]\nexperiments:\n  - {model: llem-tiny, n: 3}\n"
	s, err := Expand(filepath.Join(dir, "st.yaml"), []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs := configs(t, s)
	if len(cs) != 3 || cs[0].Model != "llem-small" || cs[0].N != 7 || cs[0].MaxOutputTokens != 32 ||
		cs[2].Model != "llem-tiny" || cs[2].N != 3 || cs[2].MaxOutputTokens != 32 || s.Name != "st" {
		t.Errorf("got %d configs: %+v", len(cs), cs)
	}
	_, err = Expand(filepath.Join(dir, "st.yaml"), []byte("base: missing.yaml\nmodel: x\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "st.yaml:1:7: base: cannot read base file") {
		t.Errorf("missing base: %v", err)
	}
	_, err = Expand("s.yaml", []byte("experiments: []\nn: 5\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "no experiments") {
		t.Errorf("empty study: %v", err)
	}
}

func order(t *testing.T, s *Study) string {
	var b []string
	for _, r := range runs(t, s) {
		c, _ := config.Decode(r.Config)
		b = append(b, c.Model)
	}
	return strings.Join(b, "")
}

// Cycle orders.
func TestCycleOrders(t *testing.T) {
	src := "sweep:\n  model: [A, B]\nbackend: pytorch\nexecution: {n_cycles: 3, cycle_order: %s}\n"
	if got := order(t, expand(t, strings.Replace(src, "%s", "sequential", 1))); got != "AAABBB" {
		t.Errorf("sequential: %s", got)
	}
	if got := order(t, expand(t, strings.Replace(src, "%s", "interleaved", 1))); got != "ABABAB" {
		t.Errorf("interleaved: %s", got)
	}
	five := "backend: pytorch\nsweep:\n  model: [a, b, c, d, e]\nexecution: {n_cycles: 4}\n"
	one := order(t, expand(t, five, Options{Seed: ptr(uint64(1))}))
	if again := order(t, expand(t, five, Options{Seed: ptr(uint64(1))})); again != one {
		t.Error("shuffled is not deterministic for a seed")
	}
	if other := order(t, expand(t, five, Options{Seed: ptr(uint64(2))})); other == one {
		t.Error("different seeds give the same order")
	}
	for c := 0; c < 4; c++ {
		cyc := []byte(one[c*5 : c*5+5])
		if got := sortBytes(cyc); got != "abcde" {
			t.Errorf("cycle %d is not a permutation: %s", c+1, one[c*5:c*5+5])
		}
	}
	// The order is a function of the seed alone: the documented algorithm,
	// written out here independently of the package's Shuffle.
	want := ""
	st := uint64(1)
	next := func() uint64 {
		st += 0x9E3779B97F4A7C15
		z := st
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		return z ^ (z >> 31)
	}
	for c := 0; c < 4; c++ {
		a := []byte("abcde")
		for i := len(a) - 1; i >= 1; i-- {
			hi, _ := mul64(next(), uint64(i+1))
			a[i], a[hi] = a[hi], a[i]
		}
		want += string(a)
	}
	if one != want {
		t.Errorf("shuffled order %s, documented algorithm gives %s", one, want)
	}
	// Default seed: derived from the study hash.
	s := expand(t, five)
	if s.Seed == 0 || s.Order != OrderShuffled || s.NCycles != 4 {
		t.Errorf("default seed %d order %s", s.Seed, s.Order)
	}
}

func mul64(a, b uint64) (uint64, uint64) {
	const mask = 1<<32 - 1
	a0, a1, b0, b1 := a&mask, a>>32, b&mask, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1, w2 := t&mask, t>>32
	w1 += a0 * b1
	return a1*b1 + w2 + w1>>32, a * b
}

func sortBytes(b []byte) string {
	for i := range b {
		for j := i + 1; j < len(b); j++ {
			if b[j] < b[i] {
				b[i], b[j] = b[j], b[i]
			}
		}
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// SplitMix64's published reference outputs for seed 1234567.
func TestSplitMix64(t *testing.T) {
	g := NewSplitMix64(1234567)
	for _, want := range []uint64{6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821} {
		if got := g.Next(); got != want {
			t.Fatalf("got %d want %d", got, want)
		}
	}
}

// Study hash.
func TestStudyHash(t *testing.T) {
	src := "model: m\nbackend: pytorch\nsweep:\n  n: [1, 2]\n"
	a := expand(t, src)
	if len(a.Hash) != 16 || strings.Trim(a.Hash, "0123456789abcdef") != "" {
		t.Fatalf("hash %q", a.Hash)
	}
	b := expand(t, "name: other\n"+src+"execution: {n_cycles: 7, cycle_order: interleaved, experiment_gap_seconds: 5}\nrunners: {pytorch: docker}\n")
	if a.Hash != b.Hash {
		t.Error("execution block, name or runners changed the hash")
	}
	c := expand(t, strings.Replace(src, "[1, 2]", "[1, 3]", 1))
	if c.Hash == a.Hash {
		t.Error("a changed experiment kept the hash")
	}
	d := expand(t, strings.Replace(src, "[1, 2]", "[2, 1]", 1))
	if d.Hash == a.Hash {
		t.Error("the order of configs is part of the hash")
	}
	// The ids and run_ids are stable across re-expansion and independent of the runner.
	ra, rb := runs(t, a), runs(t, b)
	ids := map[string]bool{}
	for _, r := range ra {
		ids[r.RunID] = true
	}
	for _, r := range rb {
		if r.Cycle <= 3 && !ids[r.RunID] {
			t.Errorf("run_id %s not stable", r.RunID)
		}
		if r.Runner.Type != "docker" {
			t.Error("runner not carried")
		}
	}
}

func TestGapsAndCycleStart(t *testing.T) {
	s := expand(t, "model: m\nbackend: pytorch\nsweep: {n: [1, 2]}\nexecution: {n_cycles: 2, cycle_order: interleaved, experiment_gap_seconds: 10, cycle_gap_seconds: 60}\nrunners: {vllm: local, pytorch: \"docker:img:1\"}\n")
	rs := runs(t, s)
	gaps := []float64{0, 10, 70, 10}
	starts := []bool{true, false, true, false}
	for i, r := range rs {
		if r.GapBeforeS != gaps[i] || r.CycleStart != starts[i] || r.Seq != i || r.NCycles != 2 || r.Runner.Image != "img:1" {
			t.Errorf("run %d: gap %v start %v seq %d runner %+v", i, r.GapBeforeS, r.CycleStart, r.Seq, r.Runner)
		}
	}
	s = expand(t, "model: m\nbackend: pytorch\nsweep: {n: [1, 2]}\nexecution: {experiment_gap_seconds: 10, cycle_gap_seconds: 60}\n", Options{NoGaps: true, Cycles: 2, Order: "interleaved"})
	for _, r := range runs(t, s) {
		if r.GapBeforeS != 0 {
			t.Error("--no-gaps")
		}
	}
}

func TestSingleExperimentAndSet(t *testing.T) {
	s := expand(t, "model: llem-tiny\nn: 8\n", Options{Sets: []string{"native.batch_size=4", "decoder.temperature=0", "name=x1"}})
	rs := runs(t, s)
	if len(rs) != 3 || s.Name != "x1" {
		t.Fatalf("single experiment: %d runs (want 3 cycles)", len(rs))
	}
	c, _ := config.Decode(rs[0].Config)
	if c.Native.BatchSize != 4 || c.Decoder.Temperature != 0 || c.N != 8 {
		t.Errorf("--set: %+v", c.Native)
	}
	for i, r := range rs {
		if r.Cycle != i+1 || r.ID != rs[0].ID {
			t.Errorf("run %d: cycle %d", i, r.Cycle)
		}
	}
	if _, err := Expand("s.yaml", []byte("model: x\n"), Options{Sets: []string{"n=abc"}}); err == nil || !strings.Contains(err.Error(), "--set n=abc: n: expected an integer") {
		t.Errorf("--set error: %v", err)
	}
}

// The parallel writer and the serial iterator agree (runs checks it), for
// every order, at a size that spans several chunks.
func TestParallelMatchesSerial(t *testing.T) {
	for _, o := range []string{OrderSequential, OrderInterleaved, OrderShuffled} {
		s := expand(t, "model: m\nbackend: pytorch\nsweep:\n  n: "+seq(1, 30)+"\n  max_output_tokens: "+seq(1, 30)+"\n", Options{Order: o, Cycles: 2})
		if rs := runs(t, s); len(rs) != 29*29*2 {
			t.Errorf("%s: %d runs", o, len(rs))
		}
	}
}

func TestNotes(t *testing.T) {
	s := expand(t, "model: gpt2\nbackend: pytorch\npytorch: {batch_sise: 2}\nsweep:\n  dataset: [{n: 5, input_len: 8}]\n  energy.backend: [zeus]\n")
	all := strings.Join(s.Summary(), "\n")
	for _, want := range []string{`did you mean "batch_size"?`, "dataset[0].n is ignored", "energy.backend zeus is read as nvml"} {
		if !strings.Contains(all, want) {
			t.Errorf("summary lacks %q:\n%s", want, all)
		}
	}
}

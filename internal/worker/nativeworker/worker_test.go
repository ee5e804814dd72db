package nativeworker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/dataset"
	eng "github.com/llem/llem/internal/native"
	"github.com/llem/llem/internal/native/preset"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/tokenizer"
	"github.com/llem/llem/schemas"
)

// tinyYAML is an experiment on a tiny architecture, small enough that a
// whole worker run takes milliseconds.
const tinyYAML = `
model: llem-tiny
backend: native
n: 5
dataset: {input_len: 30, output_len: 8, seed: 3, distribution: lognormal, sigma: 0.5}
max_input_tokens: 40
max_output_tokens: 6
decoder: {temperature: 0.8, do_sample: true, top_k: 20, top_p: 0.95}
native: {layers: 2, hidden_size: 32, heads: 4, kv_heads: 2, ffn_size: 64, vocab_size: 300, max_seq_len: 128, batch_size: 2, threads: %d}
%s
`

// setup writes experiment.json for tinyYAML plus extra YAML and returns the
// run directory.
func setup(t *testing.T, threads int, extra string) string {
	t.Helper()
	if extra == "" {
		extra = "warmup: {n_warmup: 2, thermal_floor_seconds: 0}"
	}
	cfg, _, err := config.Parse("tiny.yaml", []byte(fmt.Sprintf(tinyYAML, threads, extra)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cfg.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	prompts, err := dataset.Load(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	in := record.WorkerInput{Experiment: record.Experiment{Kind: record.KindExperiment, V: record.Version, Study: "t",
		StudyHash: "0123456789abcdef", ID: "0123456789abcdef", Cycle: 1, NCycles: 1, RunID: "0123456789abcdef-c1",
		Backend: "native", Model: cfg.Model, Config: raw, Runner: record.Runner{Type: "local"}}, Prompts: prompts}
	dir := t.TempDir()
	b, _ := json.Marshal(in)
	p := filepath.Join(dir, "experiment.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvExperiment, p)
	t.Setenv(EnvRunDir, dir)
	return dir
}

func runMain(t *testing.T, ctx context.Context) (int, []record.Event, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Code(Main(ctx, &out, &errb))
	var evs []record.Event
	for i, line := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		if err := schemas.Validate("event", line); err != nil {
			t.Fatalf("event %d %s: %v", i, line, err)
		}
		var e record.Event
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("event %d %s: %v", i, line, err)
		}
		evs = append(evs, e)
	}
	return code, evs, errb.String()
}

func TestProtocol(t *testing.T) {
	dir := setup(t, 2, "")
	code, evs, stderr := runMain(t, context.Background())
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var kinds []string
	for _, e := range evs {
		k := e.Event
		if e.Event == record.EventPhase {
			k += ":" + e.Phase + ":" + e.Edge
		}
		kinds = append(kinds, k)
	}
	want := "hello phase:load:start phase:load:end model phase:warmup:start phase:warmup:end phase:measure:start request request request request request phase:measure:end memory done"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("events:\n%s\nwant\n%s", got, want)
	}
	if h := evs[0]; h.Backend != "native" || h.PID != os.Getpid() || h.Version == "" {
		t.Fatalf("hello %+v", h)
	}
	m := evs[3].Model
	if m == nil || *m.Layers != 2 || *m.HiddenSize != 32 || *m.Heads != 4 || *m.KVHeads != 2 || *m.HeadDim != 8 ||
		*m.FFNSize != 64 || *m.VocabSize != 300 || m.DType != "float32" || m.ActiveParameters != nil {
		t.Fatalf("model %+v", m)
	}
	// parameters counted independently: embed + lm head + layers (norms, q, k, v, o, gate, up, down) + final norm
	wantP := int64(300*32*2 + 2*(2*32+32*32+2*16*32+32*32+3*32*64) + 32)
	if *m.Parameters != wantP || *m.NonEmbeddingParameters != wantP-300*32 {
		t.Fatalf("parameters %d / %d, want %d / %d", *m.Parameters, *m.NonEmbeddingParameters, wantP, wantP-300*32)
	}
	var tStart, tEnd int64
	var inTok, outTok int64
	for _, e := range evs {
		if e.Event == record.EventPhase && e.Phase == record.PhaseMeasure {
			if e.Edge == record.EdgeStart {
				tStart = e.T
			} else {
				tEnd = e.T
			}
		}
	}
	for i, e := range evs[7:12] {
		r := e.Request
		if r.ID != i || r.Batch != i/2 || r.OutputTokens != 6 || len(r.ITLNS) != 5 || r.InputTokens < 1 || r.InputTokens > 40 {
			t.Fatalf("request %d: %+v", i, r)
		}
		if !(tStart <= r.TStartNS && r.TStartNS < r.TFirstNS && r.TFirstNS <= r.TEndNS && r.TEndNS <= tEnd) {
			t.Fatalf("request %d times %d %d %d outside measure [%d, %d]", i, r.TStartNS, r.TFirstNS, r.TEndNS, tStart, tEnd)
		}
		sum := r.TFirstNS
		for _, g := range r.ITLNS {
			if g < 0 {
				t.Fatalf("negative gap %v", r.ITLNS)
			}
			sum += g
		}
		if sum != r.TEndNS {
			t.Fatalf("request %d: first token + gaps = %d, t_end %d", i, sum, r.TEndNS)
		}
		inTok += int64(r.InputTokens)
		outTok += int64(r.OutputTokens)
	}
	mem := evs[13].Memory
	if len(mem) != 1 || mem[0].Device != "cpu" || mem[0].ModelBytes == nil || *mem[0].ModelBytes != 4*wantP || mem[0].PeakBytes == nil || *mem[0].PeakBytes <= 0 {
		t.Fatalf("memory %+v", mem)
	}
	d := evs[14]
	if d.Totals.Requests != 5 || d.Totals.InputTokens != inTok || d.Totals.OutputTokens != outTok || d.Totals.Batches == nil || *d.Totals.Batches != 3 {
		t.Fatalf("done totals %+v", d.Totals)
	}
	if w := d.Warmup; w.Requests != 2 || len(w.LatenciesS) != 2 || w.Mode != "fixed" || !w.Converged || w.CV != nil {
		t.Fatalf("done warmup %+v", w)
	}
	b, err := os.ReadFile(filepath.Join(dir, OutputsFile))
	if err != nil || bytes.Count(b, []byte("\n")) != 5 {
		t.Fatalf("outputs: %v\n%s", err, b)
	}
}

// TestSameTokensAcrossThreads: the worker's outputs are the same bytes with
// 1, 2 and 4 threads, and on a second run.
func TestSameTokensAcrossThreads(t *testing.T) {
	var first []byte
	for _, th := range []int{1, 2, 4, 1} {
		dir := setup(t, th, "")
		if code, _, stderr := runMain(t, context.Background()); code != 0 {
			t.Fatalf("threads %d: exit %d\n%s", th, code, stderr)
		}
		b, err := os.ReadFile(filepath.Join(dir, OutputsFile))
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("threads %d: outputs differ:\n%s\nvs\n%s", th, b, first)
		}
	}
}

// TestCheckpoint: the synthetic model saved as a safetensors checkpoint and
// run through native.weights_path gives the same tokens as the synthetic run.
func TestCheckpoint(t *testing.T) {
	dir := setup(t, 2, "")
	if code, _, stderr := runMain(t, context.Background()); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	want, _ := os.ReadFile(filepath.Join(dir, OutputsFile))

	dir = setup(t, 2, "")
	p := os.Getenv(EnvExperiment)
	b, _ := os.ReadFile(p)
	var in record.WorkerInput
	json.Unmarshal(b, &in)
	cfg, err := config.Decode(in.Config)
	if err != nil {
		t.Fatal(err)
	}
	arch := eng.Arch{Layers: 2, HiddenSize: 32, Heads: 4, KVHeads: 2, FFNSize: 64, VocabSize: 300, MaxSeqLen: 128}
	m, err := eng.NewSynthetic(arch, cfg.Native.Seed)
	if err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(dir, "ckpt")
	if err := eng.SaveLlama(m, ck); err != nil {
		t.Fatal(err)
	}
	evs := runCheckpoint(t, p, b, ck)
	if got, _ := os.ReadFile(filepath.Join(dir, OutputsFile)); !bytes.Equal(got, want) || len(got) == 0 {
		t.Fatalf("checkpoint run outputs:\n%s\nsynthetic:\n%s", got, want)
	}
	if *evs[3].Model.Parameters != eng.Params(arch) {
		t.Fatalf("model facts %+v", evs[3].Model)
	}
}

// TestPreset: a config naming llem-tiny and no architecture runs the
// preset's architecture.
func TestPreset(t *testing.T) {
	cfg, _, err := config.Parse("p.yaml", []byte("model: llem-tiny\nn: 2\nmax_output_tokens: 3\ndataset: {input_len: 8, output_len: 3}\nwarmup: {enabled: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := cfg.Canonical()
	b, _ := json.Marshal(record.WorkerInput{Experiment: record.Experiment{Kind: record.KindExperiment, Config: raw}})
	p := filepath.Join(t.TempDir(), "experiment.json")
	os.WriteFile(p, b, 0o644)
	t.Setenv(EnvExperiment, p) // no prompts in the file: the worker resolves the dataset itself
	t.Setenv(EnvRunDir, "")
	code, evs, stderr := runMain(t, context.Background())
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	a, _ := preset.Lookup("llem-tiny")
	m := evs[3].Model
	if *m.Layers != a.Layers || *m.HiddenSize != a.HiddenSize || *m.VocabSize != a.VocabSize || *m.Parameters != eng.Params(a) {
		t.Fatalf("model %+v, preset %+v", m, a)
	}
	if d := evs[len(evs)-1]; d.Totals.Requests != 2 || d.Totals.OutputTokens != 6 {
		t.Fatalf("done %+v", d.Totals)
	}
}

func TestWarmupCVMode(t *testing.T) {
	setup(t, 1, "warmup: {n_warmup: 2, thermal_floor_seconds: 0, convergence_detection: true, cv_threshold: 0.5, window_size: 3, min_prompts: 1, max_prompts: 6}")
	code, evs, stderr := runMain(t, context.Background())
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	w := evs[len(evs)-1].Warmup
	if w.Mode != "cv" || w.Requests < 3 || w.Requests > 8 || len(w.LatenciesS) != w.Requests || w.CV == nil {
		t.Fatalf("warmup %+v", w)
	}
	if w.Converged != (*w.CV < 0.5) {
		t.Fatalf("converged %v with cv %g", w.Converged, *w.CV)
	}
}

func TestWarmupDisabled(t *testing.T) {
	setup(t, 1, "warmup: {enabled: false}")
	code, evs, _ := runMain(t, context.Background())
	if code != 0 {
		t.Fatal(code)
	}
	for _, e := range evs {
		if e.Phase == record.PhaseWarmup {
			t.Fatal("warmup phase while disabled")
		}
	}
	if w := evs[len(evs)-1].Warmup; w.Mode != "disabled" || w.Requests != 0 {
		t.Fatalf("warmup %+v", w)
	}
}

func lastError(t *testing.T, evs []record.Event) record.Event {
	t.Helper()
	if len(evs) == 0 || evs[len(evs)-1].Event != record.EventError {
		t.Fatalf("last event is not an error: %+v", evs)
	}
	return evs[len(evs)-1]
}

func TestErrors(t *testing.T) {
	t.Run("no experiment", func(t *testing.T) {
		t.Setenv(EnvExperiment, "")
		code, evs, _ := runMain(t, context.Background())
		if e := lastError(t, evs); code != cli.ExitUsage || e.Code != CodeInput || !strings.Contains(e.Message, EnvExperiment) {
			t.Fatalf("exit %d, %+v", code, e)
		}
	})
	t.Run("bad json", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "experiment.json")
		os.WriteFile(p, []byte(`{"config": {"model": `), 0o644)
		t.Setenv(EnvExperiment, p)
		code, evs, _ := runMain(t, context.Background())
		if e := lastError(t, evs); code != cli.ExitUsage || e.Code != CodeInput || !strings.Contains(e.Message, p) {
			t.Fatalf("exit %d, %+v", code, e)
		}
	})
	t.Run("weights_path", func(t *testing.T) {
		setup(t, 1, "")
		p := os.Getenv(EnvExperiment)
		b, _ := os.ReadFile(p)
		b = bytes.Replace(b, []byte(`"weights_path":null`), []byte(`"weights_path":"/nowhere"`), 1)
		os.WriteFile(p, b, 0o644)
		code, evs, _ := runMain(t, context.Background())
		if e := lastError(t, evs); code != cli.ExitUsage || e.Code != CodeUnsupported {
			t.Fatalf("exit %d, %+v", code, e)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		setup(t, 1, "warmup: {n_warmup: 1, thermal_floor_seconds: 30}")
		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuf
		var errb bytes.Buffer
		done := make(chan int)
		go func() { done <- cli.Code(Main(ctx, &out, &errb)) }()
		// cancel during the thermal floor sleep: the worker stops at once
		for !bytes.Contains(out.bytes(), []byte(`"phase":"warmup","edge":"end"`)) {
			select {
			case code := <-done:
				t.Fatalf("exited %d early: %s", code, out.bytes())
			default:
				time.Sleep(time.Millisecond)
			}
		}
		cancel()
		code := <-done
		lines := bytes.Split(bytes.TrimSpace(out.bytes()), []byte("\n"))
		var e record.Event
		json.Unmarshal(lines[len(lines)-1], &e)
		if code != cli.ExitInterrupted || e.Event != record.EventError || e.Code != CodeInterrupted {
			t.Fatalf("exit %d, last %s", code, lines[len(lines)-1])
		}
	})
}

// syncBuf is a buffer one goroutine writes while another reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// TestCheckpointTokenizer: a checkpoint directory with a tokenizer.json has
// its prompts tokenised and its outputs decoded by that tokenizer, not by
// the byte-level stand-in.
func TestCheckpointTokenizer(t *testing.T) {
	dir := setup(t, 1, "warmup: {enabled: false}")
	p := os.Getenv(EnvExperiment)
	b, _ := os.ReadFile(p)
	var in record.WorkerInput
	json.Unmarshal(b, &in)
	arch := eng.Arch{Layers: 2, HiddenSize: 32, Heads: 4, KVHeads: 2, FFNSize: 64, VocabSize: 300, MaxSeqLen: 128}
	m, err := eng.NewSynthetic(arch, 1)
	if err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(dir, "ckpt")
	if err := eng.SaveLlama(m, ck); err != nil {
		t.Fatal(err)
	}
	// A byte-level BPE: the 256 byte tokens (ids 0–255) and merges of
	// syllables the synthetic prompts are built from.
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(gpt2Byte(byte(b)))] = b
	}
	var merges [][2]string
	for _, pair := range [][2]string{{"a", "n"}, {"e", "r"}, {"o", "n"}, {"Ġ", "t"}, {"i", "n"}, {"a", "r"}, {"e", "n"}, {"o", "r"}} {
		vocab[pair[0]+pair[1]] = 256 + len(merges)
		merges = append(merges, pair)
	}
	tj, _ := json.Marshal(map[string]any{
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	})
	if err := os.WriteFile(filepath.Join(ck, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(filepath.Join(ck, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	evs := runCheckpoint(t, p, b, ck)
	wantIn, bytesIn := 0, 0
	for _, s := range in.Prompts {
		wantIn += min(len(tok.Encode(s)), 40) // max_input_tokens: 40
		bytesIn += min(len(s), 40)
	}
	if got := evs[len(evs)-1].Totals.InputTokens; got != int64(wantIn) || wantIn == bytesIn {
		t.Errorf("input tokens %d, want %d from tokenizer.json (byte-level would give %d)", got, wantIn, bytesIn)
	}
	f, _ := os.ReadFile(filepath.Join(dir, OutputsFile))
	lines := bytes.Split(bytes.TrimSpace(f), []byte("\n"))
	for _, l := range lines {
		var o struct {
			Tokens []int32
			Text   string
		}
		json.Unmarshal(l, &o)
		if want := tok.Decode(o.Tokens); o.Text != want || len(o.Tokens) == 0 {
			t.Errorf("output %s: text %q, tokenizer.json decodes %q", l, o.Text, want)
		}
	}
}

// gpt2Byte is GPT-2's bytes_to_unicode, written out for the test.
func gpt2Byte(b byte) rune {
	if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
		return rune(b)
	}
	n := 0
	for c := 0; c < int(b); c++ {
		if !(c >= '!' && c <= '~' || c >= 0xA1 && c <= 0xAC || c >= 0xAE) {
			n++
		}
	}
	return rune(256 + n)
}

// runCheckpoint points experiment.json (path p, contents b) at checkpoint
// directory ck and runs the worker, which must succeed.
func runCheckpoint(t *testing.T, p string, b []byte, ck string) []record.Event {
	t.Helper()
	q, _ := json.Marshal(ck)
	b = bytes.Replace(b, []byte(`"weights_path":null`), []byte(`"weights_path":`+string(q)), 1)
	os.WriteFile(p, b, 0o644)
	code, evs, stderr := runMain(t, context.Background())
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	return evs
}

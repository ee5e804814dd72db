// Package nativeworker is the worker of the native backend: it reads
// experiment.json (LLEM_EXPERIMENT), runs the experiment on the Go engine of
// internal/native and writes worker-protocol events (record.Event) to stdout,
// one NDJSON line each. llem-exec runs it as `llem-exec __worker native`.
package nativeworker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/llem/llem/internal/atomicfile"
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/dataset"
	eng "github.com/llem/llem/internal/native"
	"github.com/llem/llem/internal/record"
)

// Backend is the name in the hello event.
const Backend = "native"

// Version of the engine, in the hello event. Bump it when the numbers an
// engine produces for the same seed and config change.
const Version = "1"

// Environment variables of the worker protocol.
const (
	EnvExperiment = "LLEM_EXPERIMENT"
	EnvRunDir     = "LLEM_RUN_DIR"
)

// Error codes of the error event.
const (
	CodeInput       = "bad_input"   // experiment.json unreadable or invalid
	CodeUnsupported = "unsupported" // a config the native backend cannot run
	CodeInterrupted = "interrupted" // ctx cancelled (SIGTERM/SIGINT)
	CodeEngine      = "engine"      // the engine failed
	CodeOutput      = "output"      // stdout could not be written
)

// failure is an error with its event code.
type failure struct {
	code string
	err  error
	hint string
}

func (f *failure) Error() string { return f.err.Error() }

func fail(code string, hint string, format string, a ...any) *failure {
	return &failure{code: code, err: fmt.Errorf(format, a...), hint: hint}
}

// Main runs the worker. It returns nil after a done event; otherwise an error
// event was written (when stdout still worked) and the error says how the
// worker ended (exitError): bad input or an unsupported config is a usage
// error, a cancelled ctx an interrupt, the rest a failure. stderr gets
// human-readable progress.
func Main(ctx context.Context, stdout, stderr io.Writer) error {
	w := &worker{out: record.NewFlushingWriter(stdout), log: stderr, now: func() int64 { return time.Now().UnixNano() }}
	err := w.run(ctx)
	if err == nil {
		return nil
	}
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{code: CodeEngine, err: err}
	}
	if ctx.Err() != nil && f.code != CodeOutput {
		f = &failure{code: CodeInterrupted, err: fmt.Errorf("stopped: %v (%v)", context.Cause(ctx), f.err)}
	}
	_ = w.out.Write(record.Event{Event: record.EventError, T: w.now(), Code: f.code, Message: f.err.Error(), Hint: f.hint})
	return exitError(f)
}

// Command runs the worker as the body of a process (`llem-exec __worker
// native`, the llem/native image's entrypoint): SIGINT and SIGTERM cancel it.
// It takes no arguments.
func Command(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return cli.WithSignals(func(ctx context.Context, _ []string, _ io.Reader, stdout, stderr io.Writer) error {
		return Main(ctx, stdout, stderr)
	})(args, stdin, stdout, stderr)
}

// exitError maps a failure's event code onto the exit codes of internal/cli:
// the one place the worker's exit status is decided.
func exitError(f *failure) error {
	err := fmt.Errorf("%s: %w", f.code, f)
	switch f.code {
	case CodeInput, CodeUnsupported:
		return cli.Usage(err)
	case CodeInterrupted:
		return cli.Interrupted(err)
	}
	return err
}

type worker struct {
	out *record.Writer
	log io.Writer
	now func() int64
}

func (w *worker) emit(e record.Event) error {
	if e.T == 0 {
		e.T = w.now()
	}
	if err := w.out.Write(e); err != nil {
		return &failure{code: CodeOutput, err: fmt.Errorf("write event: %w", err)}
	}
	return nil
}

func (w *worker) phase(p, edge string) error {
	return w.emit(record.Event{Event: record.EventPhase, Phase: p, Edge: edge})
}

func (w *worker) warn(code, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintf(w.log, "native worker: warning: %s\n", msg)
	return w.emit(record.Event{Event: record.EventWarning, Code: code, Message: msg})
}

// readInput reads and decodes experiment.json.
func readInput() (*record.WorkerInput, *config.Config, error) {
	path := os.Getenv(EnvExperiment)
	if path == "" {
		return nil, nil, fail(CodeInput, "llem-exec sets it; to run by hand, point it at an experiment.json", "$%s is not set", EnvExperiment)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fail(CodeInput, "", "read experiment: %v", err)
	}
	var in record.WorkerInput
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&in); err != nil {
		return nil, nil, fail(CodeInput, "", "%s: %v", path, err)
	}
	if len(in.Config) == 0 {
		return nil, nil, fail(CodeInput, "", "%s: no config", path)
	}
	cfg, err := config.Decode(in.Config)
	if err != nil {
		return nil, nil, fail(CodeInput, "", "%s: config: %v", path, err)
	}
	if cfg.Backend != config.BackendNative {
		return nil, nil, fail(CodeUnsupported, "", "%s: backend %q, this is the native worker", path, cfg.Backend)
	}
	if len(in.Prompts) == 0 { // run by hand: resolve the dataset here
		if in.Prompts, err = dataset.Load(cfg, filepath.Dir(path)); err != nil {
			return nil, nil, fail(CodeInput, "", "%s: no prompts and %v", path, err)
		}
	}
	return &in, cfg, nil
}

// archOf is the architecture of the config's native section, which the
// config package has filled from the model's preset.
func archOf(n *config.Native) (eng.Arch, error) {
	get := func(name string, p *int) (int, error) {
		if p == nil {
			return 0, fail(CodeInput, "name a preset model (llem-tiny, llem-small) or set every architecture field", "native.%s is null", name)
		}
		return *p, nil
	}
	var a eng.Arch
	var err error
	for _, f := range []struct {
		name string
		p    *int
		dst  *int
	}{
		{"layers", n.Layers, &a.Layers}, {"hidden_size", n.HiddenSize, &a.HiddenSize}, {"heads", n.Heads, &a.Heads},
		{"kv_heads", n.KVHeads, &a.KVHeads}, {"ffn_size", n.FFNSize, &a.FFNSize}, {"vocab_size", n.VocabSize, &a.VocabSize},
		{"max_seq_len", n.MaxSeqLen, &a.MaxSeqLen},
	} {
		if *f.dst, err = get(f.name, f.p); err != nil {
			return a, err
		}
	}
	if err := eng.Validate(a); err != nil {
		return a, fail(CodeUnsupported, "", "%v", err)
	}
	return a, nil
}

// checkArch warns where the config's native section names an architecture
// field the checkpoint contradicts: the checkpoint wins.
func (w *worker) checkArch(n *config.Native, a eng.Arch) error {
	for _, f := range []struct {
		name string
		p    *int
		v    int
	}{
		{"layers", n.Layers, a.Layers}, {"hidden_size", n.HiddenSize, a.HiddenSize}, {"heads", n.Heads, a.Heads},
		{"kv_heads", n.KVHeads, a.KVHeads}, {"ffn_size", n.FFNSize, a.FFNSize}, {"vocab_size", n.VocabSize, a.VocabSize},
		{"max_seq_len", n.MaxSeqLen, a.MaxSeqLen},
	} {
		if f.p != nil && *f.p != f.v {
			if err := w.warn("arch_mismatch", "native.%s is %d but the checkpoint has %d; using the checkpoint's", f.name, *f.p, f.v); err != nil {
				return err
			}
		}
	}
	return nil
}

// DecodingOf maps the config's decoder section onto the engine's sampler.
func DecodingOf(d config.DecoderConfig) eng.Decoding {
	out := eng.Decoding{Greedy: d.Greedy(), Temperature: d.Temperature, TopK: d.TopK, TopP: d.TopP, RepetitionPenalty: d.RepetitionPenalty}
	if d.MinP != nil {
		out.MinP = *d.MinP
	}
	if d.MinNewTokens != nil {
		out.MinNewTokens = *d.MinNewTokens
	}
	if out.Greedy {
		out.Temperature, out.TopK, out.TopP, out.MinP = 0, 0, 1, 0
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func (w *worker) run(ctx context.Context) error {
	if err := w.emit(record.Event{Event: record.EventHello, Backend: Backend, Version: Version, PID: os.Getpid()}); err != nil {
		return err
	}
	in, cfg, err := readInput()
	if err != nil {
		return err
	}
	if cfg.Native == nil {
		return fail(CodeInput, "", "config has no native section")
	}
	dec := DecodingOf(cfg.Decoder)
	if err := dec.Check(); err != nil {
		return fail(CodeUnsupported, "", "%v", err)
	}
	// load: weights (synthetic, or a checkpoint), tokenisation, engine state
	if err := w.phase(record.PhaseLoad, record.EdgeStart); err != nil {
		return err
	}
	s, err := w.load(ctx, cfg, dec, in.Prompts)
	if err != nil {
		return err
	}
	defer s.engine.Close()
	if err := w.phase(record.PhaseLoad, record.EdgeEnd); err != nil {
		return err
	}
	if err := w.emit(record.Event{Event: record.EventModel, Model: modelFacts(cfg.Model, s.model)}); err != nil {
		return err
	}
	wu, err := w.warmup(ctx, cfg.Warmup, s.batch, s.runBatch)
	if err != nil {
		return err
	}
	tot, err := w.measure(s)
	if err != nil {
		return err
	}
	if dir := os.Getenv(EnvRunDir); dir != "" {
		if err := writeOutputs(filepath.Join(dir, OutputsFile), s.tok, s.outputs); err != nil {
			if err := w.warn("outputs", "%v", err); err != nil {
				return err
			}
		}
	}
	if err := w.emit(record.Event{Event: record.EventMemory, Memory: []record.Memory{{Device: "cpu", PeakBytes: peakRSS(), ModelBytes: ptr(s.model.Bytes())}}}); err != nil {
		return err
	}
	return w.emit(record.Event{Event: record.EventDone, Totals: tot, Warmup: wu})
}

// session is one experiment loaded: the model, its prompts tokenised, and
// the engine with a generator sized for them.
type session struct {
	ctx     context.Context
	model   *eng.Model
	tok     codec
	prompts [][]int32
	outputs [][]int32 // the measured requests' tokens, by request id
	batch   int
	maxOut  int
	seed    int64
	engine  *eng.Engine
	gen     *eng.Generator
	reqs    []eng.Request
	res     []eng.Result
	now     func() int64
}

// load makes the model (from the checkpoint, else synthetic), tokenises the
// prompts and sets up the engine: the load phase.
func (w *worker) load(ctx context.Context, cfg *config.Config, dec eng.Decoding, texts []string) (*session, error) {
	nat := cfg.Native
	model, err := w.model(nat)
	if err != nil {
		return nil, err
	}
	s := &session{ctx: ctx, model: model, maxOut: cfg.MaxOutputTokens, seed: cfg.RandomSeed, now: w.now}
	longest, err := w.tokenise(s, cfg, texts)
	if err != nil {
		return nil, err
	}
	s.batch = min(nat.BatchSize, len(s.prompts))
	rows := s.batch * longest
	if rows > maxPrefillRows { // longer prefills run in chunks: activations stay bounded
		rows = max(maxPrefillRows, s.batch)
	}
	if s.engine, err = eng.NewEngine(model, eng.Options{Threads: nat.Threads, Slots: s.batch, MaxSeq: longest + s.maxOut, MaxRows: rows}); err != nil {
		return nil, fail(CodeUnsupported, "", "%v", err)
	}
	if s.gen, err = eng.NewGenerator(s.engine, dec, nat.IgnoreEOS); err != nil {
		s.engine.Close()
		return nil, fail(CodeUnsupported, "", "%v", err)
	}
	s.reqs = make([]eng.Request, s.batch)
	s.res = make([]eng.Result, s.batch)
	for i := range s.res {
		s.res[i].Tokens = make([]int32, 0, s.maxOut)
		s.res[i].ITL = make([]int64, 0, s.maxOut)
	}
	s.outputs = make([][]int32, len(s.prompts))
	return s, nil
}

// model loads native.weights_path, or makes the synthetic model of the
// config's architecture.
func (w *worker) model(nat *config.Native) (*eng.Model, error) {
	if nat.WeightsPath != nil {
		model, err := eng.LoadLlama(*nat.WeightsPath)
		if err != nil {
			return nil, fail(CodeUnsupported, "native.weights_path names a directory with config.json and model.safetensors (or its shards and index)", "%v", err)
		}
		return model, w.checkArch(nat, model.Arch)
	}
	arch, err := archOf(nat)
	if err != nil {
		return nil, err
	}
	model, err := eng.NewSynthetic(arch, nat.Seed)
	if err != nil {
		return nil, fail(CodeUnsupported, "", "%v", err)
	}
	return model, nil
}

// tokenise encodes the prompts, cut to max_input_tokens and to the room
// max_seq_len leaves after max_output_tokens; it returns the longest.
func (w *worker) tokenise(s *session, cfg *config.Config, texts []string) (longest int, err error) {
	arch, maxOut := s.model.Arch, s.maxOut
	if maxOut >= arch.MaxSeqLen {
		return 0, fail(CodeUnsupported, "lower max_output_tokens or raise native.max_seq_len", "max_output_tokens %d leaves no room for a prompt in max_seq_len %d", maxOut, arch.MaxSeqLen)
	}
	var ckptDir string
	if cfg.Native.WeightsPath != nil {
		ckptDir = *cfg.Native.WeightsPath
	}
	if s.tok, err = codecFor(ckptDir, s.model); err != nil {
		return 0, fail(CodeUnsupported, "remove or fix the checkpoint's tokenizer.json (without one, prompts are tokenised byte by byte)", "%v", err)
	}
	limit := min(cfg.MaxInputTokens, arch.MaxSeqLen-maxOut)
	var cut int
	s.prompts, cut, longest = encodePrompts(s.tok, texts, limit)
	if cut > 0 && cfg.MaxInputTokens > arch.MaxSeqLen-maxOut {
		if err := w.warn("truncated", "%d of %d prompts cut to %d tokens: max_seq_len %d − max_output_tokens %d is below max_input_tokens %d", cut, len(s.prompts), limit, arch.MaxSeqLen, maxOut, cfg.MaxInputTokens); err != nil {
			return 0, err
		}
	}
	batch := min(cfg.Native.BatchSize, len(s.prompts))
	fmt.Fprintf(w.log, "native worker: %s, tokenizer %s, %d prompts (%d truncated to %d tokens), batch %d, %d threads\n", cfg.Model, s.tok.name(), len(s.prompts), cut, limit, batch, threadsOf(cfg.Native.Threads))
	return longest, nil
}

// modelFacts is the model event's content.
func modelFacts(name string, model *eng.Model) *record.ModelFacts {
	arch := model.Arch
	hd := model.HeadDim
	return &record.ModelFacts{
		Name:                   name,
		Parameters:             ptr(model.Params()),
		NonEmbeddingParameters: ptr(model.NonEmbeddingParams()),
		Layers:                 &arch.Layers, HiddenSize: &arch.HiddenSize, Heads: &arch.Heads, KVHeads: &arch.KVHeads,
		HeadDim: &hd, FFNSize: &arch.FFNSize, VocabSize: &arch.VocabSize, DType: "float32",
	}
}

// runBatch runs prompts [first, first+n) (cyclically) with request ids from id.
func (s *session) runBatch(first, n, id int) error {
	for j := 0; j < n; j++ {
		s.reqs[j] = eng.Request{Prompt: s.prompts[(first+j)%len(s.prompts)], MaxNew: s.maxOut, Seed: requestSeed(s.seed, id+j)}
	}
	return s.gen.Run(s.ctx, s.reqs[:n], s.res[:n], s.now)
}

// measure runs every prompt once, in batches, as the measure phase: one
// request event per prompt; the outputs are kept in s.outputs.
func (w *worker) measure(s *session) (*record.Totals, error) {
	if err := w.phase(record.PhaseMeasure, record.EdgeStart); err != nil {
		return nil, err
	}
	var tot record.Totals
	var batches int64
	for first, b := 0, 0; first < len(s.prompts); first, b = first+s.batch, b+1 {
		n := min(s.batch, len(s.prompts)-first)
		if err := s.runBatch(first, n, first); err != nil {
			return nil, err
		}
		batches++
		for j := 0; j < n; j++ {
			r := &s.res[j]
			ev := &record.RequestEvent{ID: first + j, Batch: b, InputTokens: len(s.reqs[j].Prompt), OutputTokens: len(r.Tokens),
				TStartNS: r.TStart, TFirstNS: r.TFirst, TEndNS: r.TEnd, ITLNS: r.ITL}
			s.outputs[first+j] = append([]int32(nil), r.Tokens...)
			tot.Requests++
			tot.InputTokens += int64(ev.InputTokens)
			tot.OutputTokens += int64(ev.OutputTokens)
			if err := w.emit(record.Event{Event: record.EventRequest, T: r.TEnd, Request: ev}); err != nil {
				return nil, err
			}
		}
	}
	if err := w.phase(record.PhaseMeasure, record.EdgeEnd); err != nil {
		return nil, err
	}
	tot.Batches = &batches
	return &tot, nil
}

// OutputsFile is written in the run directory: one line per measured
// request, {"id", "tokens", "text"}, so that a run's output can be checked
// and compared across runs (same seed and config → same tokens).
const OutputsFile = "outputs.jsonl"

func writeOutputs(path string, tok codec, outputs [][]int32) error {
	err := atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for i, o := range outputs {
			if err := enc.Encode(struct {
				ID     int     `json:"id"`
				Tokens []int32 `json:"tokens"`
				Text   string  `json:"text"`
			}{i, o, tok.decode(o)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write outputs: %w", err)
	}
	return nil
}

// maxPrefillRows bounds the token rows of one forward call: 4096 rows of
// llem-small's activations are about 60 MiB.
const maxPrefillRows = 4096

// requestSeed gives request id its own sampling stream: its tokens depend on
// random_seed and its id, not on the batch it ran in.
func requestSeed(seed int64, id int) uint64 {
	return uint64(seed)*0x9e3779b97f4a7c15 + uint64(id)
}

func threadsOf(n int) int {
	if n <= 0 {
		return runtime.GOMAXPROCS(0) // the engine's default
	}
	return n
}

// warmup runs the warmup: n_warmup engine batches (of batch_size prompts,
// taken cyclically from the dataset, max_output_tokens each); then, with
// convergence_detection, more batches — up to max_prompts more — until the
// coefficient of variation (population std / mean) of the last window_size
// latencies is under cv_threshold, with at least max(min_prompts,
// window_size) latencies in all. The CV mode adds to the fixed count (the
// original's replaced it, against its own documentation). Then the thermal
// floor: a sleep, outside the warmup window.
func (w *worker) warmup(ctx context.Context, c config.Warmup, batch int, runBatch func(first, n, id int) error) (*record.Warmup, error) {
	if !c.Enabled {
		return &record.Warmup{LatenciesS: []float64{}, Converged: true, Mode: "disabled"}, nil
	}
	wu := &record.Warmup{LatenciesS: []float64{}, Mode: "fixed", Converged: true}
	if c.ConvergenceDetection {
		wu.Mode, wu.Converged = "cv", false
	}
	if err := w.phase(record.PhaseWarmup, record.EdgeStart); err != nil {
		return nil, err
	}
	limit := c.NWarmup
	if c.ConvergenceDetection {
		limit += c.MaxPrompts
	}
	window := max(c.WindowSize, 1)
	for i := 0; i < limit; i++ {
		t0 := time.Now()
		// warmup request ids are negative so they never share a measured request's seed
		if err := runBatch(i*batch, batch, -(i+1)*batch); err != nil {
			return nil, err
		}
		wu.LatenciesS = append(wu.LatenciesS, time.Since(t0).Seconds())
		wu.Requests++
		if len(wu.LatenciesS) >= window {
			wu.CV = cv(wu.LatenciesS[len(wu.LatenciesS)-window:])
		}
		if c.ConvergenceDetection && i+1 >= c.NWarmup && len(wu.LatenciesS) >= max(c.MinPrompts, window) && wu.CV != nil && *wu.CV < c.CVThreshold {
			wu.Converged = true
			break
		}
	}
	if err := w.phase(record.PhaseWarmup, record.EdgeEnd); err != nil {
		return nil, err
	}
	if c.ThermalFloorSeconds > 0 {
		fmt.Fprintf(w.log, "native worker: thermal floor: sleeping %gs\n", c.ThermalFloorSeconds)
		t := time.NewTimer(time.Duration(c.ThermalFloorSeconds * float64(time.Second)))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return wu, nil
}

func cv(xs []float64) *float64 {
	var m float64
	for _, x := range xs {
		m += x / float64(len(xs))
	}
	if !(m > 0) {
		return nil
	}
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m) / float64(len(xs))
	}
	return ptr(math.Sqrt(v) / m)
}

// peakRSS is the process's peak resident set (VmHWM), or nil where the
// kernel does not say.
func peakRSS() *int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Bytes()
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			fields := bytes.Fields(rest)
			if len(fields) == 2 && string(fields[1]) == "kB" {
				if kb, err := strconv.ParseInt(string(fields[0]), 10, 64); err == nil {
					return ptr(kb << 10)
				}
			}
		}
	}
	return nil
}

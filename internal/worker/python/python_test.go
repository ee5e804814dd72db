package python

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// The Python workers run for real here (python3, the extracted sources, the
// protocol on stdout), with stand-in modules for torch / transformers / vllm /
// tensorrt_llm on PYTHONPATH (testdata/fakes) that record every engine call.

type call struct {
	Call   string         `json:"call"`
	T      int64          `json:"t"`
	Args   []any          `json:"args"`
	Kwargs map[string]any `json:"kwargs"`
}

type workerRun struct {
	stdout, stderr string
	exit           int
	events         []record.Event
	calls          []call
	runDir         string
}

func (w *workerRun) find(name string) []call {
	var out []call
	for _, c := range w.calls {
		if c.Call == name {
			out = append(out, c)
		}
	}
	return out
}

func fakesDir(t *testing.T) string {
	d, err := filepath.Abs("testdata/fakes")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func needPython(t *testing.T) {
	t.Helper()
	if _, err := Interpreter(); err != nil {
		t.Skipf("SKIPPED: %v", err)
	}
}

// runWorker runs backend's worker on cfg with the stand-ins (fakes=true) and
// returns what it printed and the calls the stand-ins recorded.
func runWorker(t *testing.T, backend string, cfg map[string]any, prompts []string, fakes bool, cacheDir string, during func(cmd *exec.Cmd, callLog string)) *workerRun {
	t.Helper()
	argv, err := Command(backend, filepath.Join(cacheDir, "workers"))
	if err != nil {
		t.Fatal(err)
	}
	runDir := t.TempDir()
	cfgRaw, _ := json.Marshal(cfg)
	in := record.WorkerInput{Experiment: record.Experiment{Kind: "experiment", V: 1, Study: "py", StudyHash: "0123456789abcdef",
		ID: "0123456789abcdef", Cycle: 1, NCycles: 1, RunID: "0123456789abcdef-c1", Backend: backend, Model: fmt.Sprint(cfg["model"]),
		Config: cfgRaw, Runner: record.Runner{Type: "local"}}, Prompts: prompts}
	b, _ := json.Marshal(in)
	expFile := filepath.Join(runDir, "experiment.json")
	if err := os.WriteFile(expFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(runDir, "calls.ndjson")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LLEM_EXPERIMENT="+expFile, "LLEM_RUN_DIR="+runDir, "LLEM_FAKE_LOG="+logFile,
		"LLEM_CACHE_DIR="+cacheDir, "PYTHONDONTWRITEBYTECODE=1")
	if fakes {
		cmd.Env = append(cmd.Env, "PYTHONPATH="+fakesDir(t))
	} else {
		cmd.Env = append(cmd.Env, "PYTHONPATH=")
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during(cmd, logFile)
	}
	err = cmd.Wait()
	w := &workerRun{stdout: out.String(), stderr: errb.String(), runDir: runDir}
	if ee, ok := err.(*exec.ExitError); ok {
		w.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(w.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e record.Event
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("stdout line is not an event (%v): %s\nstderr:\n%s", err, sc.Text(), w.stderr)
		}
		w.events = append(w.events, e)
	}
	if len(w.events) > 0 {
		if _, err := schemas.CheckNDJSON(out.Bytes()); err != nil {
			t.Fatalf("worker output fails schemas/event.schema.json: %v", err)
		}
	}
	if lb, err := os.ReadFile(logFile); err == nil {
		for _, line := range bytes.Split(bytes.TrimSpace(lb), []byte("\n")) {
			var c call
			if err := json.Unmarshal(line, &c); err != nil {
				t.Fatalf("call log: %v: %s", err, line)
			}
			w.calls = append(w.calls, c)
		}
	}
	return w
}

// checkProtocolOrder asserts the protocol's order: hello first; load, then
// (optionally) warmup, then measure, each start before end; model after load
// started; requests only inside measure; memory after measure; done last; the
// event times never go back.
func checkProtocolOrder(t *testing.T, evs []record.Event) {
	t.Helper()
	if len(evs) == 0 || evs[0].Event != record.EventHello {
		t.Fatalf("first event must be hello: %+v", evs)
	}
	if evs[len(evs)-1].Event != record.EventDone {
		t.Fatalf("last event must be done, got %+v", evs[len(evs)-1])
	}
	var seq []string
	inMeasure, sawModel, sawMemory := false, false, false
	var lastT int64
	for _, e := range evs {
		if e.T < lastT {
			t.Fatalf("event time went back at %+v", e)
		}
		lastT = e.T
		switch e.Event {
		case record.EventPhase:
			seq = append(seq, e.Phase+"."+e.Edge)
			inMeasure = e.Phase == record.PhaseMeasure && e.Edge == record.EdgeStart
		case record.EventModel:
			if len(seq) == 0 {
				t.Fatal("model before load started")
			}
			sawModel = true
		case record.EventRequest:
			if !inMeasure {
				t.Fatalf("request outside the measure phase: %+v", e.Request)
			}
		case record.EventMemory:
			if len(seq) == 0 || seq[len(seq)-1] != "measure.end" {
				t.Fatal("memory before the measure phase ended")
			}
			sawMemory = true
		case record.EventError:
			t.Fatalf("error event in a good run: %s %s", e.Code, e.Message)
		}
	}
	got := strings.Join(seq, " ")
	if got != "load.start load.end warmup.start warmup.end measure.start measure.end" && got != "load.start load.end measure.start measure.end" {
		t.Fatalf("phases %q", got)
	}
	if !sawModel || !sawMemory {
		t.Fatalf("model %v memory %v", sawModel, sawMemory)
	}
}

func requests(evs []record.Event) []*record.RequestEvent {
	var out []*record.RequestEvent
	for _, e := range evs {
		if e.Event == record.EventRequest {
			out = append(out, e.Request)
		}
	}
	return out
}

func last(evs []record.Event, kind string) *record.Event {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Event == kind {
			return &evs[i]
		}
	}
	return nil
}

// wants asserts that got[k] equals want[k] for every k (JSON-level equality).
func wants(t *testing.T, what string, got map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		gv, ok := got[k]
		wb, _ := json.Marshal(v)
		gb, _ := json.Marshal(gv)
		if !ok || !jsonEqual(wb, gb) {
			t.Errorf("%s: %s = %s, want %s (config field not wired)", what, k, gb, wb)
		}
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	_ = json.Unmarshal(a, &x)
	_ = json.Unmarshal(b, &y)
	return reflect.DeepEqual(x, y)
}

// decoderFull sets every decoder field but preset, which the config package
// expands before a worker sees the config.
func decoderFull() map[string]any {
	return map[string]any{"temperature": 0.7, "do_sample": true, "top_k": 20, "top_p": 0.9,
		"repetition_penalty": 1.2, "min_p": 0.05, "min_new_tokens": 2, "preset": nil}
}

func baseConfig(backend, model string) map[string]any {
	return map[string]any{
		"model": model, "backend": backend, "n": 3, "precision": "fp16", "random_seed": 7,
		"max_input_tokens": 3, "max_output_tokens": 5,
		"decoder": decoderFull(),
		"warmup": map[string]any{"enabled": true, "n_warmup": 2, "thermal_floor_seconds": 0, "convergence_detection": false,
			"cv_threshold": 0.05, "max_prompts": 20, "window_size": 3, "min_prompts": 1},
		"passthrough_kwargs": nil,
	}
}

var prompts3 = []string{"alpha beta gamma delta", "one two", "x yy zzz wwww vvvvv"}

// pytorchFull sets every pytorch field (and one extra key).
func pytorchFull() map[string]any {
	return map[string]any{
		"batch_size": 2, "attn_implementation": "sdpa", "torch_compile": true, "torch_compile_mode": "reduce-overhead",
		"torch_compile_backend": "eager", "load_in_4bit": true, "load_in_8bit": false, "bnb_4bit_compute_dtype": "bfloat16",
		"bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true, "use_cache": true, "cache_implementation": "static",
		"num_beams": 1, "early_stopping": false, "length_penalty": 1.5, "no_repeat_ngram_size": 3, "prompt_lookup_num_tokens": 4,
		"device_map": "cpu", "max_memory": map[string]any{"0": "10GiB", "cpu": "30GiB"}, "revision": "abc123",
		"trust_remote_code": false, "num_processes": 1,
		"low_cpu_mem_usage": true, // an extra key: forwarded to from_pretrained
	}
}

func TestPyTorchWorkerWiresEveryField(t *testing.T) {
	needPython(t)
	cfg := baseConfig("pytorch", "org/fake-moe")
	cfg["pytorch"] = pytorchFull()
	cfg["passthrough_kwargs"] = map[string]any{"attn_dropout": 0.25}
	w := runWorker(t, "pytorch", cfg, prompts3, true, t.TempDir(), nil)
	if w.exit != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", w.exit, w.stdout, w.stderr)
	}
	checkProtocolOrder(t, w.events)

	fp := w.find("AutoModelForCausalLM.from_pretrained")
	if len(fp) != 1 || fp[0].Args[0] != "org/fake-moe" {
		t.Fatalf("from_pretrained calls %+v", fp)
	}
	wants(t, "from_pretrained", fp[0].Kwargs, map[string]any{
		"torch_dtype": "torch.float16", "device_map": "cpu", "trust_remote_code": false, "attn_implementation": "sdpa",
		"revision": "abc123", "max_memory": map[string]any{"int:0": "10GiB", "cpu": "30GiB"},
		"quantization_config": map[string]any{"BitsAndBytesConfig": map[string]any{"load_in_4bit": true,
			"bnb_4bit_compute_dtype": "torch.bfloat16", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true}},
		"low_cpu_mem_usage": true, "attn_dropout": 0.25,
	})
	for _, k := range []string{"batch_size", "num_processes", "torch_compile", "use_cache", "num_beams"} {
		if _, ok := fp[0].Kwargs[k]; ok {
			t.Errorf("from_pretrained got the generate/worker field %s", k)
		}
	}
	tk := w.find("AutoTokenizer.from_pretrained")
	wants(t, "AutoTokenizer.from_pretrained", tk[0].Kwargs, map[string]any{"trust_remote_code": false, "revision": "abc123"})
	wants(t, "torch.compile", w.find("torch.compile")[0].Kwargs, map[string]any{"mode": "reduce-overhead", "backend": "eager"})
	if s := w.find("transformers.set_seed"); len(s) != 1 || s[0].Args[0] != float64(7) {
		t.Errorf("set_seed %+v", s)
	}
	for _, c := range w.find("tokenizer") {
		wants(t, "tokenizer", c.Kwargs, map[string]any{"truncation": true, "max_length": 3, "padding": true, "padding_side": "left"})
	}
	gens := w.find("model.generate")
	if len(gens) != 4 { // 2 warmup + ceil(3/2) measured batches
		t.Fatalf("generate called %d times, want 4", len(gens))
	}
	for _, g := range gens {
		wants(t, "generate", g.Kwargs, map[string]any{"max_new_tokens": 5, "do_sample": true, "temperature": 0.7, "top_k": 20,
			"top_p": 0.9, "min_p": 0.05, "repetition_penalty": 1.2, "min_new_tokens": 2, "use_cache": true,
			"cache_implementation": "static", "num_beams": 1, "early_stopping": false, "length_penalty": 1.5,
			"no_repeat_ngram_size": 3, "prompt_lookup_num_tokens": 4, "pad_token_id": 2})
	}
	if gens[0].Kwargs["batch"] != float64(2) || gens[2].Kwargs["batch"] != float64(2) || gens[3].Kwargs["batch"] != float64(1) {
		t.Errorf("warmup batch %v (want batch_size 2), measured batches %v %v (want 2 then 1)", gens[0].Kwargs["batch"], gens[2].Kwargs["batch"], gens[3].Kwargs["batch"])
	}

	// The stand-in model emits EOS after i+2 tokens for batch row i.
	reqs := requests(w.events)
	wantOut := []int{2, 3, 2}
	wantIn := []int{3, 2, 3} // truncated to max_input_tokens = 3; padding not counted
	for i, r := range reqs {
		if r.ID != i || r.InputTokens != wantIn[i] || r.OutputTokens != wantOut[i] || len(r.ITLNS) != wantOut[i]-1 {
			t.Errorf("request %d: %+v", i, r)
		}
		if !(r.TStartNS < r.TFirstNS && r.TFirstNS <= r.TEndNS) {
			t.Errorf("request %d times %d %d %d", i, r.TStartNS, r.TFirstNS, r.TEndNS)
		}
		for _, g := range r.ITLNS {
			if g < int64(2*time.Millisecond) { // the stand-in sleeps 2 ms a step: gaps are measured, not invented
				t.Errorf("request %d inter-token gap %d ns shorter than a step", i, g)
			}
		}
	}
	m := last(w.events, record.EventModel).Model
	if *m.Parameters != 2064 || *m.NonEmbeddingParameters != 1264 || m.ActiveParameters == nil || *m.ActiveParameters != 1864 || *m.Layers != 2 || *m.KVHeads != 1 {
		t.Errorf("model facts %+v", m)
	}
	d := last(w.events, record.EventDone)
	if d.Totals.Requests != 3 || d.Totals.InputTokens != 8 || d.Totals.OutputTokens != 7 || *d.Totals.Batches != 2 {
		t.Errorf("totals %+v", d.Totals)
	}
	if d.Warmup == nil || d.Warmup.Requests != 2 || d.Warmup.Mode != "fixed" || len(d.Warmup.LatenciesS) != 2 {
		t.Errorf("warmup %+v", d.Warmup)
	}
}

func TestPyTorchWorkerGreedyDropsSampling(t *testing.T) {
	needPython(t)
	cfg := baseConfig("pytorch", "org/dense")
	cfg["decoder"] = map[string]any{"temperature": 0.0, "do_sample": true, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0}
	cfg["warmup"] = map[string]any{"enabled": false}
	cfg["lora"] = map[string]any{"adapter_id": "org/adapter", "adapter_path": nil, "merge_weights": true}
	w := runWorker(t, "pytorch", cfg, prompts3, true, t.TempDir(), nil)
	if w.exit != 0 {
		t.Fatalf("exit %d: %s", w.exit, w.stderr)
	}
	checkProtocolOrder(t, w.events)
	g := w.find("model.generate")[0].Kwargs
	if g["do_sample"] != false {
		t.Errorf("greedy: do_sample %v", g["do_sample"])
	}
	for _, k := range []string{"temperature", "top_k", "top_p", "min_p"} {
		if _, ok := g[k]; ok {
			t.Errorf("greedy generate got %s", k)
		}
	}
	if p := w.find("PeftModel.from_pretrained"); len(p) != 1 || p[0].Args[0] != "org/adapter" || len(w.find("PeftModel.merge_and_unload")) != 1 {
		t.Errorf("lora adapter not applied and merged: %+v", w.calls)
	}
	fp := w.find("AutoModelForCausalLM.from_pretrained")[0].Kwargs
	wants(t, "defaults", fp, map[string]any{"device_map": "auto", "trust_remote_code": true})
	if _, ok := fp["quantization_config"]; ok {
		t.Error("quantization_config without load_in_4bit/8bit")
	}
	m := last(w.events, record.EventModel).Model
	if m.ActiveParameters != nil {
		t.Errorf("a dense model has no active-parameter figure, got %d", *m.ActiveParameters)
	}
	if d := last(w.events, record.EventDone); d.Warmup.Mode != "disabled" || d.Warmup.Requests != 0 {
		t.Errorf("warmup %+v", d.Warmup)
	}
}

// writeSafetensors writes a model directory whose one safetensors file holds
// these tensors (header only matters; data is zeros).
func writeSafetensors(t *testing.T, tensors map[string][]int) string {
	dir := t.TempDir()
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	off := 0
	for name, shape := range tensors {
		n := 2
		for _, d := range shape {
			n *= d
		}
		hdr[name] = map[string]any{"dtype": "F16", "shape": shape, "data_offsets": []int{off, off + n}}
		off += n
	}
	hb, _ := json.Marshal(hdr)
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, uint64(len(hb)))
	buf.Write(hb)
	buf.Write(make([]byte, off))
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// vllmEngineScalars sets every plain vllm.engine field. (kv_cache_memory_bytes
// and gpu_memory_utilization exclude each other in a valid config; the worker
// forwards both, which is what is tested.)
func vllmEngineScalars() map[string]any {
	return map[string]any{
		"gpu_memory_utilization": 0.8, "swap_space": 2.0, "cpu_offload_gb": 1.0, "block_size": 32, "kv_cache_dtype": "fp8",
		"enforce_eager": true, "enable_chunked_prefill": false, "max_num_seqs": 64, "max_num_batched_tokens": 4096,
		"max_model_len": 2048, "tensor_parallel_size": 2, "pipeline_parallel_size": 1, "enable_prefix_caching": true,
		"quantization": "fp8", "offload_group_size": 0, "offload_num_in_group": 1,
		"offload_prefetch_step": 1, "disable_custom_all_reduce": true, "kv_cache_memory_bytes": 1 << 30,
		"compilation_config": map[string]any{"level": 3},
	}
}

func vllmAttentionFull() map[string]any {
	return map[string]any{"backend": "FLASHINFER", "flash_attn_version": 3, "flash_attn_max_num_splits_for_cuda_graph": 16,
		"use_prefill_decode_attention": true, "use_prefill_query_quantization": false, "use_cudnn_prefill": true,
		"disable_flashinfer_prefill": false, "disable_flashinfer_q_quantization": true, "use_trtllm_attention": false,
		"use_trtllm_ragged_deepseek_prefill": true}
}

// attentionConfigWant is vllmAttentionFull without backend (sent as attention_backend).
func attentionConfigWant() map[string]any {
	a := vllmAttentionFull()
	delete(a, "backend")
	return a
}

func vllmSamplingFull() map[string]any {
	return map[string]any{"max_tokens": 4, "min_tokens": 1, "presence_penalty": 0.5, "frequency_penalty": 0.25, "ignore_eos": true, "n": 1, "logprobs": 2}
}

func vllmBeamFull() map[string]any {
	return map[string]any{"beam_width": 3, "length_penalty": 0.9, "early_stopping": true, "max_tokens": 6}
}

func trtFull() map[string]any {
	return map[string]any{"max_batch_size": 4, "tp_size": 1, "quantization": "int4_awq", "engine_path": nil,
		"max_num_tokens": 4096}
}

func TestVLLMWorkerWiresEveryField(t *testing.T) {
	needPython(t)
	model := writeSafetensors(t, map[string][]int{"model.embed_tokens.weight": {200, 16}, "model.layers.0.mlp.up_proj.weight": {32, 16}, "lm_head.weight": {200, 16}})
	cfg := baseConfig("vllm", model)
	engine := vllmEngineScalars()
	full := map[string]any{}
	for k, v := range engine {
		full[k] = v
	}
	full["speculative_model"] = "org/draft"
	full["num_speculative_tokens"] = 3
	full["offload_params"] = []string{"w1", "w2"}
	full["attention"] = vllmAttentionFull()
	full["enable_lora"] = false // extra engine key
	cfg["vllm"] = map[string]any{"engine": full,
		"sampling":    vllmSamplingFull(),
		"beam_search": nil, "max_logprobs": 5}
	w := runWorker(t, "vllm", cfg, prompts3, true, t.TempDir(), nil)
	if w.exit != 0 {
		t.Fatalf("exit %d\n%s\n%s", w.exit, w.stdout, w.stderr)
	}
	checkProtocolOrder(t, w.events)
	llm := w.find("LLM")[0].Kwargs
	wantLLM := map[string]any{"model": model, "dtype": "float16", "trust_remote_code": true, "seed": 7,
		"speculative_config": map[string]any{"model": "org/draft", "num_speculative_tokens": 3},
		"offload_params":     map[string]any{"__set__": []string{"w1", "w2"}}, "attention_backend": "FLASHINFER",
		"attention_config": attentionConfigWant(),
		"enable_lora":      false, "max_logprobs": 5}
	for k, v := range engine {
		if v != nil {
			wantLLM[k] = v
		}
	}
	wants(t, "LLM", llm, wantLLM)
	for _, k := range []string{"speculative_model", "num_speculative_tokens", "attention", "sampling"} {
		if _, ok := llm[k]; ok {
			t.Errorf("LLM got %s", k)
		}
	}
	measured := measuredParams(t, w.find("SamplingParams"))
	wants(t, "SamplingParams", measured, map[string]any{"max_tokens": 4, "temperature": 0.7, "top_k": 20, "top_p": 0.9,
		"min_p": 0.05, "repetition_penalty": 1.2, "min_tokens": 1, "presence_penalty": 0.5, "frequency_penalty": 0.25,
		"ignore_eos": true, "n": 1, "logprobs": 2})
	adds := w.find("engine.add_request")
	if len(adds) != 3 {
		t.Fatalf("add_request %d", len(adds))
	}
	for i, a := range adds {
		ids := a.Args[1].(map[string]any)["prompt_token_ids"].([]any)
		if len(ids) > 3 {
			t.Errorf("prompt %d not truncated to max_input_tokens: %v", i, ids)
		}
	}
	// The stand-in engine gives request k k+2 tokens, one per step.
	for i, r := range requests(w.events) {
		if r.OutputTokens != i+2 || len(r.ITLNS) != i+1 || r.Batch != -1 || r.TFirstNS <= r.TStartNS || r.TEndNS < r.TFirstNS {
			t.Errorf("request %d %+v", i, r)
		}
	}
	m := last(w.events, record.EventModel).Model
	if *m.Parameters != 200*16*2+32*16 || *m.NonEmbeddingParameters != 200*16+32*16 || *m.Layers != 3 || *m.KVHeads != 2 {
		t.Errorf("model facts from safetensors headers + hf config: %+v", m)
	}
	if d := last(w.events, record.EventDone); d.Totals.OutputTokens != 2+3+4 || d.Totals.Requests != 3 {
		t.Errorf("totals %+v", d.Totals)
	}
}

// measuredParams is the one SamplingParams call that is not the warmup's
// single greedy token.
func measuredParams(t *testing.T, calls []call) map[string]any {
	t.Helper()
	var out []map[string]any
	for _, c := range calls {
		if !(len(c.Kwargs) == 2 && c.Kwargs["max_tokens"] == float64(1) && c.Kwargs["temperature"] == float64(0)) {
			out = append(out, c.Kwargs)
		}
	}
	if len(out) != 1 {
		t.Fatalf("want one measured SamplingParams, got %v", out)
	}
	return out[0]
}

func TestVLLMWorkerBeamSearch(t *testing.T) {
	needPython(t)
	cfg := baseConfig("vllm", "org/fake")
	cfg["decoder"] = map[string]any{"temperature": 0.0, "top_k": 0}
	cfg["vllm"] = map[string]any{"engine": nil, "sampling": nil,
		"beam_search": vllmBeamFull()}
	w := runWorker(t, "vllm", cfg, prompts3, true, t.TempDir(), nil)
	if w.exit != 0 {
		t.Fatalf("exit %d\n%s", w.exit, w.stderr)
	}
	checkProtocolOrder(t, w.events)
	beam := vllmBeamFull()
	delete(beam, "early_stopping") // not a BeamSearchParams field in vLLM 0.11 (the stand-in's signature)
	wants(t, "BeamSearchParams", w.find("BeamSearchParams")[0].Kwargs, beam)
	unsupported := false
	for _, e := range w.events {
		unsupported = unsupported || (e.Event == record.EventWarning && e.Code == "unsupported_field" && strings.Contains(e.Message, "vllm.beam_search.early_stopping"))
	}
	if !unsupported {
		t.Error("a field the engine does not accept must be named in a warning")
	}
	if len(w.find("LLM.beam_search")) != 1 || len(w.find("engine.add_request")) != 0 {
		t.Error("beam search must go through LLM.beam_search")
	}
	if last(w.events, record.EventWarning) == nil {
		t.Error("no warning that beam search has no token timing")
	}
	for _, r := range requests(w.events) {
		if r.OutputTokens != 3 {
			t.Errorf("beam request %+v", r)
		}
	}
}

func TestTensorRTWorkerBuildsThenLoadsCachedEngine(t *testing.T) {
	needPython(t)
	cfg := baseConfig("tensorrt", "org/fake")
	cfg["tensorrt"] = trtFull()
	cache := t.TempDir()
	w := runWorker(t, "tensorrt", cfg, prompts3, true, cache, nil)
	if w.exit != 0 {
		t.Fatalf("exit %d\n%s\n%s", w.exit, w.stdout, w.stderr)
	}
	checkProtocolOrder(t, w.events)
	llm := w.find("_tensorrt_engine.LLM")
	if len(llm) != 1 {
		t.Fatalf("want the TensorRT-engine LLM class, calls %+v", w.calls)
	}
	wants(t, "LLM", llm[0].Kwargs, map[string]any{"model": "org/fake", "tensor_parallel_size": 1, "dtype": "float16",
		"trust_remote_code": true, "max_num_tokens": 4096,
		"build_config": map[string]any{"BuildConfig": map[string]any{"max_batch_size": 4, "max_input_len": 3, "max_seq_len": 8}},
		"quant_config": map[string]any{"QuantConfig": map[string]any{"quant_algo": "W4A16_AWQ"}}})
	saves := w.find("LLM.save")
	if len(saves) != 1 {
		t.Fatalf("engine not saved to the cache: %+v", saves)
	}
	wants(t, "SamplingParams", measuredParams(t, w.find("SamplingParams")), map[string]any{"max_tokens": 5, "temperature": 0.7, "top_k": 20, "top_p": 0.9,
		"min_p": 0.05, "repetition_penalty": 1.2, "min_tokens": 2, "seed": 7})
	for i, r := range requests(w.events) {
		if r.OutputTokens < 2 || len(r.ITLNS) != r.OutputTokens-1 || r.TFirstNS <= r.TStartNS {
			t.Errorf("request %d %+v", i, r)
		}
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "trt-engines", "*", "config.json"))
	if len(entries) != 1 {
		t.Fatalf("engine cache %v", entries)
	}

	// Same config again: loaded from the cache, not rebuilt.
	w2 := runWorker(t, "tensorrt", cfg, prompts3, true, cache, nil)
	if w2.exit != 0 {
		t.Fatalf("second run exit %d: %s", w2.exit, w2.stderr)
	}
	l2 := w2.find("_tensorrt_engine.LLM")
	if len(w2.find("LLM.save")) != 0 || len(l2) != 1 || l2[0].Kwargs["model"] != filepath.Dir(entries[0]) {
		t.Fatalf("second run did not load the cached engine: %+v", w2.calls)
	}
	if _, ok := l2[0].Kwargs["build_config"]; ok {
		t.Error("loading a cached engine passed a build config")
	}
	// A different config is a different engine.
	cfg["tensorrt"].(map[string]any)["max_batch_size"] = 8
	w3 := runWorker(t, "tensorrt", cfg, prompts3, true, cache, nil)
	if len(w3.find("LLM.save")) != 1 {
		t.Fatal("a changed config reused the old engine")
	}
}

func TestWorkerFailuresAreErrorEvents(t *testing.T) {
	needPython(t)
	// The engine raises while loading.
	w := runWorker(t, "pytorch", baseConfig("pytorch", "fail-to-load"), prompts3, true, t.TempDir(), nil)
	if w.exit == 0 || last(w.events, record.EventError) == nil || w.events[len(w.events)-1].Event != record.EventError {
		t.Fatalf("exit %d events %+v", w.exit, w.events)
	}
	if e := w.events[len(w.events)-1]; e.Code != "worker_exception" || !strings.Contains(e.Message, "no such model") {
		t.Errorf("error event %+v", e)
	}
	// The backend is not installed in this Python.
	w = runWorker(t, "vllm", baseConfig("vllm", "m"), prompts3, false, t.TempDir(), nil)
	if e := w.events[len(w.events)-1]; w.exit == 0 || e.Event != record.EventError || e.Code != "backend_missing" || e.Hint == "" {
		t.Fatalf("exit %d last %+v", w.exit, e)
	}
	// No prompts.
	w = runWorker(t, "pytorch", baseConfig("pytorch", "m"), nil, true, t.TempDir(), nil)
	if e := w.events[len(w.events)-1]; w.exit == 0 || e.Code != "no_prompts" {
		t.Fatalf("exit %d last %+v", w.exit, e)
	}
}

func TestWorkerSIGTERM(t *testing.T) {
	needPython(t)
	w := runWorker(t, "pytorch", baseConfig("pytorch", "hang"), prompts3, true, t.TempDir(), func(cmd *exec.Cmd, callLog string) {
		// Wait until the worker is inside from_pretrained (the stand-in hangs
		// there), polling its call log; only a hang reaches the bound.
		for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if b, _ := os.ReadFile(callLog); bytes.Contains(b, []byte("AutoModelForCausalLM.from_pretrained")) {
				break
			}
			if time.Now().After(deadline) {
				t.Error("the worker never reached from_pretrained")
				break
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
	})
	if w.exit != 130 { // cli.ExitInterrupted
		t.Fatalf("exit %d, want 130\n%s", w.exit, w.stderr)
	}
	if e := w.events[len(w.events)-1]; e.Event != record.EventError || e.Code != "terminated" {
		t.Fatalf("last event %+v", e)
	}
}

func TestCommandAndExtract(t *testing.T) {
	needPython(t)
	cache := t.TempDir()
	argv, err := Command("pytorch", cache)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "python-"+Hash())
	if len(argv) != 3 || argv[1] != filepath.Join(dir, Entry) || argv[2] != "pytorch" {
		t.Fatalf("argv %v", argv)
	}
	for _, f := range []string{"llem_worker/main.py", "llem_worker/pytorch_backend.py", "llem_worker/vllm_backend.py", "llem_worker/tensorrt_backend.py"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	again, err := Extract(cache)
	if err != nil || again != dir {
		t.Fatalf("second extract %s %v", again, err)
	}
	if _, err := Command("native", cache); err == nil {
		t.Error("native has no Python worker")
	}
	t.Setenv("LLEM_PYTHON", "/opt/py/bin/python3.12")
	if argv, _ := Command("vllm", cache); argv[0] != "/opt/py/bin/python3.12" {
		t.Errorf("LLEM_PYTHON ignored: %v", argv)
	}
}

// TestEveryConfigFieldIsExercised keeps the worker tests in step with the
// config schema (internal/config): every field of every backend section and of
// the decoder must be set, non-null, in the configs the wiring tests run, so a
// field added to the schema fails here until a test proves it reaches the
// engine.
func TestEveryConfigFieldIsExercised(t *testing.T) {
	eng := vllmEngineScalars()
	eng["speculative_model"], eng["num_speculative_tokens"], eng["offload_params"], eng["attention"] = "d", 1, []string{"w"}, vllmAttentionFull()
	trt := trtFull()
	trt["engine_path"] = "covered by TestTensorRTWorkerGivenEnginePath"
	dec := decoderFull()
	dec["preset"] = "expanded by internal/config before any worker runs"
	pt := pytorchFull()
	for path, m := range map[string]map[string]any{
		"pytorch": pt, "vllm.engine": eng, "vllm.engine.attention": vllmAttentionFull(), "vllm.sampling": vllmSamplingFull(),
		"vllm.beam_search": vllmBeamFull(), "tensorrt": trt, "decoder": dec,
	} {
		fields, err := config.Fields(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, f := range fields {
			if v, ok := m[f]; !ok || v == nil {
				t.Errorf("config field %s.%s is not exercised by the worker tests", path, f)
			}
		}
	}
	vf, _ := config.Fields("vllm")
	for _, f := range vf {
		if f != "engine" && f != "sampling" && f != "beam_search" {
			t.Errorf("config field vllm.%s is not exercised by the worker tests", f)
		}
	}
}

func TestTensorRTWorkerGivenEnginePath(t *testing.T) {
	needPython(t)
	engine := t.TempDir()
	cfg := baseConfig("tensorrt", "org/fake")
	cfg["tensorrt"] = map[string]any{"max_batch_size": 4, "tp_size": 2, "quantization": nil, "engine_path": engine}
	w := runWorker(t, "tensorrt", cfg, prompts3, true, t.TempDir(), nil)
	if w.exit != 0 {
		t.Fatalf("exit %d: %s", w.exit, w.stderr)
	}
	checkProtocolOrder(t, w.events)
	l := w.find("_tensorrt_engine.LLM")
	if len(l) != 1 || l[0].Kwargs["model"] != engine || l[0].Kwargs["tensor_parallel_size"] != float64(2) || len(w.find("LLM.save")) != 0 {
		t.Fatalf("given engine not loaded as is: %+v", w.calls)
	}
	cfg["tensorrt"].(map[string]any)["engine_path"] = filepath.Join(engine, "missing")
	w = runWorker(t, "tensorrt", cfg, prompts3, true, t.TempDir(), nil)
	if e := w.events[len(w.events)-1]; w.exit == 0 || e.Code != "engine_missing" {
		t.Fatalf("missing engine_path: exit %d %+v", w.exit, e)
	}
}

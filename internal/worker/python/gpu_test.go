package python

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llem/llem/internal/record"
)

// The GPU paths against what the real libraries do (issue 15), with the
// stand-ins: each test sets up what the real library would see or do and
// asserts the worker's answer.

func lastError(t *testing.T, w *workerRun) record.Event {
	t.Helper()
	if w.exit == 0 || len(w.events) == 0 || w.events[len(w.events)-1].Event != record.EventError {
		t.Fatalf("want a failed run ending in an error event: exit %d\n%s\n%s", w.exit, w.stdout, w.stderr)
	}
	return w.events[len(w.events)-1]
}

func hello(w *workerRun) string {
	for _, e := range w.events {
		if e.Event == record.EventHello {
			return e.Version
		}
	}
	return ""
}

// vLLM v0.11 (the default image) has no attention_config nor offload_*:
// LLM(**kw) would raise TypeError inside EngineArgs. The worker refuses them
// by name before loading anything; the same config without them runs.
func TestVLLMRefusesEngineArgsTheInstalledVersionLacks(t *testing.T) {
	needPython(t)
	t.Setenv("LLEM_FAKE_VLLM_OLD", "1")
	cfg := baseConfig("vllm", "org/fake")
	cfg["vllm"] = map[string]any{"engine": map[string]any{"max_num_seqs": 8, "offload_group_size": 2,
		"attention": map[string]any{"backend": "FLASH_ATTN", "flash_attn_version": 3}}}
	w := runWorker(t, "vllm", cfg, prompts3, true, t.TempDir(), nil)
	e := lastError(t, w)
	if e.Code != "unsupported_engine_arg" || !strings.Contains(e.Message, "attention_config, offload_group_size") || e.Hint == "" {
		t.Fatalf("error %+v", e)
	}
	if len(w.find("LLM")) != 0 {
		t.Fatal("the engine was constructed before the arguments were checked")
	}
	cfg["vllm"] = map[string]any{"engine": map[string]any{"max_num_seqs": 8, "attention": map[string]any{"backend": "FLASH_ATTN"}}}
	if w := runWorker(t, "vllm", cfg, prompts3, true, t.TempDir(), nil); w.exit != 0 {
		t.Fatalf("fields v0.11 has were refused: %s", w.stdout)
	}
}

// TensorRT-LLM's LlmArgs: kv_cache_free_gpu_memory_fraction belongs to
// KvCacheConfig, not the LLM; passed at the top it is refused by name.
func TestTensorRTRefusesUnknownLlmArgs(t *testing.T) {
	needPython(t)
	cfg := baseConfig("tensorrt", "org/fake")
	cfg["tensorrt"] = map[string]any{"max_batch_size": 4, "kv_cache_free_gpu_memory_fraction": 0.5}
	w := runWorker(t, "tensorrt", cfg, prompts3, true, t.TempDir(), nil)
	if e := lastError(t, w); e.Code != "unsupported_engine_arg" || !strings.Contains(e.Message, "kv_cache_free_gpu_memory_fraction") || !strings.Contains(e.Message, "TrtLlmArgs") {
		t.Fatalf("error %+v", e)
	}
	if len(w.find("_tensorrt_engine.LLM")) != 0 {
		t.Fatal("the LLM was constructed before the arguments were checked")
	}
}

// Both flows of the LLM API, the one that ran recorded; a missing engine
// flow on TensorRT-LLM 1.x fails, naming it, instead of measuring the
// PyTorch flow under the engine flow's name.
func TestTensorRTFlows(t *testing.T) {
	needPython(t)
	cfg := baseConfig("tensorrt", "org/fake")
	cfg["tensorrt"] = map[string]any{"max_batch_size": 4, "flow": "pytorch"}
	w := runWorker(t, "tensorrt", cfg, prompts3, true, t.TempDir(), nil)
	if w.exit != 0 {
		t.Fatalf("pytorch flow: exit %d\n%s", w.exit, w.stderr)
	}
	checkProtocolOrder(t, w.events)
	l := w.find("tensorrt_llm.LLM")
	if len(l) != 1 || len(w.find("_tensorrt_engine.LLM")) != 0 || len(w.find("LLM.save")) != 0 {
		t.Fatalf("pytorch flow calls %+v", w.calls)
	}
	wants(t, "LLM (pytorch flow)", l[0].Kwargs, map[string]any{"max_batch_size": 4, "max_input_len": 3, "max_seq_len": 8})
	if _, ok := l[0].Kwargs["build_config"]; ok || !strings.Contains(hello(w), "flow pytorch") {
		t.Fatalf("pytorch flow: build_config passed, or flow not recorded (%q)", hello(w))
	}

	cfg["tensorrt"] = map[string]any{"max_batch_size": 4}
	w = runWorker(t, "tensorrt", cfg, prompts3, true, t.TempDir(), nil)
	if w.exit != 0 || !strings.Contains(hello(w), "flow engine") {
		t.Fatalf("engine flow: exit %d, hello %q", w.exit, hello(w))
	}

	t.Setenv("LLEM_FAKE_TRT_NO_ENGINE", "1")
	w = runWorker(t, "tensorrt", cfg, prompts3, true, t.TempDir(), nil)
	if e := lastError(t, w); e.Code != "backend_missing" || !strings.Contains(e.Message, "_tensorrt_engine") || !strings.Contains(e.Hint, "flow: pytorch") {
		t.Fatalf("missing engine flow: %+v", e)
	}
	if len(w.find("tensorrt_llm.LLM")) != 0 {
		t.Fatal("fell back silently to the PyTorch flow")
	}
}

// The engine cache is keyed by the GPU model (and compute capability): an
// engine built on one GPU is never loaded on another sharing the cache.
func TestTensorRTCacheKeyedByGPU(t *testing.T) {
	needPython(t)
	cfg := baseConfig("tensorrt", "org/fake")
	cfg["tensorrt"] = map[string]any{"max_batch_size": 4}
	cache := t.TempDir()
	if w := runWorker(t, "tensorrt", cfg, prompts3, true, cache, nil); len(w.find("LLM.save")) != 1 {
		t.Fatalf("first build: %+v", w.calls)
	}
	if w := runWorker(t, "tensorrt", cfg, prompts3, true, cache, nil); len(w.find("LLM.save")) != 0 {
		t.Fatal("same GPU: rebuilt instead of loading the cache")
	}
	t.Setenv("LLEM_FAKE_GPU_NAME", "Fake A100")
	if w := runWorker(t, "tensorrt", cfg, prompts3, true, cache, nil); len(w.find("LLM.save")) != 1 {
		t.Fatal("another GPU model loaded the engine built for the first")
	}
}

// Two identical runs building at once: the second waits for the first's
// build (a lock next to the cache entry) and loads it; one build, no
// collision on the rename.
func TestTensorRTConcurrentBuild(t *testing.T) {
	needPython(t)
	if _, err := os.Stat("/proc/locks"); err != nil {
		t.Skip("SKIPPED: no /proc/locks to see the second build wait")
	}
	cfg := baseConfig("tensorrt", "org/fake")
	cfg["tensorrt"] = map[string]any{"max_batch_size": 4}
	cache := t.TempDir()
	release := filepath.Join(t.TempDir(), "release")
	t.Setenv("LLEM_FAKE_BUILD_WAIT", release)
	var wg sync.WaitGroup
	var b *workerRun
	a := runWorker(t, "tensorrt", cfg, prompts3, true, cache, func(cmd *exec.Cmd, callLog string) {
		waitFor(t, func() bool { log, _ := os.ReadFile(callLog); return bytes.Contains(log, []byte("build.start")) })
		locks := countBlockedFlocks()
		wg.Add(1)
		go func() { defer wg.Done(); b = runWorker(t, "tensorrt", cfg, prompts3, true, cache, nil) }()
		// The second run is blocked on the build lock before the first may finish.
		waitFor(t, func() bool { return countBlockedFlocks() > locks })
		if err := os.WriteFile(release, nil, 0o644); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if a.exit != 0 || b.exit != 0 {
		t.Fatalf("exits %d %d\n%s\n%s", a.exit, b.exit, a.stderr, b.stderr)
	}
	if len(a.find("LLM.save")) != 1 || len(b.find("LLM.save")) != 0 || len(b.find("build.start")) != 0 {
		t.Fatalf("want one build, the second run loading it: a %+v\nb %+v", a.calls, b.calls)
	}
}

// countBlockedFlocks counts processes waiting for a flock (lines "N: -> FLOCK").
func countBlockedFlocks() int {
	b, _ := os.ReadFile("/proc/locks")
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "-> FLOCK") {
			n++
		}
	}
	return n
}

// waitFor polls cond (a file the other process writes, a kernel table) until
// it holds; it waits on the event, with a generous cap against a hang.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("the awaited event never happened")
}

// attn_implementation flash_attention_2 without flash-attn installed: the
// error names the missing package, and nothing is loaded.
func TestPyTorchFlashAttentionMissing(t *testing.T) {
	needPython(t)
	cfg := baseConfig("pytorch", "org/dense")
	cfg["pytorch"] = map[string]any{"attn_implementation": "flash_attention_2"}
	w := runWorker(t, "pytorch", cfg, prompts3, true, t.TempDir(), nil)
	e := lastError(t, w)
	if e.Code != "dependency_missing" || !strings.Contains(e.Message, "flash-attn") || !strings.Contains(e.Message, "flash_attn") || !strings.Contains(e.Hint, "sdpa") {
		t.Fatalf("error %+v", e)
	}
	if len(w.find("AutoModelForCausalLM.from_pretrained")) != 0 {
		t.Fatal("the model was loaded before the check")
	}
}

// torch.compile: what generate calls (the module's forward) is compiled, so
// every generation step of warmup and measurement runs the compiled code; the
// done event records that compilation happened in warmup.
func TestPyTorchCompileReachesGenerate(t *testing.T) {
	needPython(t)
	cfg := baseConfig("pytorch", "org/dense")
	cfg["pytorch"] = map[string]any{"batch_size": 2, "torch_compile": true, "torch_compile_backend": "inductor", "device_map": "cpu"}
	w := runWorker(t, "pytorch", cfg, prompts3, true, t.TempDir(), nil)
	if w.exit != 0 {
		t.Fatalf("exit %d: %s", w.exit, w.stderr)
	}
	if c := w.find("torch.compile"); len(c) != 1 || c[0].Kwargs["target"] != "forward" {
		t.Fatalf("torch.compile must get the module's forward: %+v", c)
	}
	done := w.find("model.generate.done")
	if len(done) != 4 {
		t.Fatalf("generate calls %d", len(done))
	}
	for i, d := range done {
		if d.Kwargs["compiled_steps"] != d.Kwargs["steps"] {
			t.Errorf("generate %d ran %v of %v steps compiled", i, d.Kwargs["compiled_steps"], d.Kwargs["steps"])
		}
	}
	if wu := last(w.events, record.EventDone).Warmup; wu.Compiled == nil || !*wu.Compiled {
		t.Fatalf("done.warmup.compiled %+v", wu)
	}
	// Warmup off: the compile happens inside the measurement, and is said.
	cfg["warmup"] = map[string]any{"enabled": false}
	w = runWorker(t, "pytorch", cfg, prompts3, true, t.TempDir(), nil)
	if wu := last(w.events, record.EventDone).Warmup; wu.Compiled == nil || *wu.Compiled {
		t.Fatalf("no warmup: compiled %+v", wu)
	}
	if wn := last(w.events, record.EventWarning); wn == nil || wn.Code != "torch_compile_in_measurement" {
		t.Fatalf("no warning: %+v", wn)
	}
}

// TTFT has one definition in every worker: from when the request was
// submitted to the engine. Each request's t_start lies between the
// submission before it and its own submission as the stand-in engine saw
// them (the pytorch worker: after the previous batch ended, before its own
// batch's generate call; vllm: add_request; tensorrt: generate_async).
func TestTTFTStartsAtSubmission(t *testing.T) {
	needPython(t)
	model := writeSafetensors(t, map[string][]int{"model.embed_tokens.weight": {200, 16}})
	for _, c := range []struct{ backend, submit, prevEnd string }{
		{"pytorch", "model.generate", "model.generate.done"},
		{"vllm", "engine.add_request", "engine.add_request"},
		{"tensorrt", "generate_async", "generate_async"},
	} {
		t.Run(c.backend, func(t *testing.T) {
			cfg := baseConfig(c.backend, model)
			cfg["warmup"] = map[string]any{"enabled": false}
			if c.backend == "pytorch" {
				cfg["pytorch"] = map[string]any{"batch_size": 1, "device_map": "cpu"}
			}
			w := runWorker(t, c.backend, cfg, prompts3, true, t.TempDir(), nil)
			if w.exit != 0 {
				t.Fatalf("exit %d: %s", w.exit, w.stderr)
			}
			subs, prevs := w.find(c.submit), w.find(c.prevEnd)
			reqs := requests(w.events)
			if len(subs) != len(reqs) || len(prevs) != len(reqs) {
				t.Fatalf("%d submissions, %d requests", len(subs), len(reqs))
			}
			for _, r := range reqs {
				i := r.ID
				lo := int64(0)
				if i > 0 {
					lo = prevs[i-1].T
				}
				if r.TStartNS < lo || r.TStartNS > subs[i].T {
					t.Errorf("request %d: t_start %d outside [%d, %d] (previous submission/batch end, own submission)", i, r.TStartNS, lo, subs[i].T)
				}
				if r.TFirstNS < subs[i].T {
					t.Errorf("request %d: first token before its submission", i)
				}
			}
		})
	}
}

// vLLM in greedy mode keeps repetition_penalty (the other workers pass it),
// asks for delta outputs without detokenization, and counts tokens from the
// deltas correctly.
func TestVLLMGreedyPenaltyAndDeltas(t *testing.T) {
	needPython(t)
	cfg := baseConfig("vllm", "org/fake")
	cfg["decoder"] = map[string]any{"temperature": 0.0, "repetition_penalty": 1.3}
	w := runWorker(t, "vllm", cfg, prompts3, true, t.TempDir(), nil)
	if w.exit != 0 {
		t.Fatalf("exit %d: %s", w.exit, w.stderr)
	}
	wants(t, "SamplingParams", measuredParams(t, w.find("SamplingParams")), map[string]any{"temperature": 0, "repetition_penalty": 1.3,
		"output_kind": "RequestOutputKind.DELTA", "detokenize": false})
	for i, r := range requests(w.events) {
		if r.OutputTokens != i+2 || len(r.ITLNS) != i+1 {
			t.Errorf("request %d from deltas: %+v", i, r)
		}
	}
}

// Memory has one meaning for every backend. The stand-in GPU has 1 GiB used
// by another tenant before the worker starts; each stand-in engine then
// holds a known amount. peak_bytes is what the run held (the tenant
// excluded), device_used_bytes everything, model_bytes the weights,
// kv_cache_bytes vLLM's reserved KV cache (its blocks × bytes per block).
func TestMemoryFieldsOneMeaning(t *testing.T) {
	needPython(t)
	t.Setenv("LLEM_FAKE_CUDA", "1")
	const gib, mib = int64(1) << 30, int64(1) << 20
	const uuid = "GPU-fa4e0000-0000-4000-8000-000000000000"
	model := writeSafetensors(t, map[string][]int{"model.embed_tokens.weight": {200, 16}, "lm_head.weight": {200, 16}})
	for _, c := range []struct {
		backend       string
		engine, model int64
		kv            *int64
	}{
		{"pytorch", 6 * mib, 3 * mib, nil},                             // allocator reservation 5 MiB + context; weights 3 MiB
		{"vllm", 7 * mib, 6400 * 2, ptr(100 * 16 * 2 * 3 * 2 * 4 * 2)}, // blocks × block_size × K,V × layers × kv heads × head_dim × fp16
		{"tensorrt", 11 * mib, 6400 * 2, nil},
	} {
		t.Run(c.backend, func(t *testing.T) {
			cfg := baseConfig(c.backend, model)
			if c.backend == "pytorch" {
				cfg["pytorch"] = map[string]any{"batch_size": 2}
			}
			w := runWorker(t, c.backend, cfg, prompts3, true, t.TempDir(), nil)
			if w.exit != 0 {
				t.Fatalf("exit %d: %s", w.exit, w.stderr)
			}
			var g *record.Memory
			for _, m := range last(w.events, record.EventMemory).Memory {
				if m.Device == uuid {
					m := m
					g = &m
				}
			}
			if g == nil {
				t.Fatalf("no memory entry for the GPU: %+v", last(w.events, record.EventMemory).Memory)
			}
			eq := func(p *int64, v int64) bool { return p != nil && *p == v }
			if !eq(g.PeakBytes, c.engine) || !eq(g.DeviceUsedBytes, gib+c.engine) || !eq(g.ModelBytes, c.model) {
				t.Errorf("peak %v used %v model %v; want %d, %d, %d", deref(g.PeakBytes), deref(g.DeviceUsedBytes), deref(g.ModelBytes), c.engine, gib+c.engine, c.model)
			}
			if (c.kv == nil) != (g.KVCacheBytes == nil) || (c.kv != nil && *g.KVCacheBytes != *c.kv) {
				t.Errorf("kv_cache_bytes %v, want %v", deref(g.KVCacheBytes), deref(c.kv))
			}
		})
	}
}

func ptr(v int64) *int64 { return &v }

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

package serverargs

import (
	"slices"
	"strings"
	"testing"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/golden"
)

const serving = "serving: {rate: 1, requests: 10}\n"

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	c, _, err := config.Parse("t.yaml", []byte(src+serving))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return c
}

func launch(t *testing.T, src string) Launch {
	t.Helper()
	l, err := For(parse(t, src), "127.0.0.1", 8100)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return l
}

// The fixed head of each backend's command line: what llem sets itself.
var heads = map[string][]string{
	"vllm": {"vllm", "serve", "org/m", "--host", "127.0.0.1", "--port", "8100", "--served-model-name", "org/m",
		"--dtype", "bfloat16", "--seed", "42", "--trust-remote-code"},
	"sglang": {"python3", "-m", "sglang.launch_server", "--model-path", "org/m", "--host", "127.0.0.1", "--port", "8100",
		"--served-model-name", "org/m", "--dtype", "bfloat16", "--random-seed", "42", "--trust-remote-code",
		"--tp-size", "1", "--dp-size", "1"},
	"tensorrt": {"trtllm-serve", "org/m", "--host", "127.0.0.1", "--port", "8100", "--backend", "tensorrt",
		"--max_batch_size", "8", "--tp_size", "1", "--max_seq_len", "640", "--trust_remote_code"},
}

// Each field of each backend's section, mapped to its flags: the command
// line is the backend's head followed by exactly these arguments.
func TestFieldMappings(t *testing.T) {
	cases := []struct{ backend, section, want string }{
		{"vllm", "", ""},
		{"vllm", "engine: {gpu_memory_utilization: 0.85}", "--gpu-memory-utilization 0.85"},
		{"vllm", "engine: {swap_space: 4}", "--swap-space 4"},
		{"vllm", "engine: {cpu_offload_gb: 2.5}", "--cpu-offload-gb 2.5"},
		{"vllm", "engine: {block_size: 32}", "--block-size 32"},
		{"vllm", "engine: {kv_cache_dtype: fp8}", "--kv-cache-dtype fp8"},
		{"vllm", "engine: {enforce_eager: true}", "--enforce-eager"},
		{"vllm", "engine: {enforce_eager: false}", "--no-enforce-eager"},
		{"vllm", "engine: {enable_chunked_prefill: false}", "--no-enable-chunked-prefill"},
		{"vllm", "engine: {max_num_seqs: 128}", "--max-num-seqs 128"},
		{"vllm", "engine: {max_num_batched_tokens: 8192}", "--max-num-batched-tokens 8192"},
		{"vllm", "engine: {max_model_len: 4096}", "--max-model-len 4096"},
		{"vllm", "engine: {tensor_parallel_size: 2, pipeline_parallel_size: 2}", "--tensor-parallel-size 2 --pipeline-parallel-size 2"},
		{"vllm", "engine: {enable_prefix_caching: true}", "--enable-prefix-caching"},
		{"vllm", "engine: {quantization: awq}", "--quantization awq"},
		{"vllm", "engine: {speculative_model: org/draft, num_speculative_tokens: 4}",
			`--speculative-config {"model":"org/draft","num_speculative_tokens":4}`},
		{"vllm", "engine: {offload_group_size: 8, offload_num_in_group: 2, offload_prefetch_step: 1, offload_params: [w1, w2]}",
			"--offload-group-size 8 --offload-num-in-group 2 --offload-prefetch-step 1 --offload-params w1 w2"},
		{"vllm", "engine: {disable_custom_all_reduce: true}", "--disable-custom-all-reduce"},
		{"vllm", "engine: {kv_cache_memory_bytes: 1073741824}", "--kv-cache-memory-bytes 1073741824"},
		{"vllm", "engine: {compilation_config: {level: 3, cudagraph_capture_sizes: [1, 2]}}",
			`--compilation-config {"cudagraph_capture_sizes":[1,2],"level":3}`},
		{"vllm", "engine: {attention: {backend: FLASHINFER}}", "--attention-backend FLASHINFER"},
		{"vllm", "engine: {attention: {backend: FLASH_ATTN, flash_attn_version: 3, use_cudnn_prefill: true}}",
			`--attention-backend FLASH_ATTN --attention-config {"flash_attn_version":3,"use_cudnn_prefill":true}`},
		{"vllm", "engine: {max_num_seqs: 8, custom_knob: 3, long_prefill_token_threshold: 512}",
			"--max-num-seqs 8 --custom-knob 3 --long-prefill-token-threshold 512"},
		{"vllm", "engine: {hf_overrides: {rope_theta: 1e6}}", `--hf-overrides {"rope_theta":1000000}`},
		{"vllm", "async_scheduling: true", "--async-scheduling"},
		{"vllm", "sampling: {ignore_eos: true, max_tokens: 5}", ""},
		{"sglang", "", ""},
		{"sglang", "tp_size: 4", ""}, // replaces the head's 1
		{"sglang", "mem_fraction_static: 0.8", "--mem-fraction-static 0.8"},
		{"sglang", "max_running_requests: 64", "--max-running-requests 64"},
		{"sglang", "max_total_tokens: 100000", "--max-total-tokens 100000"},
		{"sglang", "chunked_prefill_size: -1", "--chunked-prefill-size -1"},
		{"sglang", "schedule_policy: dfs-weight", "--schedule-policy dfs-weight"},
		{"sglang", "context_length: 8192", "--context-length 8192"},
		{"sglang", "quantization: fp8", "--quantization fp8"},
		{"sglang", "kv_cache_dtype: fp8_e4m3", "--kv-cache-dtype fp8_e4m3"},
		{"sglang", "disable_radix_cache: true", "--disable-radix-cache"},
		{"sglang", "disable_radix_cache: false", ""},
		{"sglang", "enable_torch_compile: true", "--enable-torch-compile"},
		{"sglang", "attention_backend: triton", "--attention-backend triton"},
		{"sglang", "cuda_graph_max_bs: 16, enable_mixed_chunk: true, disable_cuda_graph: false, json_model_override_args: {a: 1}",
			`--cuda-graph-max-bs 16 --enable-mixed-chunk --json-model-override-args {"a":1}`},
		{"tensorrt", "", ""},
		{"tensorrt", "pp_size: 2, max_num_tokens: 4096", "--max_num_tokens 4096 --pp_size 2"},
		{"tensorrt", "kv_cache_free_gpu_memory_fraction: 0.7, ep_size: 2, max_beam_width: 1, num_postprocess_workers: 2",
			"--ep_size 2 --kv_cache_free_gpu_memory_fraction 0.7 --max_beam_width 1 --num_postprocess_workers 2"},
		{"tensorrt", "flow: engine", ""},
	}
	for _, c := range cases {
		src := "model: org/m\nbackend: " + c.backend + "\n"
		if c.section != "" {
			src += c.backend + ": {" + c.section + "}\n"
		}
		l := launch(t, src)
		head := slices.Clone(heads[c.backend])
		if c.section == "tp_size: 4" {
			head[len(head)-3] = "4"
		}
		want := head
		if c.want != "" {
			want = append(want, strings.Split(c.want, " ")...)
		}
		if !slices.Equal(l.Argv, want) {
			t.Errorf("%s %s:\n got %q\nwant %q", c.backend, c.section, l.Argv, want)
		}
		if l.Model != "org/m" || l.HealthPath != "/health" {
			t.Errorf("%s %s: model %q, health %q", c.backend, c.section, l.Model, l.HealthPath)
		}
		if c.backend == "vllm" && !slices.Equal(l.ImageArgs, l.Argv[2:]) || c.backend != "vllm" && l.ImageArgs != nil {
			t.Errorf("%s: image args %q", c.backend, l.ImageArgs)
		}
	}
}

// What a server cannot be given is refused, naming the field.
func TestRefused(t *testing.T) {
	for src, want := range map[string]string{
		"model: org/m\nbackend: vllm\nvllm: {beam_search: {beam_width: 4}}\n":           "vllm.beam_search: a serving run sends sampling requests",
		"model: org/m\nbackend: vllm\nvllm: {engine: {port: 9}}\n":                      "vllm.engine.port: llem sets --port itself, from the run",
		"model: org/m\nbackend: vllm\nvllm: {seed: 1}\n":                                "vllm.seed: llem sets --seed itself, from random_seed",
		"model: org/m\nbackend: vllm\nvllm: {engine: {knob: 1}, knob: 2}\n":             "vllm.knob: --knob is given by vllm.engine.knob already",
		"model: org/m\nbackend: vllm\nvllm: {engine: {'--x': 1}}\n":                     `vllm.engine.--x: "--x" is not an option name`,
		"model: org/m\nbackend: vllm\nvllm: {engine: {'a b': 1}}\n":                     `vllm.engine.a b: "a b" is not an option name`,
		"model: org/m\nbackend: sglang\nsglang: {dtype: half}\n":                        "sglang.dtype: llem sets --dtype itself, from precision",
		"model: org/m\nbackend: sglang\nsglang: {model_path: /x}\n":                     "sglang.model_path: llem sets --model-path itself, from model",
		"model: org/m\nbackend: tensorrt\ntensorrt: {quantization: fp8}\n":              "tensorrt.quantization: trtllm-serve has no quantization option",
		"model: org/m\nbackend: tensorrt\ntensorrt: {kv_cache_config: {x: 1}}\n":        "tensorrt.kv_cache_config: not a trtllm-serve option",
		"model: org/m\nbackend: tensorrt\ntensorrt: {flow: onnx}\n":                     "tensorrt.flow onnx: want engine or pytorch",
		"model: org/m\nbackend: tensorrt\ntensorrt: {flow: pytorch, engine_path: /e}\n": "tensorrt.engine_path: a prebuilt engine runs in the engine flow",
		"model: org/m\nbackend: vllm\nlora: {adapter_id: a/b}\n":                        "lora: a serving run loads no adapter",
	} {
		_, err := For(parse(t, src), "127.0.0.1", 8100)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", src, err, want)
		}
	}
	c := parse(t, "model: llem-tiny\n")
	c.Serving.Endpoint = ptr("http://h:1/v1")
	if _, err := For(c, "h", 1); err == nil || !strings.Contains(err.Error(), "running already") {
		t.Errorf("endpoint: %v", err)
	}
	c.Serving = nil
	if _, err := For(c, "h", 1); err == nil || !strings.Contains(err.Error(), "no serving section") {
		t.Errorf("batch config: %v", err)
	}
	p, _, _ := config.Parse("t.yaml", []byte("model: gpt2\nbackend: pytorch\n"))
	p.Serving = &config.Serving{}
	if _, err := For(p, "h", 1); err == nil || !strings.Contains(err.Error(), "backend pytorch has no server") {
		t.Errorf("pytorch: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// tensorrt: the flows, a prebuilt engine, and the note on the dtype.
func TestTensorRT(t *testing.T) {
	l := launch(t, "model: org/m\nbackend: tensorrt\nprecision: fp16\ntensorrt: {flow: pytorch, max_batch_size: 64, tp_size: 2}\nmax_input_tokens: 1000\nmax_output_tokens: 24\n")
	want := "trtllm-serve org/m --host 127.0.0.1 --port 8100 --backend pytorch --max_batch_size 64 --tp_size 2 --max_seq_len 1024 --trust_remote_code"
	if strings.Join(l.Argv, " ") != want || len(l.Notes) != 1 || !strings.Contains(l.Notes[0], "may differ from precision fp16") {
		t.Errorf("pytorch flow:\n got %q %q\nwant %s", l.Argv, l.Notes, want)
	}
	l = launch(t, "model: org/m\nbackend: tensorrt\ntensorrt: {engine_path: /engines/m}\n")
	want = "trtllm-serve /engines/m --tokenizer org/m --host 127.0.0.1 --port 8100 --backend tensorrt --max_batch_size 8 --tp_size 1 --trust_remote_code"
	if strings.Join(l.Argv, " ") != want || l.Model != "/engines/m" || !strings.Contains(l.Notes[0], "engine_path") {
		t.Errorf("engine_path:\n got %q model %q\nwant %s", l.Argv, l.Model, want)
	}
}

// native: llem-serve's flags from the native section (internal/serve/cmd.go).
func TestNative(t *testing.T) {
	l := launch(t, "model: llem-tiny\nnative: {seed: 3, threads: 2}\n")
	want := "llem-serve --served-model-name llem-tiny --listen 127.0.0.1:8100 --model llem-tiny --seed 3 --threads 2 " +
		"--layers 4 --hidden-size 128 --heads 4 --kv-heads 2 --ffn-size 352 --vocab-size 512 --max-seq-len 1024"
	if got := strings.Join(l.Argv, " "); got != want || l.Model != "llem-tiny" || l.HealthPath != "/health" || l.ImageArgs != nil {
		t.Errorf("preset:\n got %s\nwant %s", got, want)
	}
	l = launch(t, "model: mine\nnative: {weights_path: /w/mine}\n")
	want = "llem-serve --served-model-name mine --listen 127.0.0.1:8100 --model /w/mine --seed 0 --threads 0"
	if got := strings.Join(l.Argv, " "); got != want || l.Model != "mine" {
		t.Errorf("checkpoint:\n got %s\nwant %s", got, want)
	}
	c := parse(t, "model: llem-tiny\n")
	if l, _ := For(c, "::1", 8000); l.Argv[4] != "[::1]:8000" {
		t.Errorf("IPv6 listen address: %q", l.Argv)
	}
}

// The whole command line of a typical serving config of each backend, as a
// person reads it in a run's record (golden).
func TestCommandLinesGolden(t *testing.T) {
	var b strings.Builder
	for _, src := range []string{
		"model: llem-small\nnative: {threads: 8}\n",
		"model: meta-llama/Llama-3.1-8B-Instruct\nbackend: vllm\nprecision: fp16\nvllm: {engine: {max_num_seqs: 256, gpu_memory_utilization: 0.9, enable_prefix_caching: false, tensor_parallel_size: 2}}\n",
		"model: meta-llama/Llama-3.1-8B-Instruct\nbackend: sglang\nsglang: {tp_size: 2, mem_fraction_static: 0.85, schedule_policy: lpm, max_running_requests: 256}\n",
		"model: meta-llama/Llama-3.1-8B-Instruct\nbackend: tensorrt\ntensorrt: {max_batch_size: 256, tp_size: 2, kv_cache_free_gpu_memory_fraction: 0.9}\n",
	} {
		l := launch(t, src)
		b.WriteString("# " + strings.ReplaceAll(strings.TrimSpace(src), "\n", "; ") + "\n")
		b.WriteString(strings.Join(l.Argv, " ") + "\n")
		if l.ImageArgs != nil {
			b.WriteString("image args: " + strings.Join(l.ImageArgs, " ") + "\n")
		}
		b.WriteString("model: " + l.Model + ", health: " + l.HealthPath + "\n")
		for _, n := range l.Notes {
			b.WriteString("note: " + n + "\n")
		}
		b.WriteString("\n")
	}
	golden.Check(t, "commands.txt", []byte(b.String()))
}

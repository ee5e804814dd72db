package serverargs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/config"
)

// trtllmFlags are the extra keys of the tensorrt section that are
// trtllm-serve options too (snake_case, as trtllm-serve spells them). Other
// extra keys are LLM API arguments the batch worker passes to
// tensorrt_llm.LLM; trtllm-serve takes those only from a YAML file
// (--extra_llm_api_options), which a serving run does not write, so they
// are refused by name.
var trtllmFlags = []string{"ep_size", "kv_cache_free_gpu_memory_fraction", "max_beam_width", "max_num_tokens",
	"num_postprocess_workers", "pp_size"}

// trtllmOwned are the flags llem sets on trtllm-serve itself.
var trtllmOwned = map[string]string{
	"--host": "the run", "--port": "the run", "--backend": "tensorrt.flow", "--tokenizer": "model (with tensorrt.engine_path)",
	"--max_seq_len": "max_input_tokens + max_output_tokens", "--trust_remote_code": "llem (always on, as in batch runs)",
}

// tensorrt is `trtllm-serve MODEL` in the flow the batch worker uses
// (tensorrt.flow: engine, the default, is --backend tensorrt, which builds
// a TensorRT engine at startup; pytorch is --backend pytorch), with
// --max_batch_size, --tp_size and --max_seq_len = max_input_tokens +
// max_output_tokens as the batch engine is built. With engine_path the
// engine is loaded as it was built: MODEL is engine_path and the model is
// the tokenizer. trtllm-serve answers to MODEL (it has no served-model-name
// option), and takes no dtype: the precision goes into Notes.
// quantization is refused (no trtllm-serve option: serve a quantized
// checkpoint or a prebuilt engine instead).
func tensorrt(c *config.Config, host string, port int) (Launch, error) {
	t := c.TensorRT
	if t == nil {
		t = &config.TensorRT{MaxBatchSize: 8, TPSize: 1}
	}
	if t.Quantization != nil {
		return Launch{}, fmt.Errorf("tensorrt.quantization: trtllm-serve has no quantization option; serve a quantized checkpoint, or a prebuilt engine (tensorrt.engine_path)")
	}
	flow, _ := t.Extra["flow"].(string)
	if _, ok := t.Extra["flow"]; ok && flow != "engine" && flow != "pytorch" {
		return Launch{}, fmt.Errorf("tensorrt.flow %v: want engine or pytorch", t.Extra["flow"])
	}
	model, backend := c.Model, "tensorrt"
	if flow == "pytorch" {
		backend = "pytorch"
	}
	argv := []string{"trtllm-serve"}
	if t.EnginePath != nil {
		if flow == "pytorch" {
			return Launch{}, fmt.Errorf("tensorrt.engine_path: a prebuilt engine runs in the engine flow, not tensorrt.flow pytorch")
		}
		model = *t.EnginePath
		argv = append(argv, model, "--tokenizer", c.Model)
	} else {
		argv = append(argv, model)
	}
	argv = append(argv, "--host", host, "--port", strconv.Itoa(port), "--backend", backend,
		"--max_batch_size", strconv.Itoa(t.MaxBatchSize), "--tp_size", strconv.Itoa(t.TPSize))
	if t.EnginePath == nil {
		argv = append(argv, "--max_seq_len", strconv.Itoa(c.MaxInputTokens+c.MaxOutputTokens))
	}
	argv = append(argv, "--trust_remote_code")
	w := newWriter(argv, presence, snake, trtllmOwned)
	if err := trtllmExtras(w, t.Extra); err != nil {
		return Launch{}, err
	}
	note := fmt.Sprintf("trtllm-serve has no dtype option: the server runs the checkpoint's dtype, which may differ from precision %s", c.Precision)
	if t.EnginePath != nil {
		note = fmt.Sprintf("tensorrt.engine_path: the engine runs in the dtype it was built with; precision %s is not checked", c.Precision)
	}
	return Launch{Argv: w.argv, Model: model, Notes: []string{note}}, nil
}

// trtllmExtras adds the extra keys that are trtllm-serve options and refuses
// the others (flow is read by tensorrt).
func trtllmExtras(w *flagWriter, extra map[string]any) error {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == "flow":
		case contains(trtllmFlags, k):
			w.add("tensorrt."+k, k, extra[k])
		default:
			return fmt.Errorf("tensorrt.%s: not a trtllm-serve option (a serving run passes %s); it is an LLM API argument only batch runs pass",
				k, strings.Join(trtllmFlags, ", "))
		}
	}
	return w.err
}

// Package serverargs turns a serving experiment's config into the command
// line of its backend's OpenAI-compatible server: llem-serve for native,
// `vllm serve` for vllm, `trtllm-serve` for tensorrt and SGLang's
// `python3 -m sglang.launch_server` for sglang. llem-exec runs the command
// as a local process or inside the backend's image.
//
// Only server settings become flags: the backend's section (each typed field
// and each extra key), the model, the precision, the seed. Sampling settings
// (decoder, vllm.sampling) travel in each request, not on the command line.
// A setting a server cannot be given is refused with an error naming the
// field, never dropped; one the command line cannot carry but the run can
// proceed without (trtllm-serve has no dtype flag) is named in Launch.Notes.
// docs/expand.md ("The serving section") has the tables.
package serverargs

import (
	"fmt"
	"net"
	"strconv"

	"github.com/llem/llem/internal/config"
)

// Launch is how to start one experiment's server.
type Launch struct {
	// Argv is the program and its arguments: run as is by the local runner,
	// and as the container's command in an image without a server entrypoint.
	Argv []string
	// ImageArgs, when not nil, are the arguments to give the backend's
	// default image (docker.DefaultImages) instead of Argv, because its
	// entrypoint is the server program already: Argv without that program.
	// Only vllm has one: vllm/vllm-openai's entrypoint is `vllm serve`, so
	// ImageArgs is Argv[2:] (the model, then the flags).
	ImageArgs []string
	// Model is the model id the server answers to, sent in every request.
	Model string
	// HealthPath is the GET path that answers 200 once the model is loaded.
	HealthPath string
	// Notes are settings of the config the command line cannot carry, which
	// the run's record must mention (they weaken what its numbers mean).
	Notes []string
}

// HealthPath is every supported server's readiness path: llem-serve,
// vLLM, SGLang and trtllm-serve all answer GET /health with 200 once the
// model is loaded.
const HealthPath = "/health"

// For is the launch of c's server listening on host:port. c is an effective
// config with a serving section and no endpoint.
func For(c *config.Config, host string, port int) (Launch, error) {
	if c.Serving == nil {
		return Launch{}, fmt.Errorf("serverargs: config %q has no serving section", c.Model)
	}
	if c.Serving.Endpoint != nil {
		return Launch{}, fmt.Errorf("serverargs: serving.endpoint is set (%s): that server is running already", *c.Serving.Endpoint)
	}
	if c.LoRA != nil {
		return Launch{}, fmt.Errorf("lora: a serving run loads no adapter; remove the lora section")
	}
	var l Launch
	var err error
	switch c.Backend {
	case config.BackendNative:
		l = native(c, net.JoinHostPort(host, strconv.Itoa(port)))
	case config.BackendVLLM:
		l, err = vllm(c, host, port)
	case config.BackendTensorRT:
		l, err = tensorrt(c, host, port)
	case config.BackendSGLang:
		l, err = sglang(c, host, port)
	default:
		return Launch{}, fmt.Errorf("backend %s has no server: a serving run needs one of native, vllm, tensorrt, sglang", c.Backend)
	}
	if err != nil {
		return Launch{}, err
	}
	l.HealthPath = HealthPath
	return l, nil
}

// native is llem-serve with the config's native section: the preset or
// checkpoint, the seed, the threads and the architecture. native.batch_size
// is not mapped: it is the batch engine's static batch, while llem-serve
// batches continuously up to its own --max-num-seqs, so the config refuses
// a serving run with a batch_size other than 1 rather than ignore it.
// ignore_eos is a request parameter, sent by the load generator.
func native(c *config.Config, listen string) Launch {
	n := c.Native
	model := c.Model
	argv := []string{"llem-serve", "--served-model-name", c.Model, "--listen", listen}
	if n != nil && n.WeightsPath != nil {
		model = *n.WeightsPath
	}
	argv = append(argv, "--model", model)
	if n != nil {
		argv = append(argv, "--seed", strconv.FormatInt(n.Seed, 10), "--threads", strconv.Itoa(n.Threads))
		if n.WeightsPath == nil {
			for _, f := range []struct {
				flag string
				v    *int
			}{{"--layers", n.Layers}, {"--hidden-size", n.HiddenSize}, {"--heads", n.Heads}, {"--kv-heads", n.KVHeads},
				{"--ffn-size", n.FFNSize}, {"--vocab-size", n.VocabSize}, {"--max-seq-len", n.MaxSeqLen}} {
				if f.v != nil {
					argv = append(argv, f.flag, strconv.Itoa(*f.v))
				}
			}
		}
	}
	return Launch{Argv: argv, Model: c.Model}
}

// torchDtype is the --dtype value of a precision for vLLM and SGLang.
var torchDtype = map[string]string{"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

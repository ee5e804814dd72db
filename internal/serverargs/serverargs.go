// Package serverargs turns a serving experiment's config into the command
// line of its backend's OpenAI-compatible server: llem-serve for native,
// `vllm serve`, `trtllm-serve` and SGLang's launch_server. llem-exec runs
// the command as a local process or inside the backend's image.
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
	// and as the container's command in the backend's image.
	Argv []string
	// Model is the model id the server answers to, sent in every request.
	Model string
	// HealthPath is the GET path that answers 200 once the model is loaded.
	HealthPath string
}

// For is the launch of c's server listening on host:port. c is an effective
// config with a serving section and no endpoint.
func For(c *config.Config, host string, port int) (Launch, error) {
	if c.Serving == nil {
		return Launch{}, fmt.Errorf("serverargs: config %q has no serving section", c.Model)
	}
	listen := net.JoinHostPort(host, strconv.Itoa(port))
	switch c.Backend {
	case config.BackendNative:
		return native(c, listen), nil
	}
	return Launch{}, fmt.Errorf("backend %s: no server command yet", c.Backend)
}

// native is llem-serve with the config's native section: the preset or
// checkpoint, the seed, the threads and the architecture.
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
	return Launch{Argv: argv, Model: c.Model, HealthPath: "/health"}
}

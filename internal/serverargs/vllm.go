package serverargs

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/llem/llem/internal/config"
)

// vllmOwned are the flags llem sets on `vllm serve` itself.
var vllmOwned = map[string]string{
	"--model": "model", "--host": "the run", "--port": "the run", "--served-model-name": "model",
	"--dtype": "precision", "--seed": "random_seed", "--trust-remote-code": "llem (always on, as in batch runs)",
}

// vllm is `vllm serve MODEL` with the vllm.engine section as flags, as the
// batch worker passes it to vllm.LLM: each field as --kebab-case (booleans
// as --x / --no-x), speculative_model with num_speculative_tokens as
// --speculative-config JSON, attention.backend as --attention-backend and
// the other attention fields as --attention-config JSON,
// compilation_config as JSON, offload_params as a list. Extra keys of
// vllm.engine and of vllm itself (beside engine, sampling, beam_search)
// become flags the same way. vllm.sampling is per request; vllm.beam_search
// has no server form and is refused.
func vllm(c *config.Config, host string, port int) (Launch, error) {
	argv := []string{"vllm", "serve", c.Model, "--host", host, "--port", strconv.Itoa(port),
		"--served-model-name", c.Model, "--dtype", torchDtype[c.Precision],
		"--seed", strconv.FormatInt(c.RandomSeed, 10), "--trust-remote-code"}
	w := newWriter(argv, negatable, kebab, vllmOwned)
	if v := c.VLLM; v != nil {
		if v.BeamSearch != nil {
			return Launch{}, fmt.Errorf("vllm.beam_search: a serving run sends sampling requests; beam search is not served (remove the section)")
		}
		if e := v.Engine; e != nil {
			w.section("vllm.engine", e, "speculative_model", "num_speculative_tokens", "attention")
			if e.SpeculativeModel != nil {
				w.add("vllm.engine.speculative_model", "speculative_config",
					map[string]any{"model": *e.SpeculativeModel, "num_speculative_tokens": intOrNil(e.NumSpeculativeTokens)})
			}
			attention(w, e.Attention)
		}
		w.extras("vllm", v.Extra)
	}
	if w.err != nil {
		return Launch{}, w.err
	}
	return Launch{Argv: w.argv, ImageArgs: slices.Clone(w.argv[2:]), Model: c.Model}, nil
}

// attention writes vllm.engine.attention: its backend as --attention-backend,
// every other field (typed or extra) in one --attention-config JSON object.
func attention(w *flagWriter, a *config.VLLMAttention) {
	if a == nil {
		return
	}
	if a.Backend != nil {
		w.add("vllm.engine.attention.backend", "attention_backend", *a.Backend)
	}
	if cfg := asMap(a, "backend"); len(cfg) > 0 {
		w.add("vllm.engine.attention", "attention_config", cfg)
	}
}

func intOrNil(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

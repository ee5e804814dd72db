package serverargs

import (
	"strconv"

	"github.com/llem/llem/internal/config"
)

// sglangOwned are the flags llem sets on launch_server itself.
var sglangOwned = map[string]string{
	"--model-path": "model", "--host": "the run", "--port": "the run", "--served-model-name": "model",
	"--dtype": "precision", "--random-seed": "random_seed", "--trust-remote-code": "llem (always on, as in batch runs)",
}

// sglang is `python3 -m sglang.launch_server` with the sglang section: each
// field as --kebab-case (tp_size → --tp-size), booleans as presence flags
// (true: the flag; false: left out, SGLang's default), then the extra keys
// the same way. The lmsysorg/sglang image has no server entrypoint: Argv is
// the container's command there too. A local runner may replace Argv[0]
// with the interpreter it runs Python with (LLEM_PYTHON), the one llem-doctor
// checks imports sglang.
func sglang(c *config.Config, host string, port int) (Launch, error) {
	argv := []string{"python3", "-m", "sglang.launch_server", "--model-path", c.Model,
		"--host", host, "--port", strconv.Itoa(port), "--served-model-name", c.Model,
		"--dtype", torchDtype[c.Precision], "--random-seed", strconv.FormatInt(c.RandomSeed, 10), "--trust-remote-code"}
	w := newWriter(argv, presence, kebab, sglangOwned)
	w.section("sglang", c.SGLang)
	if w.err != nil {
		return Launch{}, w.err
	}
	return Launch{Argv: w.argv, Model: c.Model}, nil
}

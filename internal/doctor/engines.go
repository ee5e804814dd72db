package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/llem/llem/internal/worker/python"
)

// nvidiaHint is what to do when containers cannot get GPUs.
const nvidiaHint = "install the NVIDIA Container Toolkit, then sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"

// checkDocker reports the engine, its NVIDIA runtime and the study's images.
func checkDocker(ctx context.Context, env Env) []Check {
	eng, err := env.Engine()
	var version, def string
	var runtimes []string
	if err == nil {
		version, runtimes, def, err = eng.Info(ctx)
	}
	if err != nil {
		out := []Check{{Area: "docker", Name: "engine", Status: Missing, Detail: oneLine(err),
			Fix: "for the docker runner: install Docker Engine and start it (systemctl start docker), and add yourself to the docker group; the local runner needs none"}}
		for _, img := range studyImages(env) {
			out = append(out, Check{Area: "image", Name: img, Status: Missing, Detail: "unknown: no engine", Fix: "start the engine first"})
		}
		return out
	}
	sort.Strings(runtimes)
	out := []Check{{Area: "docker", Name: "engine", Status: OK, Detail: fmt.Sprintf("version %s, runtimes %s (default %s)", version, strings.Join(runtimes, ", "), def)}}
	nv := Check{Area: "docker", Name: "NVIDIA runtime", Status: OK, Detail: "registered"}
	if !contains(runtimes, "nvidia") && def != "nvidia" {
		nv.Status, nv.Detail, nv.Fix = Missing, "not registered: containers get no GPU (llem-exec probes the toolkit's hook before GPU runs)", "for GPU runs in containers: "+nvidiaHint
	}
	out = append(out, nv)
	for _, img := range studyImages(env) {
		c := Check{Area: "image", Name: img, Status: OK, Detail: "present"}
		switch ok, err := eng.HasImage(ctx, img); {
		case err != nil:
			c.Status, c.Detail, c.Fix = Warn, oneLine(err), "docker image inspect "+img
		case !ok:
			c.Status, c.Detail, c.Fix = Missing, "not present: llem-exec pulls it before the first run (minutes, GBs)", pullHint(img)
		}
		out = append(out, c)
	}
	return out
}

func pullHint(img string) string {
	if strings.HasPrefix(img, "llem/") {
		name, _, _ := strings.Cut(strings.TrimPrefix(img, "llem/"), ":")
		return "build it: scripts/docker/build.sh " + name
	}
	return "docker pull " + img + " now, before the study"
}

func studyImages(env Env) []string {
	if env.Study == nil {
		return nil
	}
	return env.Study.Images
}

// Python backend modules, by llem backend.
var pyModules = []struct{ backend, module, install string }{
	{"pytorch", "torch", "pip install torch"},
	{"pytorch", "transformers", "pip install transformers"},
	{"vllm", "vllm", "pip install vllm"},
	{"tensorrt", "tensorrt_llm", "pip install tensorrt_llm (NVIDIA's index), or use the docker runner"},
	{"sglang", "sglang", "pip install sglang (a serving run's server), or use the docker runner"},
}

// checkPython reports the interpreter of the local Python workers and which
// backend modules it imports.
func checkPython(ctx context.Context, env Env) []Check {
	if env.Python == "" {
		return []Check{{Area: "python", Name: "interpreter", Status: Missing, Detail: oneLine(env.PythonErr),
			Fix: "set LLEM_PYTHON to a Python that has the backends installed, or use the docker runner; the native backend needs no Python"}}
	}
	mods := make([]string, len(pyModules))
	for i, m := range pyModules {
		mods[i] = m.module
	}
	got, err := env.Imports(ctx, env.Python, mods)
	if err != nil {
		return []Check{{Area: "python", Name: "interpreter", Status: Missing, Detail: fmt.Sprintf("%s: %s", env.Python, oneLine(err)),
			Fix: "set LLEM_PYTHON to a working Python 3"}}
	}
	out := []Check{{Area: "python", Name: "interpreter", Status: OK, Detail: env.Python + " (LLEM_PYTHON, else python3 on PATH)"}}
	for _, m := range pyModules {
		c := Check{Area: "python", Name: m.module, Status: OK}
		if v := got[m.module]; v != nil {
			c.Detail = fmt.Sprintf("%s imports (backend %s)", *v, m.backend)
		} else {
			c.Status, c.Detail = Missing, fmt.Sprintf("does not import: backend %s cannot run locally", m.backend)
			c.Fix = m.install + " into " + env.Python + ", or run the backend with the docker runner"
			if env.Study != nil && !contains(env.Study.LocalBackends, m.backend) {
				c.Status, c.Fix = Info, ""
				c.Detail = fmt.Sprintf("does not import; not needed: the study does not run backend %s locally", m.backend)
			}
		}
		out = append(out, c)
	}
	return out
}

// pythonProbe imports each module in one interpreter run and prints a JSON
// map from module to version (null where the import fails).
const pythonProbe = `import importlib, json, sys
out = {}
for m in sys.argv[1:]:
    try:
        out[m] = str(getattr(importlib.import_module(m), "__version__", "unknown version"))
    except Exception:
        out[m] = None
print(json.dumps(out))`

// interpreter is the Python the local runner would start.
func interpreter() (string, error) { return python.Interpreter() }

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func oneLine(err error) string {
	if err == nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

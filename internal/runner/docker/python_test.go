package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/schemas"
)

// The Python workers in a container: no registry can be reached here, so the
// image is made FROM scratch out of this machine's own Python (interpreter,
// its shared libraries, the standard library) plus the recording stand-ins
// for torch/transformers/vllm/tensorrt_llm at /fakes. The runner mounts the
// embedded worker sources, the run directory and the model cache exactly as
// it does for a real backend image.

var (
	pyImageOnce sync.Once
	pyImage     string
	pyImageErr  error
)

func pythonImage(t *testing.T) string {
	t.Helper()
	needEngine(t)
	pyImageOnce.Do(func() {
		pyImage = fmt.Sprintf("llem-test/python:%d", os.Getpid())
		pyImageErr = buildPythonImage(pyImage)
	})
	if pyImageErr != nil {
		t.Skipf("SKIPPED: cannot build a Python image from this machine's Python: %v", pyImageErr)
	}
	removeLater(pyImage) // TestMain removes it after the suite
	return pyImage
}

var (
	laterMu sync.Mutex
	later   = map[string]bool{}
)

func removeLater(img string) {
	laterMu.Lock()
	later[img] = true
	laterMu.Unlock()
}

func removeLaterImages(ctx context.Context) {
	laterMu.Lock()
	defer laterMu.Unlock()
	for img := range later {
		if _, err := testClient.ImageRemove(ctx, img, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			fmt.Fprintf(os.Stderr, "warning: removing %s: %v\n", img, err)
		}
	}
}

func buildPythonImage(tag string) error {
	out, err := exec.Command("python3", "-c", "import sys,sysconfig;print(sys.executable);print(sysconfig.get_paths()['stdlib'])").Output()
	if err != nil {
		return fmt.Errorf("python3: %v", err)
	}
	lines := strings.Fields(string(out))
	exe, err := filepath.EvalSymlinks(lines[0])
	if err != nil {
		return err
	}
	stdlib := lines[1]
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	//lint:ignore S1021 the closure calls itself, so it is declared first
	var addFile func(path string) error
	addFile = func(path string) error {
		if seen[path] {
			return nil
		}
		seen[path] = true
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(real)
		if err != nil {
			return err
		}
		st, _ := os.Stat(real)
		return writeTar(tw, strings.TrimPrefix(path, "/"), b, int64(st.Mode().Perm()))
	}
	// The interpreter and the shared libraries it and its extension modules need.
	bins := []string{exe}
	dyn, _ := filepath.Glob(filepath.Join(stdlib, "lib-dynload", "*.so"))
	bins = append(bins, dyn...)
	for _, b := range bins {
		if err := addFile(b); err != nil {
			return err
		}
		ldd, err := exec.Command("ldd", b).Output()
		if err != nil {
			continue // static or not an ELF
		}
		for _, l := range strings.Split(string(ldd), "\n") {
			for _, f := range strings.Fields(l) {
				if strings.HasPrefix(f, "/") {
					if err := addFile(f); err != nil {
						return err
					}
				}
			}
		}
	}
	skip := map[string]bool{"site-packages": true, "test": true, "idlelib": true, "tkinter": true, "turtledemo": true,
		"ensurepip": true, "lib2to3": true, "__pycache__": true, "pydoc_data": true, "lib-dynload": true}
	err = filepath.WalkDir(stdlib, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skip[d.Name()] || strings.HasPrefix(d.Name(), "config-") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 || !strings.HasSuffix(p, ".py") {
			return nil
		}
		return addFile(p)
	})
	if err != nil {
		return err
	}
	fakes, _ := filepath.Abs("../../worker/python/testdata/fakes")
	err = filepath.WalkDir(fakes, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".py") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(fakes, p)
		return writeTar(tw, "fakes/"+rel, b, 0o644)
	})
	if err != nil {
		return err
	}
	for _, h := range []*tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: "usr/local/bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "usr/local/bin/python3", Typeflag: tar.TypeSymlink, Linkname: exe},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	dockerfile := "FROM scratch\nCOPY . /\nENV PYTHONPATH=/fakes PATH=/usr/local/bin:/usr/bin:/bin\n"
	if err := writeTar(tw, "Dockerfile", []byte(dockerfile), 0o644); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := testClient.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil)
}

func writeTar(tw *tar.Writer, name string, b []byte, mode int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b))}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func pythonExperiment(t *testing.T, img, yaml string) record.WorkerInput {
	t.Helper()
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	canon, err := cfg.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	in := testExperiment(cfg.Backend)
	in.Model = cfg.Model
	in.Config = json.RawMessage(canon)
	in.Runner.Image = img
	in.Prompts = []string{"alpha beta gamma", "one two three four", "x y"}
	return in
}

type fakeCall struct {
	Call   string         `json:"call"`
	Args   []any          `json:"args"`
	Kwargs map[string]any `json:"kwargs"`
}

func fakeCalls(t *testing.T, runDir string) []fakeCall {
	b, err := os.ReadFile(filepath.Join(runDir, "calls.ndjson"))
	if err != nil {
		t.Fatalf("the stand-ins recorded nothing in the run dir: %v", err)
	}
	var out []fakeCall
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var c fakeCall
		if err := json.Unmarshal(l, &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func TestPythonWorkersInContainer(t *testing.T) {
	img := pythonImage(t)
	cache := t.TempDir()
	r := newTestRunner(t, Options{ModelCache: cache, CacheDir: t.TempDir()})
	for _, tc := range []struct {
		backend, yaml string
		entry         string // the engine call the stand-ins must have seen
	}{
		{"pytorch", "model: org/tiny\nbackend: pytorch\nn: 3\nmax_output_tokens: 4\nwarmup: {n_warmup: 1, thermal_floor_seconds: 0}\npytorch: {batch_size: 2, attn_implementation: eager}\n", "AutoModelForCausalLM.from_pretrained"},
		{"vllm", "model: org/tiny\nbackend: vllm\nn: 3\nprecision: fp16\nwarmup: {n_warmup: 1, thermal_floor_seconds: 0}\nvllm: {engine: {max_num_seqs: 8, enforce_eager: true}}\n", "LLM"},
		{"tensorrt", "model: org/tiny\nbackend: tensorrt\nn: 3\nprecision: fp16\nwarmup: {n_warmup: 1, thermal_floor_seconds: 0}\ntensorrt: {max_batch_size: 4}\n", "_tensorrt_engine.LLM"},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			in := pythonExperiment(t, img, tc.yaml)
			dir := writeExperiment(t, in)
			var out, errb syncBuf
			spec := runner.Spec{Experiment: in.Experiment, RunDir: dir, Stdout: &out, Stderr: &errb, Grace: 5 * time.Second,
				Env: []string{"LLEM_FAKE_LOG=" + MountRun + "/calls.ndjson"}}
			res, err := r.Run(context.Background(), spec)
			if err != nil || res.Err != nil || res.ExitCode != 0 {
				t.Fatalf("run: %v %+v exit %d\nstdout %s\nstderr %s", err, res.Err, res.ExitCode, out.String(), errb.String())
			}
			evs := events(t, out.String())
			if firstEv(t, evs).Event != record.EventHello || firstEv(t, evs).Backend != tc.backend || lastEv(t, evs).Event != record.EventDone {
				t.Fatalf("events %s", out.String())
			}
			if _, err := schemas.CheckNDJSON([]byte(out.String())); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, c := range fakeCalls(t, dir) {
				found = found || c.Call == tc.entry
			}
			if !found {
				t.Fatalf("no %s call recorded", tc.entry)
			}
			assertGone(t, res)
		})
	}
	// The TensorRT engine was cached inside the mounted model cache, on the host.
	if m, _ := filepath.Glob(filepath.Join(cache, "llem", "trt-engines", "*", "config.json")); len(m) != 1 {
		t.Fatalf("TensorRT engine cache on the host: %v", m)
	}
}

// What torch inductor, Triton and vLLM's compile step, and a model loader see
// inside the container (issue 15 items 1 and 2), recorded by the stand-ins:
// the image has no passwd entry for the container's uid, yet
// getpass.getuser() works (USER/LOGNAME); HOME and every compile cache are
// writable and lie in the mounted model cache (so they outlive the
// container); with IPCHost the container shares the host's IPC namespace; a
// model given as a host directory is there, at the same path, read-only.
// (GPU runs' ulimits: TestGPUContainerAsTheEngineReceivesIt.)
func TestPythonContainerIdentityCachesAndModelDir(t *testing.T) {
	img := pythonImage(t)
	cache := t.TempDir()
	model := filepath.Join(t.TempDir(), "my-model")
	if err := os.MkdirAll(model, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(model, "config.json"), []byte(`{"num_hidden_layers": 2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	hostIPC, _ := os.Readlink("/proc/self/ns/ipc")
	r := newTestRunner(t, Options{ModelCache: cache, CacheDir: t.TempDir(), IPCHost: true})
	for backend, probe := range map[string]string{"pytorch": "torch.compile.env", "vllm": "LLM.env"} {
		t.Run(backend, func(t *testing.T) {
			yaml := fmt.Sprintf("model: %s\nbackend: %s\nn: 3\nprecision: fp16\nwarmup: {n_warmup: 1, thermal_floor_seconds: 0}\n", model, backend)
			if backend == "pytorch" {
				yaml += "pytorch: {batch_size: 2, torch_compile: true}\n"
			}
			in := pythonExperiment(t, img, yaml)
			dir := writeExperiment(t, in)
			var out, errb syncBuf
			spec := runner.Spec{Experiment: in.Experiment, RunDir: dir, Stdout: &out, Stderr: &errb, Grace: 5 * time.Second,
				Env: []string{"LLEM_FAKE_LOG=" + MountRun + "/calls.ndjson"}}
			res, err := r.Run(context.Background(), spec)
			if err != nil || res.Err != nil || res.ExitCode != 0 {
				t.Fatalf("run: %v %+v exit %d\nstdout %s\nstderr %s", err, res.Err, res.ExitCode, out.String(), errb.String())
			}
			var env, seen map[string]any
			for _, c := range fakeCalls(t, dir) {
				switch c.Call {
				case probe:
					env = c.Kwargs
				case "model_dir":
					seen = c.Kwargs
					if c.Args[0] != model {
						t.Errorf("the loader got %v, want the host path %s", c.Args[0], model)
					}
				}
			}
			if env == nil || seen == nil {
				t.Fatalf("stand-ins recorded no %s / model_dir", probe)
			}
			if u, _ := env["user"].(string); u == "" {
				t.Errorf("getpass.getuser() = %q", u)
			}
			for _, k := range []string{"HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "VLLM_CACHE_ROOT", "XDG_CACHE_HOME"} {
				if env[k] != "writable" {
					t.Errorf("%s: %v", k, env[k])
				}
			}
			if hostIPC != "" && env["ipc_ns"] != hostIPC {
				t.Errorf("IPC namespace %v, host %s (--ipc-host)", env["ipc_ns"], hostIPC)
			}
			if seen["writable"] != false || !strings.Contains(fmt.Sprint(seen["files"]), "config.json") {
				t.Errorf("model directory in the container: %+v (want config.json, read-only)", seen)
			}
			assertGone(t, res)
		})
	}
	for _, d := range []string{"home", "torchinductor", "triton", "vllm", "xdg-cache"} {
		if st, err := os.Stat(filepath.Join(cache, "llem", d)); err != nil || !st.IsDir() {
			t.Errorf("cache %s not on the host: %v", d, err)
		}
	}
}

// A model named as a host path that does not exist is a bad_mount naming it,
// at pre-flight and at run time, before any container exists.
func TestPythonMissingModelDir(t *testing.T) {
	img := pythonImage(t)
	r := newTestRunner(t, Options{ModelCache: t.TempDir(), CacheDir: t.TempDir()})
	missing := filepath.Join(t.TempDir(), "not-downloaded")
	in := pythonExperiment(t, img, fmt.Sprintf("model: %s\nbackend: pytorch\nn: 1\n", missing))
	dir := writeExperiment(t, in)
	res, err := r.Run(context.Background(), runner.Spec{Experiment: in.Experiment, RunDir: dir, Grace: time.Second})
	if err != nil || res.Err == nil || res.Err.Type != record.ErrBadMount || !strings.Contains(res.Err.Message, missing) || res.Container.ContainerID != "" {
		t.Fatalf("run: %v %+v %+v", err, res.Err, res.Container)
	}
	var pe *PreflightError
	if err := r.Preflight(context.Background(), []record.Experiment{in.Experiment}); !errors.As(err, &pe) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("preflight: %v", err)
	}
}

// A GPU run's container as the Engine API holds it (created, not started:
// this engine has no GPUs): exactly the run's devices, a MIG instance
// included, by UUID; memlock unlimited and a 64 MiB stack; the host's IPC
// namespace; identity and caches in the environment; the local model
// directory mounted read-only at its own path.
func TestGPUContainerAsTheEngineReceivesIt(t *testing.T) {
	needEngine(t)
	model := t.TempDir()
	cache := t.TempDir()
	r := newTestRunner(t, Options{ModelCache: cache, CacheDir: t.TempDir(), IPCHost: true})
	in := testExperiment("vllm")
	in.Model = model
	dir := writeExperiment(t, in)
	gpus := []string{"GPU-8d1e5b2c-0000-4000-8000-000000000000", "MIG-4e3a8e1c-2b1f-5a4d-9c1e-7f0a1b2c3d4e"}
	cfg, hcfg, rerr := r.containerConfig(runner.Spec{Experiment: in.Experiment, RunDir: dir, GPUs: gpus}, testImage)
	if rerr != nil {
		t.Fatal(rerr)
	}
	ctx := context.Background()
	c, err := testClient.ContainerCreate(ctx, cfg, hcfg, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer testClient.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	insp, err := testClient.ContainerInspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := insp.HostConfig
	lim := map[string][2]int64{}
	for _, u := range h.Ulimits {
		lim[u.Name] = [2]int64{u.Soft, u.Hard}
	}
	if lim["memlock"] != [2]int64{-1, -1} || lim["stack"] != [2]int64{64 << 20, 64 << 20} {
		t.Errorf("ulimits %v", lim)
	}
	if !h.IpcMode.IsHost() {
		t.Errorf("ipc mode %q", h.IpcMode)
	}
	if len(h.DeviceRequests) != 1 || fmt.Sprint(h.DeviceRequests[0].DeviceIDs) != fmt.Sprint(gpus) || h.DeviceRequests[0].Driver != "nvidia" {
		t.Errorf("device requests %+v", h.DeviceRequests)
	}
	ro := false
	for _, m := range h.Mounts {
		ro = ro || (m.Source == model && m.Target == model && m.ReadOnly)
	}
	if !ro {
		t.Errorf("model directory not mounted read-only at %s: %+v", model, h.Mounts)
	}
	env := strings.Join(insp.Config.Env, "\n")
	for _, want := range append([]string{"LLEM_MODEL=" + model, "HOME=" + MountHome, "LOGNAME=", "USER="}, CacheEnv()...) {
		if !strings.Contains(env, want) {
			t.Errorf("container env lacks %s:\n%s", want, env)
		}
	}
}

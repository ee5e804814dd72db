package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/worker/python"
	"github.com/llem/llem/schemas"
)

// These tests run the built llem-exec, fed by the built llem-expand, as a
// user would: `llem-expand study.yaml | llem-exec --out DIR`.

var bins string // directory holding llem-exec, llem-expand, llem-aggregate, llem-report

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llem-exec-main-")
	if err != nil {
		panic(err)
	}
	for _, c := range []string{"llem-exec", "llem-expand", "llem-aggregate", "llem-report"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, c), "../"+c).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", c, err, out)
			os.Exit(1)
		}
	}
	bins = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
	runs           []record.Run
}

// pipeline runs llem-expand on yaml (written to a file) into llem-exec with
// args and env added to this process's environment.
func pipeline(t *testing.T, yaml string, env []string, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	study := filepath.Join(dir, "study.yaml")
	if err := os.WriteFile(study, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	exp, err := exec.Command(filepath.Join(bins, "llem-expand"), study).Output()
	if err != nil {
		t.Fatalf("llem-expand: %v", err)
	}
	cmd := exec.Command(filepath.Join(bins, "llem-exec"), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(exp)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var run record.Run
		if json.Unmarshal(sc.Bytes(), &run) == nil && run.Kind == record.KindRun {
			r.runs = append(r.runs, run)
		}
	}
	return r
}

func fakes(t *testing.T) string {
	d, err := filepath.Abs("../../internal/worker/python/testdata/fakes")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const pytorchStudy = `name: pylocal
model: org/fake-dense
backend: pytorch
n: 6
max_output_tokens: 8
dataset: {input_len: 16, output_len: 8}
warmup: {n_warmup: 1, thermal_floor_seconds: 0}
pytorch: {batch_size: 2, device_map: cpu}
execution: {n_cycles: 2}
runners:
  pytorch: local
`

// TestPyTorchWorkerLocal: llem-exec extracts the embedded pytorch worker and
// runs it under the local runner (torch and transformers are the recording
// stand-ins on PYTHONPATH): runs ok, with requests, schema-valid.
func TestPyTorchWorkerLocal(t *testing.T) {
	if _, err := python.Interpreter(); err != nil {
		t.Skipf("SKIPPED: %v", err)
	}
	cache := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls.ndjson")
	out := t.TempDir()
	r := pipeline(t, pytorchStudy, []string{"PYTHONPATH=" + fakes(t), "LLEM_FAKE_LOG=" + calls, "PYTHONDONTWRITEBYTECODE=1"},
		"--out", out, "--cache-dir", cache, "--sampler", "estimate", "--baseline", "0")
	if r.code != 0 || len(r.runs) != 2 {
		t.Fatalf("exit %d, %d runs\n%s", r.code, len(r.runs), r.stderr)
	}
	if _, err := schemas.CheckNDJSON([]byte(r.stdout)); err != nil {
		t.Fatalf("schema: %v", err)
	}
	wantCmd := filepath.Join(cache, "python-"+python.Hash(), python.Entry)
	for _, run := range r.runs {
		if run.Status != record.StatusOK || run.Totals == nil || run.Totals.Requests != 6 || run.Totals.OutputTokens == 0 {
			t.Errorf("%s: %s %+v totals %+v", run.RunID, run.Status, run.Error, run.Totals)
		}
		if run.Worker == nil || len(run.Worker.Command) != 3 || run.Worker.Command[1] != wantCmd || run.Worker.Command[2] != "pytorch" {
			t.Errorf("worker %+v, want the extracted %s", run.Worker, wantCmd)
		}
		if run.Phases.Measure == nil || run.ModelFacts == nil || run.ModelFacts.Parameters == nil || *run.ModelFacts.Parameters == 0 {
			t.Errorf("%s: phases %+v model %+v", run.RunID, run.Phases, run.ModelFacts)
		}
		if len(run.Samplers) != 1 || run.Samplers[0] != "estimate" || len(run.Devices) == 0 {
			t.Errorf("%s: sampled by %v on %v", run.RunID, run.Samplers, run.Devices)
		}
		ev, err := os.ReadFile(filepath.Join(run.RunDir, "events.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := schemas.CheckNDJSON(ev); err != nil || n["event"] == 0 {
			t.Errorf("events.ndjson: %v %v", n, err)
		}
		if !bytes.Contains(ev, []byte(`"event":"request"`)) {
			t.Errorf("no request events")
		}
	}
	// The stand-ins saw the config's fields, so the worker really ran them.
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"call": "AutoModelForCausalLM.from_pretrained"`); n != 2 || !strings.Contains(string(b), `"device_map": "cpu"`) {
		t.Errorf("from_pretrained calls %d (want 2, device_map cpu):\n%s", n, b)
	}
}

const nativeStudy = `name: nativelocal
model: llem-tiny
backend: native
n: 2
max_output_tokens: 4
dataset: {input_len: 8, output_len: 4}
warmup: {enabled: false}
execution: {n_cycles: 1}
`

// TestNoEngineNeeded: a stream without docker runs needs neither a Docker
// engine (DOCKER_HOST is not even a valid address) nor the Python workers (nothing is
// extracted); a stream with docker runs and no engine fails pre-flight with
// the runner's fix hint, on one line, exit 1, before any run.
func TestNoEngineNeeded(t *testing.T) {
	cache := t.TempDir()
	nowhere := "DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "no-docker.sock")
	// A DOCKER_HOST no client can even be made for: the docker runner is never made.
	r := pipeline(t, nativeStudy, []string{"DOCKER_HOST=tcp://bad:xx:yy"}, "--out", t.TempDir(), "--cache-dir", cache, "--sampler", "none")
	if r.code != 0 || len(r.runs) != 1 || r.runs[0].Status != record.StatusOK {
		t.Fatalf("native local run without an engine: exit %d, %d runs\n%s", r.code, len(r.runs), r.stderr)
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 0 {
		t.Errorf("Python workers extracted for a stream without Python runs: %v", ents)
	}
	out := t.TempDir()
	r = pipeline(t, nativeStudy+"runners: {native: docker}\n", []string{nowhere}, "--out", out, "--sampler", "none")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	if r.code != 1 || len(r.runs) != 0 || !strings.Contains(last, "engine_unreachable") || !strings.Contains(last, "(fix: ") {
		t.Fatalf("docker run without an engine: exit %d, %d runs, last stderr line %q", r.code, len(r.runs), last)
	}
	if m, _ := filepath.Glob(filepath.Join(out, "*", "runs", "*")); len(m) != 0 {
		t.Errorf("runs started although pre-flight failed: %v", m)
	}
	t.Logf("%s", last)
}

// TestFlagsAndHelp: --help documents the exit codes and the new flags; bad
// values are usage errors (exit 2).
func TestFlagsAndHelp(t *testing.T) {
	out, err := exec.Command(filepath.Join(bins, "llem-exec"), "--help").Output()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	out = []byte(strings.Join(strings.Fields(string(out)), " ")) // wrapped to the terminal's width
	for _, s := range []string{"0 ok, 1 runtime failure, 2 usage or input error", "3 finished but some runs failed", "130 interrupted",
		"--parallel=N", "--gpus=LIST", "--cache-dir=DIR", "Docker runner", "--image=BACKEND=IMAGE", "--no-pull", "--model-cache=DIR"} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("--help lacks %q", s)
		}
	}
	for _, args := range [][]string{{"--parallel", "0"}, {"--image", "nobackend"}, {"--image", "cobol=x"}, {"--shm-size", "lots"}} {
		cmd := exec.Command(filepath.Join(bins, "llem-exec"), append(args, "--sampler", "none", "--out", t.TempDir())...)
		cmd.Stdin = strings.NewReader("")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(errb.String(), args[0]) {
			t.Errorf("%v: %v, want exit 2 naming the flag: %s", args, err, errb.String())
		}
	}
}

// TestGPUCheckScripts: scripts/gpu-check.sh parses and, without an NVIDIA
// driver, says so and exits 0; its pipeline part (scripts/gpu-check-pipeline.sh)
// runs here as a CPU dry run on the stand-ins: llem-expand | llem-exec (the
// embedded pytorch worker, local runner) | llem-aggregate, every run ok, with
// energy records and per-config summaries.
func TestGPUCheckScripts(t *testing.T) {
	for _, s := range []string{"gpu-check.sh", "gpu-check-pipeline.sh", "docker/gpu-check-python.sh"} {
		if out, err := exec.Command("bash", "-n", "../../scripts/"+s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		out, err := exec.Command("bash", "../../scripts/gpu-check.sh").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "no NVIDIA driver") {
			t.Errorf("gpu-check.sh without a driver: %v\n%s", err, out)
		}
	}
	if _, err := python.Interpreter(); err != nil {
		t.Skipf("SKIPPED the pipeline dry run: %v", err)
	}
	cmd := exec.Command("bash", "../../scripts/gpu-check-pipeline.sh")
	cmd.Env = append(os.Environ(), "FAKES=1", "LLEM_BIN="+bins)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "gpu-check-pipeline: ok (fakes): 4 runs, 4 energy records, 2 summaries") {
		t.Fatalf("FAKES=1 gpu-check-pipeline.sh: %v\n%s", err, out)
	}
}

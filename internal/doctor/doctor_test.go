package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	goldenfile "github.com/llem/llem/internal/golden"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/gpu"
	"github.com/llem/llem/internal/record"
)

// fakeLib is NVML with the given devices.
type fakeLib struct{ devs []*fakeDev }

func (l *fakeLib) Versions() (string, string, string) { return "550.54.15", "12.4", "12.550" }
func (l *fakeLib) Count() (int, error)                { return len(l.devs), nil }
func (l *fakeLib) Device(i int) (gpu.Device, error)   { return l.devs[i], nil }
func (l *fakeLib) MIGParent(string) (int, error)      { return 0, gpu.ErrNotSupported }
func (l *fakeLib) Close() error                       { return nil }

type fakeDev struct {
	info record.GPU
	mig  *bool // nil: not supported
}

func (d *fakeDev) Info() (record.GPU, error)         { return d.info, nil }
func (d *fakeDev) PowerField() string                { return gpu.PowerInstant }
func (d *fakeDev) Read(*gpu.Reading) error           { return nil }
func (d *fakeDev) Processes() ([]gpu.Process, error) { return nil, nil }
func (d *fakeDev) MIGMode() (bool, error) {
	if d.mig == nil {
		return false, gpu.ErrNotSupported
	}
	return *d.mig, nil
}

type fakeEngine struct {
	runtimes []string
	images   map[string]bool
}

func (e fakeEngine) Info(context.Context) (string, []string, string, error) {
	return "27.3.1", e.runtimes, "runc", nil
}
func (e fakeEngine) HasImage(_ context.Context, ref string) (bool, error) { return e.images[ref], nil }

func write(t *testing.T, root, rel, body string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// A GPU machine with RAPL (one zone unreadable), an engine without the NVIDIA
// runtime, a study naming two images, and a Python with torch only.
func gpuMachine(t *testing.T) Env {
	sys, proc := t.TempDir(), t.TempDir()
	write(t, sys, "class/powercap/intel-rapl:0/name", "package-0\n")
	write(t, sys, "class/powercap/intel-rapl:0/energy_uj", "123456\n")
	write(t, sys, "class/powercap/intel-rapl:0:0/name", "dram\n") // no energy_uj
	write(t, sys, "fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
	write(t, proc, "stat", "cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2 3 4\ncpu2 1 2 3 4\ncpu3 1 2 3 4\nintr 5\n")
	lib := &fakeLib{devs: []*fakeDev{
		{info: record.GPU{Index: 0, Name: "NVIDIA H100 80GB HBM3", MemoryTotalBytes: ptr(int64(80) << 30), PersistenceMode: ptr(true)}, mig: ptr(false)},
		{info: record.GPU{Index: 1, Name: "NVIDIA A100-SXM4-40GB", MemoryTotalBytes: ptr(int64(40) << 30), PersistenceMode: ptr(false)}, mig: ptr(true)},
	}}
	return Env{SysRoot: sys, ProcRoot: proc,
		OpenGPU: func() (gpu.Lib, error) { return lib, nil },
		Engine: func() (Engine, error) {
			return fakeEngine{runtimes: []string{"runc"}, images: map[string]bool{"llem/native:latest": true}}, nil
		},
		Python: "/usr/bin/python3",
		Imports: func(_ context.Context, _ string, mods []string) (map[string]*string, error) {
			return map[string]*string{"torch": ptr("2.5.1")}, nil
		},
		Study: &StudyNeeds{File: "s.yaml", LocalBackends: []string{"pytorch"}, Images: []string{"llem/native:latest", "vllm/vllm-openai:v0.11.0"}},
	}
}

// This project's build machine: no NVML, no powercap, no cgroup v2, no engine, no Python.
func bareMachine(t *testing.T) Env {
	sys, proc := t.TempDir(), t.TempDir()
	write(t, proc, "stat", "cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2 3 4\n")
	return Env{SysRoot: sys, ProcRoot: proc,
		OpenGPU: func() (gpu.Lib, error) { return nil, fmt.Errorf("%w: ERROR_LIBRARY_NOT_FOUND", gpu.ErrNoNVML) },
		Engine: func() (Engine, error) {
			return nil, errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
		},
		PythonErr: errors.New("no python3 on PATH"),
	}
}

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

func TestReports(t *testing.T) {
	for name, env := range map[string]Env{"gpu-machine.txt": gpuMachine(t), "bare-machine.txt": bareMachine(t)} {
		var b bytes.Buffer
		if err := WriteText(&b, Run(context.Background(), env)); err != nil {
			t.Fatal(err)
		}
		golden(t, name, bytes.ReplaceAll(b.Bytes(), []byte(env.SysRoot), []byte("/sys")))
	}
}

// The facts scripts read: energy source, statuses, a fix on every line that
// is not ok.
func TestReportFacts(t *testing.T) {
	r := Run(context.Background(), gpuMachine(t))
	status := map[string]string{}
	for _, c := range r.Checks {
		status[c.Area+"/"+c.Name] = c.Status
		if (c.Status == Missing || c.Status == Warn) && c.Fix == "" {
			t.Errorf("%s/%s: %s with no fix", c.Area, c.Name, c.Status)
		}
	}
	want := map[string]string{"gpu/GPU 0": OK, "gpu/GPU 1": Warn, "energy/RAPL intel-rapl:0": OK, "energy/RAPL intel-rapl:0:0": Missing,
		"energy/estimate": Info, "docker/NVIDIA runtime": Missing, "image/llem/native:latest": OK,
		"image/vllm/vllm-openai:v0.11.0": Missing, "python/torch": OK, "python/transformers": Missing, "python/vllm": Info, "cgroup/cgroup v2": OK}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("%s: %q, want %q", k, status[k], v)
		}
	}
	if r.EnergySource != "nvml+rapl" {
		t.Errorf("energy source %s", r.EnergySource)
	}
	if bare := Run(context.Background(), bareMachine(t)); bare.EnergySource != "estimate" {
		t.Errorf("bare machine: energy source %s", bare.EnergySource)
	}
}

// The command exits 0 even when the study cannot be read, and --json is one object.
func TestCommand(t *testing.T) {
	machineEnv = func() Env { return bareMachine(t) }
	defer func() { machineEnv = MachineEnv }()
	var out, errb bytes.Buffer
	if err := Command([]string{"--json", filepath.Join(t.TempDir(), "missing.yaml")}, nil, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || len(r.Checks) == 0 {
		t.Fatalf("%v: %s", err, out.String())
	}
	if c := r.Checks[0]; c.Area != "study" || c.Status != Missing || !strings.Contains(c.Detail, "missing.yaml") {
		t.Errorf("study line: %+v", c)
	}
}

func TestLoadStudy(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.yaml")
	write(t, filepath.Dir(p), "s.yaml", "model: llem-tiny\nsweep:\n  backend: [pytorch, vllm, native]\nrunners: {vllm: \"docker:my/vllm:1\", native: docker}\n")
	n, c := LoadStudy(p)
	if c != nil {
		t.Fatal(c)
	}
	if strings.Join(n.LocalBackends, ",") != "pytorch" || strings.Join(n.Images, ",") != "my/vllm:1,llem/native:latest" {
		t.Errorf("%+v", n)
	}
}

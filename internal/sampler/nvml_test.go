package sampler

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llem/llem/internal/gpu"
	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

// fakeGPU replays a scripted trace per read: power[k], an energy counter in
// mJ (starting far from 0, as NVML's counts from driver load), and faults
// from given reads on.
type fakeGPU struct {
	mu         sync.Mutex
	uuid       string
	powerW     []float64 // cycled
	counterMJ  uint64
	reads      int
	tempGoneAt int // from this read on, temperature is not supported (0 = never)
	lostAt     int // from this read on, the GPU is lost (0 = never)
}

func (f *fakeGPU) Info() (record.GPU, error) {
	lim := 700.0
	return record.GPU{UUID: f.uuid, Name: "Fake H100", PowerLimitW: &lim}, nil
}
func (f *fakeGPU) PowerField() string                { return gpu.PowerInstant }
func (f *fakeGPU) Processes() ([]gpu.Process, error) { return nil, nil }
func (f *fakeGPU) Read(r *gpu.Reading) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.lostAt > 0 && f.reads >= f.lostAt {
		return fmt.Errorf("GPU 1: %w", gpu.ErrGPULost)
	}
	p := f.powerW[(f.reads-1)%len(f.powerW)]
	f.counterMJ += uint64(p * 10) // 10 ms of p watts, in mJ
	*r = gpu.Reading{PowerW: p, PowerOK: true, EnergyMJ: f.counterMJ, EnergyOK: true, TempC: 50, TempOK: true, UtilPct: 100, UtilOK: true}
	if f.tempGoneAt > 0 && f.reads >= f.tempGoneAt {
		r.TempOK = false
	}
	return nil
}

type fakeLib struct{ devs []*fakeGPU }

func (l *fakeLib) Versions() (string, string, string) { return "550.54.15", "12.4", "12.550.54.15" }
func (l *fakeLib) Count() (int, error)                { return len(l.devs), nil }
func (l *fakeLib) Device(i int) (gpu.Device, error)   { return l.devs[i], nil }
func (l *fakeLib) Close() error                       { return nil }
func (l *fakeLib) MIGParent(u string) (int, error) {
	return -1, fmt.Errorf("%s: %w", u, gpu.ErrNotSupported)
}

func withFakeGPUs(t testing.TB, devs ...*fakeGPU) {
	old := openGPU
	openGPU = func() (gpu.Lib, error) { return &fakeLib{devs: devs}, nil }
	t.Cleanup(func() { openGPU = old })
}

// Two GPUs; GPU 1 starts returning "not supported" for temperature at read
// 5 and is lost at read 10. GPU 0 goes on; the stream reads back whole.
func TestNVMLSourceFaults(t *testing.T) {
	a := &fakeGPU{uuid: "GPU-aaaa1111", powerW: []float64{100, 300}, counterMJ: 9_000_000_000}
	b := &fakeGPU{uuid: "GPU-bbbb2222", powerW: []float64{60}, counterMJ: 5, tempGoneAt: 5, lostAt: 10}
	withFakeGPUs(t, a, b)
	t.Setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa1111,GPU-bbbb2222")
	var warns []string
	var mu sync.Mutex
	var buf bytes.Buffer
	tc := newTickCounter()
	s, err := Start(Options{Interval: 5 * time.Millisecond, Sources: []string{"nvml"}, Custom: []Source{tc}, Warn: func(m string) { mu.Lock(); warns = append(warns, m); mu.Unlock() }}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	tc.wait(20)
	st, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	r, err := power.NewReader(&buf, "buf")
	if err != nil {
		t.Fatal(err)
	}
	m := r.Meta()
	if m.PowerField != "instant" || m.HostInfo.DriverVersion != "550.54.15" || len(m.HostInfo.GPUs) != 2 || m.Estimate {
		t.Fatalf("meta %+v", m)
	}
	type row struct {
		p, e  float64
		tempN bool
	}
	rows := map[string][]row{}
	for r.Next() {
		bt := r.Batch()
		for i := 0; i < bt.N; i++ {
			d := r.Devices()[bt.Dev[i]].Device
			rows[d] = append(rows[d], row{bt.PowerW[i], bt.EnergyJ[i], bt.TempOK != nil && !bt.TempOK[i]})
		}
	}
	if len(rows["GPU-bbbb2222"]) != 9 {
		t.Fatalf("lost GPU rows %d, want 9", len(rows["GPU-bbbb2222"]))
	}
	for i, rw := range rows["GPU-bbbb2222"] {
		if rw.tempN != (i >= 4) {
			t.Fatalf("row %d temp null %v", i, rw.tempN)
		}
	}
	ra := rows["GPU-aaaa1111"]
	if int64(len(ra)) != st.Ticks || len(ra) < 20 {
		t.Fatalf("GPU a rows %d ticks %d", len(ra), st.Ticks)
	}
	// energy_j counts from the first read: read k adds 10 ms × power[k].
	want := 0.0
	for i, rw := range ra {
		if i > 0 {
			want += []float64{100, 300}[i%2] * 0.01
		}
		if rw.p != []float64{100, 300}[i%2] || math.Abs(rw.e-want) > 1e-6 {
			t.Fatalf("row %d: %+v want e=%v", i, rw, want)
		}
	}
	if len(warns) != 2 || warns[0] != "nvml: GPU-bbbb2222: temp_c stopped being available; written as null from now on" || !strings.Contains(warns[1], "GPU-bbbb2222: GPU is lost") {
		t.Fatalf("warnings %q", warns)
	}
	if tr := r.Trailer(); tr == nil || len(tr.Warnings) != 2 {
		t.Fatalf("trailer %+v", r.Trailer())
	}
}

func TestNVMLSelection(t *testing.T) {
	a := &fakeGPU{uuid: "GPU-aaaa1111", powerW: []float64{1}}
	b := &fakeGPU{uuid: "GPU-bbbb2222", powerW: []float64{1}}
	withFakeGPUs(t, a, b)
	t.Setenv("CUDA_VISIBLE_DEVICES", "1")
	devs, host, err := Probe(Options{Sources: []string{"nvml"}})
	if err != nil || len(devs) != 1 || devs[0].Device != "GPU-bbbb2222" || host.CUDAVersion != "12.4" || len(host.GPUs) != 1 || host.GPUs[0].Name != "Fake H100" {
		t.Fatalf("%+v %+v %v", devs, host, err)
	}
	var ue *UsageError
	if _, _, err := Probe(Options{Sources: []string{"nvml"}, GPUs: []string{"1"}}); !errors.As(err, &ue) || !strings.Contains(err.Error(), "names no visible GPU") {
		t.Fatalf("%v", err)
	}
	// auto with NVML present: no estimate.
	devs, _, _ = Probe(Options{SysfsRoot: t.TempDir()})
	if len(devs) != 1 || devs[0].Source != "nvml" {
		t.Fatalf("auto: %+v", devs)
	}
}

func withNoGPU(t *testing.T) {
	old := openGPU
	openGPU = func() (gpu.Lib, error) { return nil, fmt.Errorf("%w: libnvidia-ml.so.1 not found", gpu.ErrNoNVML) }
	t.Cleanup(func() { openGPU = old })
}

func TestNoNVMLAuto(t *testing.T) {
	withNoGPU(t)
	devs, _, err := Probe(Options{SysfsRoot: t.TempDir()})
	if err != nil || len(devs) != 1 || !devs[0].Estimate {
		t.Fatalf("%+v %v", devs, err)
	}
	if _, _, err := Probe(Options{Sources: []string{"nvml"}}); err == nil || !strings.Contains(err.Error(), "no NVML") {
		t.Fatalf("%v", err)
	}
}

// TestNVMLRunGPUs is how llem-exec samples one run: only its GPUs (by UUID),
// or none at all for a run that uses no GPU (auto then falls to the CPU side).
func TestNVMLRunGPUs(t *testing.T) {
	a := &fakeGPU{uuid: "GPU-aaaa1111", powerW: []float64{1}}
	b := &fakeGPU{uuid: "GPU-bbbb2222", powerW: []float64{1}}
	c := &fakeGPU{uuid: "GPU-cccc3333", powerW: []float64{1}}
	withFakeGPUs(t, a, b, c)
	devs, _, err := Probe(Options{Sources: []string{"nvml"}, GPUs: []string{"GPU-cccc3333", "GPU-aaaa1111"}})
	if err != nil || len(devs) != 2 || devs[0].Device != "GPU-cccc3333" || devs[1].Device != "GPU-aaaa1111" {
		t.Fatalf("run GPUs: %+v %v", devs, err)
	}
	devs, _, err = Probe(Options{NoGPUs: true, SysfsRoot: t.TempDir()})
	if err != nil || len(devs) != 1 || devs[0].Source != "estimate" {
		t.Fatalf("no GPUs, auto: %+v %v", devs, err)
	}
	if _, _, err := Probe(Options{NoGPUs: true, Sources: []string{"nvml"}}); err == nil || !strings.Contains(err.Error(), "uses no GPU") {
		t.Fatalf("no GPUs, nvml only: %v", err)
	}
}

// fakeMIGLib is fakeLib whose GPU 1 carries MIG instances.
type fakeMIGLib struct{ fakeLib }

func (l *fakeMIGLib) MIGParent(uuid string) (int, error) {
	if strings.HasPrefix(uuid, "MIG-on-b-") {
		return 1, nil
	}
	return -1, fmt.Errorf("%s: %w", uuid, gpu.ErrNotSupported)
}

// CUDA_VISIBLE_DEVICES=MIG-…: the run's GPUs are MIG instances. The parent
// GPU is sampled (once for two instances of it), and its record says the
// energy is the whole GPU's, shared with the other instances.
func TestNVMLMIG(t *testing.T) {
	a := &fakeGPU{uuid: "GPU-aaaa1111", powerW: []float64{1}}
	b := &fakeGPU{uuid: "GPU-bbbb2222", powerW: []float64{1}}
	old := openGPU
	openGPU = func() (gpu.Lib, error) { return &fakeMIGLib{fakeLib{devs: []*fakeGPU{a, b}}}, nil }
	t.Cleanup(func() { openGPU = old })
	t.Setenv("CUDA_VISIBLE_DEVICES", "MIG-on-b-1,MIG-on-b-2")
	var warns []string
	devs, _, err := Probe(Options{Sources: []string{"nvml"}, Warn: func(m string) { warns = append(warns, m) }})
	if err != nil || len(devs) != 1 || devs[0].Device != "GPU-bbbb2222" {
		t.Fatalf("%+v %v", devs, err)
	}
	g := devs[0].GPU
	if !g.SharedEnergy || len(g.MIG) != 2 || g.MIG[0] != "MIG-on-b-1" || g.MIG[1] != "MIG-on-b-2" {
		t.Fatalf("gpu %+v", g)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "whole GPU, shared with every other MIG instance") {
		t.Fatalf("warnings %q", warns)
	}
	// llem-exec samples a run by the MIG UUID it was given.
	t.Setenv("CUDA_VISIBLE_DEVICES", "")
	os.Unsetenv("CUDA_VISIBLE_DEVICES")
	devs, _, err = Probe(Options{Sources: []string{"nvml"}, GPUs: []string{"MIG-on-b-2"}})
	if err != nil || len(devs) != 1 || devs[0].Device != "GPU-bbbb2222" || len(devs[0].GPU.MIG) != 1 {
		t.Fatalf("by MIG UUID: %+v %v", devs, err)
	}
	// A MIG UUID NVML cannot resolve is an error naming it, not a silent whole GPU.
	if _, _, err := Probe(Options{Sources: []string{"nvml"}, GPUs: []string{"MIG-elsewhere"}}); err == nil || !strings.Contains(err.Error(), "MIG-elsewhere") {
		t.Fatalf("unknown MIG: %v", err)
	}
	// The whole-GPU case is unchanged: no MIG, no shared flag.
	devs, _, _ = Probe(Options{Sources: []string{"nvml"}, GPUs: []string{"GPU-aaaa1111"}})
	if devs[0].GPU.SharedEnergy || devs[0].GPU.MIG != nil {
		t.Fatalf("whole GPU %+v", devs[0].GPU)
	}
}

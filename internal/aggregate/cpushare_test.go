package aggregate

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

// cpuTrace is package-0 drawing 100 W for 10 s, read every 100 ms, with two
// busy cores' worth of machine CPU time: the run has a quarter of it in
// the first 5 s and half in the last 5 s. A GPU at 200 W rides along.
func cpuTrace(withCPUTime bool) *SliceSource {
	r := &Rows{}
	for i := 0; i <= 100; i++ {
		t := int64(i) * 100 * ms
		run := 0.05 * float64(i)
		if i > 50 {
			run = 2.5 + 0.1*float64(i-50)
		}
		r.T = append(r.T, t, t)
		r.Dev = append(r.Dev, 0, 1)
		r.PowerW = append(r.PowerW, 100, 200)
		r.PowerOK = append(r.PowerOK, true, true)
		r.EnergyJ = append(r.EnergyJ, 10*float64(i), 0)
		r.EnergyOK = append(r.EnergyOK, true, false)
		r.RunCPU = append(r.RunCPU, run, 0)
		r.MachineCPU = append(r.MachineCPU, 0.2*float64(i), 0)
		r.RunCPUOK = append(r.RunCPUOK, withCPUTime, false)
		r.MachineOK = append(r.MachineOK, withCPUTime, false)
	}
	return &SliceSource{Devs: []DeviceInfo{{Name: "package-0", Source: "rapl"}, {Name: "GPU-a", Source: "nvml"}},
		Interval: 100 * ms, Batches: []*Rows{r}}
}

func computeCPU(t *testing.T, src *SliceSource, mode string) *record.Energy {
	t.Helper()
	w := record.Window{StartNS: 0, EndNS: 10000 * ms}
	b := &record.Baseline{ID: "b", Devices: []record.BaselineDevice{{Device: "package-0", PowerW: ptr(40)}, {Device: "GPU-a", PowerW: ptr(50)}}}
	opt := DefaultOptions()
	opt.Attribution = mode
	res, err := Compute(RunInput{Run: runWith(w), Baseline: b, Source: src}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res.Energy
}

func closeTo(a *float64, want float64) bool { return a != nil && math.Abs(*a-want) < 1e-6 }

// Process attribution: 50 intervals × 10 J × 0.25 + 50 × 10 J × 0.5 =
// 375 J of the machine's 1000 J; the idle power is split by the same share
// (40 W × 10 s × 0.375); the GPU is untouched.
func TestProcessAttribution(t *testing.T) {
	e := computeCPU(t, cpuTrace(true), AttributionProcess)
	if e.Attribution != AttributionProcess {
		t.Errorf("attribution %q", e.Attribution)
	}
	m := e.Phases[record.PhaseMeasure]
	pkg, gpu := m.Devices[0], m.Devices[1]
	if pkg.Device != "package-0" || len(m.Devices) != 2 {
		t.Fatalf("devices %+v", m.Devices)
	}
	if !closeTo(pkg.EnergyJ, 375) || !closeTo(pkg.MachineJ, 1000) || !closeTo(pkg.CPUShare, 0.375) || pkg.Attribution != AttributionProcess {
		t.Errorf("package-0: energy %v machine %v share %v attribution %q", *pkg.EnergyJ, pkg.MachineJ, pkg.CPUShare, pkg.Attribution)
	}
	if !closeTo(pkg.IdleJ, 150) || !closeTo(pkg.NetJ, 225) || !closeTo(pkg.IdlePowerW, 15) {
		t.Errorf("package-0 idle %v net %v idle power %v", *pkg.IdleJ, *pkg.NetJ, *pkg.IdlePowerW)
	}
	if !closeTo(gpu.EnergyJ, 2000) || gpu.Attribution != "" || gpu.MachineJ != nil {
		t.Errorf("GPU changed: %+v", gpu)
	}
	if !closeTo(m.Scopes[record.ScopeCPUPackage].GrossJ, 375) || !closeTo(m.Scopes[record.ScopeCPUPackage].MachineGrossJ, 1000) {
		t.Errorf("cpu_package scope %+v", m.Scopes[record.ScopeCPUPackage])
	}
	if !closeTo(m.Scopes[record.ScopeTotal].GrossJ, 2375) || !closeTo(m.Scopes[record.ScopeTotal].MachineGrossJ, 3000) {
		t.Errorf("total scope %+v", m.Scopes[record.ScopeTotal])
	}
	if m.Scopes[record.ScopeGPU].MachineGrossJ != nil {
		t.Error("the GPU scope has a machine figure")
	}
	if !closeTo(e.Metrics[record.MCPUEnergyJ], 375) {
		t.Errorf("cpu_energy_j %v", e.Metrics[record.MCPUEnergyJ])
	}
}

// Machine attribution of the same stream is the whole machine's energy,
// named; a stream without CPU time gives the same figures and names none.
func TestMachineAttribution(t *testing.T) {
	mach := computeCPU(t, cpuTrace(true), AttributionMachine)
	old := computeCPU(t, cpuTrace(false), AttributionProcess)
	if mach.Attribution != AttributionMachine || old.Attribution != "" {
		t.Errorf("attribution: machine %q, no CPU time %q", mach.Attribution, old.Attribution)
	}
	for _, e := range []*record.Energy{mach, old} {
		pkg := e.Phases[record.PhaseMeasure].Devices[0]
		if !closeTo(pkg.EnergyJ, 1000) || pkg.MachineJ != nil || pkg.CPUShare != nil || !closeTo(pkg.IdleJ, 400) {
			t.Errorf("package-0 %+v", pkg)
		}
	}
	if mach.Phases[record.PhaseMeasure].Devices[0].Attribution != AttributionMachine || old.Phases[record.PhaseMeasure].Devices[0].Attribution != "" {
		t.Error("device attribution not named as it should be")
	}
}

// A config whose cycles were attributed differently says so.
func TestJoinAttribution(t *testing.T) {
	a := joinAttribution("", "process", true)
	if a = joinAttribution(a, "process", false); a != "process" {
		t.Errorf("same: %q", a)
	}
	if a = joinAttribution(a, "machine", false); a != "mixed" {
		t.Errorf("different: %q", a)
	}
}

// Through a real sample stream file: the CPU-time columns and the
// estimate's model reach the energy record.
func TestAttributionFromArrow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "samples.arrows")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := power.NewWriter(f, power.Meta{Host: "h", IntervalNS: 100e6, Attribution: "cgroup:/x",
		Devices: []power.Device{{Device: "cpu-estimate", Source: "estimate", Scope: record.ScopeCPUEst, Estimate: true,
			WattsPerCore: 10, WattsPerCoreSource: "default", CPUModel: "AMD EPYC"}}})
	if err != nil {
		t.Fatal(err)
	}
	// 2 busy cores at 10 W each for 10 s; the run has one fifth of the CPU time.
	for i := 0; i <= 100; i++ {
		w.Append(power.Sample{T: int64(i) * 100 * ms, Source: "estimate", Device: "cpu-estimate", EnergyJ: 2 * float64(i), PowerW: 20,
			RunCPUS: 0.04 * float64(i), MachineCPUS: 0.2 * float64(i), Has: power.HasEnergy | power.HasPower | power.HasCPUTime})
	}
	if err := w.Close(power.Trailer{}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	src, err := OpenArrow(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	res, err := Compute(RunInput{Run: runWith(record.Window{StartNS: 0, EndNS: 10000 * ms}), Source: src}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	e := res.Energy
	d := e.Phases[record.PhaseMeasure].Devices[0]
	if e.Attribution != AttributionProcess || !closeTo(d.EnergyJ, 40) || !closeTo(d.MachineJ, 200) || !closeTo(d.CPUShare, 0.2) {
		t.Errorf("attribution %q, energy %v, machine %v, share %v", e.Attribution, d.EnergyJ, d.MachineJ, d.CPUShare)
	}
	if m := e.EstimateModel; m == nil || m.WattsPerCore != 10 || m.Source != "default" || m.CPUModel != "AMD EPYC" {
		t.Errorf("estimate model %+v", m)
	}
}

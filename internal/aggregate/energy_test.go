package aggregate

import (
	"math"
	"os"
	"testing"

	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

func runWith(measure record.Window, devs ...string) *record.Run {
	r := &record.Run{Status: record.StatusOK, Devices: devs, Phases: record.Phases{Measure: &measure},
		Totals: &record.Totals{Requests: 2, InputTokens: 10, OutputTokens: 0}}
	r.RunID, r.ID = "r-c1", "r"
	return r
}

func sliceSource(s trace, name, source string) *SliceSource {
	return &SliceSource{Devs: []DeviceInfo{{Name: name, Source: source}}, Interval: 100 * ms,
		Batches: []*Rows{{T: s.t, PowerW: s.p, PowerOK: s.pOK, EnergyJ: s.e, EnergyOK: s.eOK, Dev: make([]int32, len(s.t))}}}
}

func flagged(e *record.Energy, code string) bool {
	for _, f := range e.Flags {
		if f.Code == code {
			return true
		}
	}
	return false
}

// The sampler started 1 s after the measure window: the start edge is
// extrapolated and flagged; a device named by the run but absent from the
// stream is null with no_samples; no output tokens → per-token figures null.
func TestComputeEdgesAndNulls(t *testing.T) {
	s := sample(constant, 100*ms, 10000*ms, func(i int) bool { return i < 30 })
	w := record.Window{StartNS: 2000 * ms, EndNS: 9000 * ms}
	res, err := Compute(RunInput{Run: runWith(w, "GPU-a", "GPU-b"), Source: sliceSource(s, "GPU-a", "nvml")}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	e := res.Energy
	if !flagged(e, FlagEdgeMissing) || !flagged(e, FlagNoSamples) || !flagged(e, FlagNoBaseline) {
		t.Errorf("flags %+v", e.Flags)
	}
	m := e.Phases["measure"]
	if m.Devices[0].EnergyJ == nil || m.Devices[1].EnergyJ != nil || m.Devices[1].Source != "nvml" {
		t.Errorf("devices %+v", m.Devices)
	}
	if m.Scopes["gpu"].GrossJ != nil || e.Metrics[record.MEnergyJ] != nil {
		t.Errorf("a scope with an unknown device must be null, got %v", *m.Scopes["gpu"].GrossJ)
	}
	if v, ok := e.Metrics[record.MJPerOutputToken]; !ok || v != nil {
		t.Errorf("j_per_output_token with 0 output tokens: %v (present %v)", v, ok)
	}
	if e.Metrics[record.MRequestsPerS] == nil || *e.Metrics[record.MRequestsPerS] != 2.0/7 {
		t.Errorf("requests_per_s %v", e.Metrics[record.MRequestsPerS])
	}
}

// Idle adjustment: net = max(0, gross − idle power × duration), per device and scope.
func TestComputeIdle(t *testing.T) {
	s := sample(constant, 100*ms, 10000*ms, nil) // 250 W
	w := record.Window{StartNS: 1000 * ms, EndNS: 5000 * ms}
	b := &record.Baseline{Devices: []record.BaselineDevice{{Device: "GPU-a", PowerW: ptr(100)}}}
	res, err := Compute(RunInput{Run: runWith(w), Baseline: b, Source: sliceSource(s, "GPU-a", "nvml")}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	g := res.Energy.Phases["measure"].Scopes["gpu"]
	if *g.GrossJ != 1000 || *g.IdleJ != 400 || *g.NetJ != 600 {
		t.Errorf("gross %v idle %v net %v", *g.GrossJ, *g.IdleJ, *g.NetJ)
	}
	b.Devices[0].PowerW = ptr(300)
	res, _ = Compute(RunInput{Run: runWith(w), Baseline: b, Source: sliceSource(s, "GPU-a", "nvml")}, DefaultOptions())
	if n := res.Energy.Phases["measure"].Scopes["gpu"].NetJ; *n != 0 {
		t.Errorf("net floored: %v", *n)
	}
}

func TestScopeOf(t *testing.T) {
	for _, c := range [][3]string{
		{"nvml", "GPU-1234", "gpu"}, {"rapl", "package-0", "cpu_package"}, {"rapl", "package-1", "cpu_package"},
		{"rapl", "dram-0", "dram"}, {"rapl", "package-0-dram", "dram"}, {"rapl", "core-0", "cpu_core"},
		{"rapl", "uncore-0", "cpu_uncore"}, {"estimate", "cpu", "cpu_estimate"}, {"", "GPU-ab", "gpu"},
	} {
		if got := power.ScopeOf(c[0], c[1]); got != c[2] {
			t.Errorf("power.ScopeOf(%s, %s) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
}

// A sampler that crashed mid-write leaves a stream cut inside a batch: the
// reader keeps every whole batch before the cut.
func TestTruncatedStream(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/s.arrows"
	devs := []device{{name: "GPU-a", source: "nvml", counter: true, powerReading: true, power: func(int64) float64 { return 100 }}}
	writeSamples(t, p, "100", simulate(devs, 10000*ms, 100*ms, nil), 10)
	b, _ := os.ReadFile(p)
	for _, cut := range []int{len(b) - 8, len(b) - 100, len(b) / 2} {
		os.WriteFile(p, b[:cut], 0o644)
		src, err := OpenArrow(p)
		if err != nil {
			t.Fatal(err)
		}
		tracks, err := Pass(src, []int64{t0 + 1000*ms, t0 + 2000*ms}, nil)
		src.Close()
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if sp := tracks[0].Curve.Span(t0+1000*ms, t0+2000*ms); sp.CounterJ == nil || math.Abs(*sp.CounterJ-100) > 1e-9 {
			t.Errorf("cut at %d: counter %v", cut, deref(sp.CounterJ))
		}
	}
}

package aggregate

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
)

// Messy sensors: each case is a synthetic stream of known true energy (the
// ramp's counter is analytic, and its power is linear so the trapezoid is
// exact too) spoiled the way real sensors and samplers spoil it.

// messyWin is a 9 s measure window whose edges are sample times, so a
// figure is exact unless the spoiling leaks into it.
var messyWin = record.Window{StartNS: 500 * ms, EndNS: 9500 * ms}

func messyTruth() float64 { return ramp.energy(messyWin.EndNS) - ramp.energy(messyWin.StartNS) }

func computeTrace(t *testing.T, s trace, w record.Window, b *record.Baseline) *record.Energy {
	t.Helper()
	run := runWith(w, "GPU-a")
	run.Host.Hostname = "node1"
	if b != nil {
		run.BaselineID = b.ID
	}
	res, err := Compute(RunInput{Run: run, Baseline: b, Source: sliceSource(s, "GPU-a", "nvml")}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return res.Energy
}

func flagOf(e *record.Energy, code string) *record.Flag {
	for i := range e.Flags {
		if e.Flags[i].Code == code {
			return &e.Flags[i]
		}
	}
	return nil
}

func assertEnergy(t *testing.T, e *record.Energy, want float64) {
	t.Helper()
	got := e.Metrics[record.MEnergyJ]
	if got == nil {
		t.Fatalf("energy is null; flags %+v", e.Flags)
	}
	if math.Abs(*got-want) > 1e-9*want {
		t.Errorf("energy %.9g J, want %.9g J (%+.3f%%); flags %+v", *got, want, 100*(*got-want)/want, e.Flags)
	}
}

// 1. A counter reading 1 mJ below the last (a stale repeat of the previous
// reading) is jitter: skipped, not a reset that counts an interval twice.
func TestCounterJitterIsNotAReset(t *testing.T) {
	s := sample(ramp, 100*ms, 10000*ms, nil)
	s.e[50] = s.e[49] - 0.001
	e := computeTrace(t, s, messyWin, nil)
	assertEnergy(t, e, messyTruth())
	if f := flagOf(e, FlagCounterWrapped); f != nil {
		t.Errorf("jitter flagged as a wrap: %+v", f)
	}
}

// 1. A real reset (the counter restarts from 0) is bridged with the power
// integral over its interval, and the flag says so.
func TestCounterResetBridgedWithPower(t *testing.T) {
	s := sample(ramp, 100*ms, 10000*ms, nil)
	base := s.e[50]
	for i := 50; i < len(s.e); i++ {
		s.e[i] -= base
	}
	e := computeTrace(t, s, messyWin, nil)
	assertEnergy(t, e, messyTruth())
	f := flagOf(e, FlagCounterWrapped)
	if f == nil || !strings.Contains(f.Message, "1 bridged with the power integral") || strings.Contains(f.Hint, "harmless") {
		t.Errorf("reset flag %+v", f)
	}
}

// 1. With the counter's range known, a wrap is bridged by it exactly; a
// step back within jitter is not taken for a wrap (which would add the
// whole range).
func TestCounterWrapByRangeAndJitter(t *testing.T) {
	const wrapJ = 1000.0
	s := sample(ramp, 100*ms, 10000*ms, nil)
	for i := range s.e {
		s.e[i] = math.Mod(s.e[i], wrapJ)
	}
	s.e[30] = s.e[29] - 0.002
	src := sliceSource(s, "GPU-a", "nvml")
	src.Devs[0].WrapJ = wrapJ
	res, err := Compute(RunInput{Run: runWith(messyWin, "GPU-a"), Source: src}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	assertEnergy(t, res.Energy, messyTruth())
	f := flagOf(res.Energy, FlagCounterWrapped)
	if f == nil || !strings.Contains(f.Message, "bridged with the counter's range") {
		t.Errorf("wrap flag %+v", f)
	}
}

// 2. One counter reading 10^6 J too high: the step up and the step back are
// rejected, the power integral takes those intervals, and it is flagged.
func TestCounterSpikeRejected(t *testing.T) {
	s := sample(ramp, 100*ms, 10000*ms, nil)
	s.e[40] += 1e6
	e := computeTrace(t, s, messyWin, nil)
	assertEnergy(t, e, messyTruth())
	f := flagOf(e, FlagCounterRejected)
	if f == nil || !strings.Contains(f.Message, "2 counter step(s)") || !strings.Contains(f.Message, "0.200 s") {
		t.Errorf("spike flag %+v", f)
	}
	if flagOf(e, FlagCounterWrapped) != nil {
		t.Errorf("the step back from a spike is not a wrap: %+v", e.Flags)
	}
	// A counter that lags its power (a load step seen late) is no spike.
	s = sample(step, 100*ms, 10000*ms, nil)
	e = computeTrace(t, s, messyWin, nil)
	if flagOf(e, FlagCounterRejected) != nil {
		t.Errorf("a clean step flagged: %+v", e.Flags)
	}
}

// 3. A row repeated at the same timestamp with other readings: the first is
// kept, the repeat is not counted in samples, and it is flagged.
func TestDuplicateTimestamps(t *testing.T) {
	s := sample(ramp, 100*ms, 10000*ms, nil)
	k := 60
	ins := func(xs []float64, v float64) []float64 {
		return append(xs[:k+1:k+1], append([]float64{v}, xs[k+1:]...)...)
	}
	s.t = append(s.t[:k+1:k+1], append([]int64{s.t[k]}, s.t[k+1:]...)...)
	s.p = ins(s.p, s.p[k]+50)
	s.e = ins(s.e, s.e[k]+3)
	s.pOK = append(s.pOK, true)
	s.eOK = append(s.eOK, true)
	e := computeTrace(t, s, messyWin, nil)
	assertEnergy(t, e, messyTruth())
	if n := e.Phases[record.PhaseMeasure].Devices[0].Samples; n != 90 {
		t.Errorf("samples %d, want 90 (the repeat counted once)", n)
	}
	f := flagOf(e, FlagDuplicates)
	if f == nil || !strings.Contains(f.Message, "1 row(s)") || !strings.Contains(f.Message, "1 with other readings") {
		t.Errorf("duplicate flag %+v", f)
	}
}

// 4. One row stamped 1000 s ahead costs only that row, in the middle of the
// stream and as its first row; the flag says what was dropped.
func TestFutureTimestampCostsOneRow(t *testing.T) {
	for _, k := range []int{20, 0} {
		s := sample(ramp, 100*ms, 10000*ms, nil)
		s.t[k] += 1000_000 * ms
		e := computeTrace(t, s, messyWin, nil)
		assertEnergy(t, e, messyTruth())
		// Row 20 (2.0 s) lies in the window and is lost; row 0 does not.
		want := 90
		if k == 20 {
			want = 89
		}
		if n := e.Phases[record.PhaseMeasure].Devices[0].Samples; n != want {
			t.Errorf("row %d ahead: samples %d, want %d", k, n, want)
		}
		f := flagOf(e, FlagTimestampAhead)
		if f == nil || !strings.Contains(f.Message, "1 row(s)") || flagOf(e, FlagUnordered) != nil {
			t.Errorf("row %d ahead: flags %+v", k, e.Flags)
		}
	}
	// A row stamped in the past is the one dropped, not its predecessor.
	s := sample(ramp, 100*ms, 10000*ms, nil)
	s.t[30] -= 2000 * ms
	e := computeTrace(t, s, messyWin, nil)
	assertEnergy(t, e, messyTruth())
	if flagOf(e, FlagUnordered) == nil || flagOf(e, FlagTimestampAhead) != nil {
		t.Errorf("row behind: flags %+v", e.Flags)
	}
}

// 5. A 200 ms window inside a 2 s gap in the readings, across which power
// stepped: the figure cannot be right, and the gap is flagged with its length.
func TestWindowInsideGap(t *testing.T) {
	s := sample(step, 100*ms, 10000*ms, func(i int) bool { return i > 30 && i < 50 })
	w := record.Window{StartNS: 3900 * ms, EndNS: 4100 * ms}
	e := computeTrace(t, s, w, nil)
	f := flagOf(e, FlagSampleGap)
	if f == nil || !strings.Contains(f.Message, "inside a 2.000 s gap") {
		t.Errorf("gap flag %+v in %+v", f, e.Flags)
	}
	// A window with readings on its 100 ms grid is not in a gap.
	e = computeTrace(t, sample(step, 100*ms, 10000*ms, nil), w, nil)
	if flagOf(e, FlagSampleGap) != nil {
		t.Errorf("clean window flagged: %+v", e.Flags)
	}
}

func baselineOf(host string, endNS int64, devs ...record.BaselineDevice) *record.Baseline {
	return &record.Baseline{Kind: record.KindBaseline, V: 1, ID: "baseline-x", Host: host,
		Window: record.Window{StartNS: endNS - 5000*ms, EndNS: endNS}, Devices: devs}
}

// 6. Baselines that cannot serve the run as they are each get a named flag
// with the reason; a usable one gives net = gross - idle × duration.
func TestBaselineChecks(t *testing.T) {
	s := sample(constant, 100*ms, 10000*ms, nil)
	gross := 250 * 9.0
	idle := func(w float64) *float64 { return &w }
	dev := func(name string, w *float64) record.BaselineDevice {
		return record.BaselineDevice{Device: name, Source: "nvml", Scope: "gpu", PowerW: w}
	}
	for _, c := range []struct {
		name string
		b    *record.Baseline
		flag string
		net  *float64
	}{
		{"usable", baselineOf("node1", 0, dev("GPU-a", idle(50))), "", idle(gross - 50*9)},
		{"another device", baselineOf("node1", 0, dev("GPU-z", idle(50))), FlagBaselineOtherDevice, nil},
		{"null idle power", baselineOf("node1", 0, dev("GPU-a", nil)), FlagBaselineNoIdle, nil},
		{"another host", baselineOf("node2", 0, dev("GPU-a", idle(50))), FlagBaselineOtherHost, nil},
		{"idle above gross", baselineOf("node1", 0, dev("GPU-a", idle(300))), FlagNetClamped, idle(0)},
	} {
		e := computeTrace(t, s, messyWin, c.b)
		var baselineFlags []string
		for _, f := range e.Flags {
			if strings.HasPrefix(f.Code, "baseline_") || f.Code == FlagNetClamped || f.Code == FlagNoBaseline {
				baselineFlags = append(baselineFlags, f.Code)
			}
		}
		if c.flag != "" && (len(baselineFlags) != 1 || baselineFlags[0] != c.flag) || c.flag == "" && len(baselineFlags) != 0 {
			t.Errorf("%s: flags %+v, want %q", c.name, e.Flags, c.flag)
		}
		got := e.Metrics[record.MEnergyNetJ]
		if (got == nil) != (c.net == nil) || got != nil && math.Abs(*got-*c.net) > 1e-6 {
			t.Errorf("%s: net %v, want %v", c.name, got, c.net)
		}
	}
}

// 6. A baseline three hours before the run is used and flagged stale; one
// covering only some of the run's devices is flagged partial.
func TestBaselineStaleAndPartial(t *testing.T) {
	s := sample(constant, 100*ms, 10000*ms, nil)
	w := record.Window{StartNS: t0 + messyWin.StartNS, EndNS: t0 + messyWin.EndNS}
	for i := range s.t {
		s.t[i] += t0
	}
	run := runWith(w, "GPU-a", "GPU-b")
	b := baselineOf("", t0-3*3600*1000*ms, record.BaselineDevice{Device: "GPU-a", PowerW: func() *float64 { v := 50.0; return &v }()})
	src := &SliceSource{Devs: []DeviceInfo{{Name: "GPU-a", Source: "nvml"}, {Name: "GPU-b", Source: "nvml"}}, Interval: 100 * ms}
	rows := &Rows{}
	for i := range s.t {
		for d := int32(0); d < 2; d++ {
			rows.T, rows.Dev = append(rows.T, s.t[i]), append(rows.Dev, d)
			rows.PowerW, rows.EnergyJ = append(rows.PowerW, s.p[i]), append(rows.EnergyJ, s.e[i])
		}
	}
	src.Batches = []*Rows{rows}
	res, err := Compute(RunInput{Run: run, Baseline: b, Source: src}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	e := res.Energy
	if f := flagOf(e, FlagBaselineStale); f == nil || !strings.Contains(f.Message, "10800 s before") {
		t.Errorf("stale flag %+v", f)
	}
	if f := flagOf(e, FlagBaselinePartial); f == nil || !strings.Contains(f.Message, "not GPU-b") {
		t.Errorf("partial flag %+v", f)
	}
	opt := DefaultOptions()
	opt.BaselineMaxAgeS = 4 * 3600
	src.i = 0
	if res, err = Compute(RunInput{Run: run, Baseline: b, Source: src}, opt); err != nil || flagOf(res.Energy, FlagBaselineStale) != nil {
		t.Errorf("with a 4 h limit: %v, flags %+v", err, res.Energy.Flags)
	}
	pm := e.Phases[record.PhaseMeasure]
	if pm.Devices[0].NetJ == nil || pm.Devices[1].NetJ != nil || e.Metrics[record.MEnergyNetJ] != nil {
		t.Errorf("nets %v %v, total %v", pm.Devices[0].NetJ, pm.Devices[1].NetJ, e.Metrics[record.MEnergyNetJ])
	}
}

// 6, 7. Input records that break their schema are refused with file:line
// and the field: a run without a required field, a negative duration, a
// negative idle power.
func TestSchemaCheckedInput(t *testing.T) {
	study := buildStudy(t, t.TempDir())
	lines := strings.Split(strings.TrimSpace(string(study)), "\n")
	edit := func(kind string, f func(m map[string]any)) (string, int) {
		out := append([]string(nil), lines...)
		for i, l := range out {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatal(err)
			}
			if m["kind"] == kind {
				f(m)
				b, _ := json.Marshal(m)
				out[i] = string(b)
				return strings.Join(out, "\n") + "\n", i + 1
			}
		}
		t.Fatalf("no %s record", kind)
		return "", 0
	}
	for _, c := range []struct {
		name, kind, field string
		f                 func(m map[string]any)
	}{
		{"missing run_id", record.KindRun, "run_id", func(m map[string]any) { delete(m, "run_id") }},
		{"negative duration", record.KindRun, "/duration_s", func(m map[string]any) { m["duration_s"] = -1 }},
		{"negative idle power", record.KindBaseline, "/devices/0/power_w", func(m map[string]any) {
			m["devices"].([]any)[0].(map[string]any)["power_w"] = -5
		}},
	} {
		in, line := edit(c.kind, c.f)
		_, stderr, code := runCmd(t, []byte(in))
		want := "<stdin>:" + itoa(int64(line)) + ":"
		if code != 2 || !strings.Contains(stderr, want) || !strings.Contains(stderr, c.field) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q (want %s and %s)", c.name, code, stderr, want, c.field)
		}
	}
}

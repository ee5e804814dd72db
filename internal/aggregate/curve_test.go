package aggregate

import (
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// truth is a power trace with a known exact energy: power as a function of
// time (ns) and its integral (J) from 0.
type truth struct {
	name   string
	power  func(t int64) float64
	energy func(t int64) float64
}

func sec(t int64) float64 { return float64(t) * 1e-9 }

const ms = int64(1e6)

var (
	constant = truth{"constant 250 W",
		func(int64) float64 { return 250 },
		func(t int64) float64 { return 250 * sec(t) }}
	ramp = truth{"ramp 50→350 W over 10 s",
		func(t int64) float64 { return 50 + 30*sec(t) },
		func(t int64) float64 { return 50*sec(t) + 15*sec(t)*sec(t) }}
	// step at 4.0437 s, between two samples of a 100 ms grid.
	stepAt = int64(4043700000)
	step   = truth{"step 80→300 W at 4.0437 s",
		func(t int64) float64 {
			if t < stepAt {
				return 80
			}
			return 300
		},
		func(t int64) float64 {
			if t < stepAt {
				return 80 * sec(t)
			}
			return 80*sec(stepAt) + 300*sec(t-stepAt)
		}}
	// A 30 ms, +400 W spike every 1.013 s: shorter than the 100 ms interval,
	// so polled power mostly misses it while the counter sees all of it.
	spikes = truth{"100 W + 30 ms spikes of 400 W",
		func(t int64) float64 {
			if t%1013000000 < 30*ms {
				return 500
			}
			return 100
		},
		func(t int64) float64 {
			n := t / 1013000000
			r := min(t%1013000000, 30*ms)
			return 100*sec(t) + 400*(float64(n)*0.030+sec(r))
		}}
)

type trace struct {
	t    []int64
	p    []float64
	pOK  []bool
	e    []float64
	eOK  []bool
	wrap float64
}

// sample polls tr every interval from 0 to end: instant power and the exact
// counter. drop removes the rows whose index it accepts.
func sample(tr truth, interval, end int64, drop func(i int) bool) trace {
	var s trace
	for i, t := 0, int64(0); t <= end; i, t = i+1, t+interval {
		if drop != nil && drop(i) {
			continue
		}
		s.t = append(s.t, t)
		s.p = append(s.p, tr.power(t))
		s.pOK = append(s.pOK, true)
		s.e = append(s.e, tr.energy(t))
		s.eOK = append(s.eOK, true)
	}
	return s
}

func (s trace) curve(queries ...int64) *Curve {
	c := NewCurve(SortedUnique(append([]int64(nil), queries...)))
	c.WrapJ = s.wrap
	for i := range s.t {
		c.Add(s.t[i], s.p[i], s.pOK[i], s.e[i], s.eOK[i])
	}
	c.Finish()
	return c
}

func relErr(got *float64, want float64) float64 {
	if got == nil {
		return math.Inf(1)
	}
	return math.Abs(*got-want) / math.Abs(want)
}

func absErr(got *float64, want float64) float64 {
	if got == nil {
		return math.Inf(1)
	}
	return math.Abs(*got - want)
}

// Windows whose edges fall on sample times: the counter is exact; the
// trapezoid is exact for piecewise-linear power and within the stated bound
// otherwise.
func TestAccuracyAlignedWindows(t *testing.T) {
	const interval = 100 * ms
	a, b := int64(1000*ms), int64(9000*ms)
	cases := []struct {
		tr truth
		// bound on the trapezoid's absolute error, J
		intBound float64
	}{
		{constant, 1e-9},
		{ramp, 1e-9}, // linear power: trapezoid exact
		// a step between samples: the trapezoid blurs it over one interval,
		// error ≤ |ΔP|·Δ/2 = 220·0.1/2 = 11 J
		{step, 220 * 0.1 / 2},
		// 8 spikes in the window, each 400 W × 30 ms = 12 J; polled power sees
		// a spike only if a sample lands in it, then counts 400 W × 100 ms:
		// per spike error ≤ max(12, 40-12) = 28 J
		{spikes, 8 * 28},
	}
	for _, tc := range cases {
		s := sample(tc.tr, interval, 10000*ms, nil)
		sp := s.curve(a, b).Span(a, b)
		want := tc.tr.energy(b) - tc.tr.energy(a)
		if e := relErr(sp.CounterJ, want); e > 1e-12 {
			t.Errorf("%s: counter %v J, want exactly %.9f J (rel err %.3g)", tc.tr.name, deref(sp.CounterJ), want, e)
		}
		if e := absErr(sp.IntegralJ, want); e > tc.intBound {
			t.Errorf("%s: integral %v J, want %.6f ± %.3g J (err %.3g)", tc.tr.name, deref(sp.IntegralJ), want, tc.intBound, e)
		}
		if sp.Samples != 80 {
			t.Errorf("%s: %d samples in window, want 80", tc.tr.name, sp.Samples)
		}
		if sp.IntOutNS != 0 || sp.CtrOutNS != 0 {
			t.Errorf("%s: edges reported outside the samples", tc.tr.name)
		}
	}
	// The spike trace must really be a case the trapezoid gets wrong, or the
	// test above proves nothing about the counter's advantage.
	s := sample(spikes, interval, 10000*ms, nil)
	sp := s.curve(a, b).Span(a, b)
	if e := absErr(sp.IntegralJ, spikes.energy(b)-spikes.energy(a)); e < 1 {
		t.Errorf("spike trace: integral error %.3g J, expected the polled power to miss spikes", e)
	}
}

// Windows whose edges fall between samples: both methods interpolate at the
// edges. Bounds per edge: linear power → trapezoid exact and counter
// interpolation error ≤ |dP/dt|·Δ²/8; a step inside the edge interval → ≤ |ΔP|·Δ/4.
func TestAccuracyEdgeInterpolation(t *testing.T) {
	const interval = 100 * ms
	a, b := int64(1234*ms+567), int64(8765*ms+4321)
	cases := []struct {
		tr                 truth
		intBound, ctrBound float64
	}{
		{constant, 1e-9, 1e-9},
		{ramp, 1e-9, 2 * 30 * 0.1 * 0.1 / 8},
		{step, 220 * 0.1 / 2, 1e-9}, // step not inside an edge interval: counter exact
	}
	for _, tc := range cases {
		s := sample(tc.tr, interval, 10000*ms, nil)
		sp := s.curve(a, b).Span(a, b)
		want := tc.tr.energy(b) - tc.tr.energy(a)
		if e := absErr(sp.CounterJ, want); e > tc.ctrBound {
			t.Errorf("%s: counter %v, want %.6f ± %.3g (err %.3g)", tc.tr.name, deref(sp.CounterJ), want, tc.ctrBound, e)
		}
		if e := absErr(sp.IntegralJ, want); e > tc.intBound {
			t.Errorf("%s: integral %v, want %.6f ± %.3g (err %.3g)", tc.tr.name, deref(sp.IntegralJ), want, tc.intBound, e)
		}
	}
	// A step inside the start edge's interval: counter interpolation error ≤ |ΔP|·Δ/4.
	a2 := stepAt - 20*ms
	s := sample(step, interval, 10000*ms, nil)
	sp := s.curve(a2, b).Span(a2, b)
	want := step.energy(b) - step.energy(a2)
	if e := absErr(sp.CounterJ, want); e > 220*0.1/4 {
		t.Errorf("step at edge: counter err %.3g J > %.3g", e, 220*0.1/4)
	}
}

// Counter wraparound (RAPL wraps at max_energy_range): exact when the modulus
// is known; bridged by the power integral over the wrapping interval when it
// is not (error ≤ that interval's trapezoid error); without power, the
// counter figure is withheld rather than wrong.
func TestAccuracyCounterWrap(t *testing.T) {
	const interval = 100 * ms
	const modulus = 262.143 // J, like a RAPL domain's max_energy_range_uj
	a, b := int64(500*ms), int64(9500*ms)
	want := ramp.energy(b) - ramp.energy(a)

	s := sample(ramp, interval, 10000*ms, nil)
	for i := range s.e {
		s.e[i] = math.Mod(s.e[i], modulus)
	}
	s.wrap = modulus
	c := s.curve(a, b)
	sp := c.Span(a, b)
	if c.Wraps < 5 {
		t.Fatalf("trace wrapped %d times; the test needs several wraps", c.Wraps)
	}
	if e := relErr(sp.CounterJ, want); e > 1e-12 {
		t.Errorf("known modulus: counter %v, want exactly %.9f", deref(sp.CounterJ), want)
	}

	s.wrap = 0 // modulus unknown: bridged by power (linear power: trapezoid exact)
	sp = s.curve(a, b).Span(a, b)
	if e := relErr(sp.CounterJ, want); e > 1e-9 {
		t.Errorf("bridged by power: counter %v, want %.9f (rel err %.3g)", deref(sp.CounterJ), want, e)
	}

	for i := range s.pOK {
		s.pOK[i] = false
	}
	c = s.curve(a, b)
	sp = c.Span(a, b)
	if sp.CounterJ != nil {
		t.Errorf("unbridgeable wrap: counter %v, want null", *sp.CounterJ)
	}
	if sp.IntegralJ != nil {
		t.Errorf("no power readings: integral %v, want null", *sp.IntegralJ)
	}
	// A window that does not cross a wrap keeps its counter figure.
	a3, b3 := int64(100*ms), int64(300*ms)
	sp = s.curve(a3, b3).Span(a3, b3)
	if e := relErr(sp.CounterJ, ramp.energy(b3)-ramp.energy(a3)); e > 1e-9 {
		t.Errorf("window before the first wrap: counter %v", deref(sp.CounterJ))
	}
}

// Dropped samples: the counter stays exact across a gap; the trapezoid
// bridges it linearly (error ≤ |ΔP|·gap/2 for a step inside the gap).
func TestAccuracyDroppedSamples(t *testing.T) {
	const interval = 100 * ms
	a, b := int64(1000*ms), int64(9000*ms)
	// drop 1.5 s of rows around the step (indices 33..47) and 10 % at random
	rng := rand.New(rand.NewPCG(1, 2))
	drop := func(i int) bool { return (i >= 33 && i <= 47) || (i != 10 && i != 90 && rng.Float64() < 0.1) }
	s := sample(step, interval, 10000*ms, drop)
	sp := s.curve(a, b).Span(a, b)
	want := step.energy(b) - step.energy(a)
	if e := relErr(sp.CounterJ, want); e > 1e-12 {
		t.Errorf("counter across dropped rows: %v, want exactly %.9f", deref(sp.CounterJ), want)
	}
	if e := absErr(sp.IntegralJ, want); e > 220*1.6/2 {
		t.Errorf("integral across a 1.6 s gap: err %.3g J > %.3g", e, 220*1.6/2)
	}
	if sp.Samples >= 80 || sp.Samples < 50 {
		t.Errorf("samples in window %d, want the dropped rows missing", sp.Samples)
	}

	// Null readings (the row exists, the value does not) behave like dropped rows.
	s = sample(ramp, interval, 10000*ms, nil)
	for i := 20; i < 40; i++ {
		s.pOK[i] = false
	}
	sp = s.curve(a, b).Span(a, b)
	if e := relErr(sp.IntegralJ, ramp.energy(b)-ramp.energy(a)); e > 1e-12 {
		t.Errorf("ramp with null power readings: integral rel err %.3g", e)
	}
}

// Edges outside the samples are extrapolated by holding the nearest reading,
// and the distance is reported so the caller can flag it.
func TestEdgesOutsideSamples(t *testing.T) {
	s := sample(constant, 100*ms, 5000*ms, nil)
	for i := range s.t {
		s.t[i] += 1000 * ms // samples cover 1 s .. 6 s
	}
	a, b := int64(700*ms), int64(6400*ms)
	sp := s.curve(a, b).Span(a, b)
	if sp.IntOutNS != 400*ms || sp.CtrOutNS != 400*ms {
		t.Errorf("out distances %d/%d ns, want 400 ms", sp.IntOutNS, sp.CtrOutNS)
	}
	want := 250 * sec(b-a) // held constant power: exact here
	if e := relErr(sp.IntegralJ, want); e > 1e-12 {
		t.Errorf("integral %v want %v", deref(sp.IntegralJ), want)
	}
	if e := relErr(sp.CounterJ, want); e > 1e-12 {
		t.Errorf("counter %v want %v", deref(sp.CounterJ), want)
	}
	// No samples at all: null, never 0.
	sp = trace{}.curve(a, b).Span(a, b)
	if sp.IntegralJ != nil || sp.CounterJ != nil || sp.Samples != 0 {
		t.Errorf("empty stream gave %+v", sp)
	}
}

// Many overlapping windows in one pass give the same figures as each window alone.
func TestManyWindowsOnePass(t *testing.T) {
	s := sample(spikes, 10*ms, 20000*ms, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	var qs []int64
	type w struct{ a, b int64 }
	var ws []w
	for range 200 {
		a := rng.Int64N(19000 * int64(ms))
		b := a + rng.Int64N(1000*ms) + 1
		ws = append(ws, w{a, b})
		qs = append(qs, a, b)
	}
	c := s.curve(qs...)
	for _, x := range ws {
		all := c.Span(x.a, x.b)
		one := s.curve(x.a, x.b).Span(x.a, x.b)
		if *all.IntegralJ != *one.IntegralJ && math.Abs(*all.IntegralJ-*one.IntegralJ) > 1e-9*math.Abs(*one.IntegralJ) {
			t.Fatalf("window %v: integral %v in one pass, %v alone", x, *all.IntegralJ, *one.IntegralJ)
		}
		if math.Abs(*all.CounterJ-*one.CounterJ) > 1e-9*math.Abs(*one.CounterJ) {
			t.Fatalf("window %v: counter %v in one pass, %v alone", x, *all.CounterJ, *one.CounterJ)
		}
		if all.Samples != one.Samples {
			t.Fatalf("window %v: samples %d vs %d", x, all.Samples, one.Samples)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// genSource produces n rows of 4 devices lazily, reusing one batch buffer,
// like a file reader holding one record batch at a time.
type genSource struct {
	n, done int64
	rows    Rows
}

func (g *genSource) Devices() []DeviceInfo {
	return []DeviceInfo{{Name: "GPU-a", Source: "nvml"}, {Name: "GPU-b", Source: "nvml"}, {Name: "package-0", Source: "rapl"}, {Name: "dram-0", Source: "rapl"}}
}
func (g *genSource) IntervalNS() int64 { return 10 * ms }
func (g *genSource) Close() error      { return nil }
func (g *genSource) Next() (*Rows, error) {
	if g.done >= g.n {
		return nil, io.EOF
	}
	k := min(int64(1<<16), g.n-g.done)
	r := &g.rows
	r.T, r.Dev, r.PowerW, r.EnergyJ = r.T[:0], r.Dev[:0], r.PowerW[:0], r.EnergyJ[:0]
	for i := int64(0); i < k; i++ {
		row := g.done + i
		r.T = append(r.T, row/4*10*ms)
		r.Dev = append(r.Dev, int32(row%4))
		r.PowerW = append(r.PowerW, 100)
		r.EnergyJ = append(r.EnergyJ, float64(row/4)*1)
	}
	g.done += k
	return r, nil
}

// Memory does not grow with the stream's length: a pass over 40× more rows
// allocates about the same.
func TestPassMemoryFlat(t *testing.T) {
	alloc := func(n int64) uint64 {
		var qs []int64
		for i := int64(1); i <= 1000; i++ {
			qs = append(qs, i*1000*ms)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tracks, err := Pass(&genSource{n: n}, qs, nil)
		if err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if sp := tracks[0].Curve.Span(1000*ms, 2000*ms); sp.IntegralJ == nil || math.Abs(*sp.IntegralJ-100) > 1e-9 {
			t.Fatalf("integral %v", deref(sp.IntegralJ))
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	small, big := alloc(100_000), alloc(4_000_000)
	if big > small+4<<20 {
		t.Errorf("a pass over 4e6 rows allocated %d bytes, over 1e5 rows %d: memory grows with the stream", big, small)
	}
}

// BenchmarkPass measures the integration loop alone (no file reading).
func BenchmarkPass(b *testing.B) {
	var qs []int64
	for i := int64(1); i <= 10000; i++ {
		qs = append(qs, i*100*ms)
	}
	for b.Loop() {
		if _, err := Pass(&genSource{n: 1 << 22}, qs, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(1<<22), "ns/row")
}

// NVML's counter advances about every 100 ms: a poller reading it every 50 ms
// sees a value up to 100 ms stale. The counter figure's error is then bounded
// by the energy of that lag at each edge: ≤ 2 · P_max · 0.1 s.
func TestAccuracyQuantisedCounter(t *testing.T) {
	for _, tr := range []truth{ramp, step, spikes} {
		s := sample(tr, 50*ms, 10000*ms, nil)
		for i, ti := range s.t {
			s.e[i] = tr.energy(ti / (100 * ms) * (100 * ms))
		}
		a, b := int64(1234*ms), int64(8765*ms)
		sp := s.curve(a, b).Span(a, b)
		pmax := 0.0
		for ti := a; ti <= b; ti += ms {
			pmax = math.Max(pmax, tr.power(ti))
		}
		want := tr.energy(b) - tr.energy(a)
		if e := absErr(sp.CounterJ, want); e > 2*pmax*0.1 {
			t.Errorf("%s: quantised counter err %.3g J > %.3g", tr.name, e, 2*pmax*0.1)
		}
	}
}

// FuzzCurve: any row sequence (out of order, nulls, counter jumps) never
// panics, and energy is additive over adjacent windows: [a,c] = [a,b] + [b,c].
func FuzzCurve(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, int64(3), int64(40), int64(90))
	f.Fuzz(func(t *testing.T, data []byte, a, b, c int64) {
		a, b, c = a%200, b%200, c%200
		if !(a < b && b < c) {
			return
		}
		cv := NewCurve(SortedUnique([]int64{a, b, c}))
		tt := int64(0)
		for i := 0; i+2 < len(data); i += 3 {
			tt += int64(data[i]%16) - 2 // mostly forward, sometimes back
			cv.Add(tt, float64(data[i+1]), data[i+1]%5 != 0, float64(data[i+2])*float64(i), data[i+2]%7 != 0)
		}
		cv.Finish()
		ac, ab, bc := cv.Span(a, c), cv.Span(a, b), cv.Span(b, c)
		if ac.IntegralJ != nil && ab.IntegralJ != nil && bc.IntegralJ != nil {
			if d := *ac.IntegralJ - *ab.IntegralJ - *bc.IntegralJ; math.Abs(d) > 1e-9*(1+math.Abs(*ac.IntegralJ)) {
				t.Fatalf("integral not additive: %v vs %v + %v", *ac.IntegralJ, *ab.IntegralJ, *bc.IntegralJ)
			}
		}
		if ac.CounterJ != nil && ab.CounterJ != nil && bc.CounterJ != nil {
			if d := *ac.CounterJ - *ab.CounterJ - *bc.CounterJ; math.Abs(d) > 1e-9*(1+math.Abs(*ac.CounterJ)) {
				t.Fatalf("counter not additive: %v vs %v + %v", *ac.CounterJ, *ab.CounterJ, *bc.CounterJ)
			}
		}
		if ac.Samples != ab.Samples+bc.Samples {
			t.Fatalf("samples %d != %d + %d", ac.Samples, ab.Samples, bc.Samples)
		}
	})
}

package load

import (
	"math"
	"slices"
	"sort"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// gaps returns the inter-arrival gaps of offsets in seconds.
func gaps(t *testing.T, offs []int64) []float64 {
	t.Helper()
	g := make([]float64, len(offs)-1)
	for i := range g {
		if offs[i+1] < offs[i] {
			t.Fatalf("offset %d (%d) before offset %d (%d)", i+1, offs[i+1], i, offs[i])
		}
		g[i] = float64(offs[i+1]-offs[i]) * 1e-9
	}
	return g
}

// ksStat is the one-sample Kolmogorov–Smirnov statistic of xs against cdf.
func ksStat(xs []float64, cdf func(float64) float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := float64(len(s))
	d := 0.0
	for i, x := range s {
		f := cdf(x)
		d = max(d, math.Abs(float64(i+1)/n-f), math.Abs(f-float64(i)/n))
	}
	return d
}

// ksCritical is the KS critical value at the 1 % level for n samples.
func ksCritical(n int) float64 { return 1.628 / math.Sqrt(float64(n)) }

func meanCV(xs []float64) (mean, cv float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss/float64(len(xs)-1)) / mean
}

func TestPoissonGapsAreExponential(t *testing.T) {
	const n, rate = 20000, 40.0
	offs, err := Offsets(ArrivalPoisson, rate, 1, n, 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(offs) != n || offs[0] != 0 {
		t.Fatalf("%d offsets starting at %d, want %d starting at 0", len(offs), offs[0], n)
	}
	g := gaps(t, offs)
	exp := func(x float64) float64 { return 1 - math.Exp(-rate*x) }
	if d, c := ksStat(g, exp), ksCritical(len(g)); d > c {
		t.Errorf("KS statistic %.4f > critical %.4f: gaps are not exponential with rate %v", d, c, rate)
	}
	if mean, _ := meanCV(g); math.Abs(mean*rate-1) > 0.03 {
		t.Errorf("mean gap %.5f s, want %.5f", mean, 1/rate)
	}
	// The test can fail: constant gaps at the same rate are rejected.
	cst, _ := Offsets(ArrivalConstant, rate, 1, n, 0, 7)
	if d, c := ksStat(gaps(t, cst), exp), ksCritical(n-1); d <= c {
		t.Errorf("constant gaps pass the exponential KS test (D %.4f ≤ %.4f)", d, c)
	}
}

func TestGammaGaps(t *testing.T) {
	const n, rate = 20000, 25.0
	for _, b := range []float64{0.25, 0.5, 1, 2, 4} {
		offs, err := Offsets(ArrivalGamma, rate, b, n, 0, 11)
		if err != nil {
			t.Fatal(err)
		}
		g := gaps(t, offs)
		mean, cv := meanCV(g)
		if want := 1 / math.Sqrt(b); math.Abs(cv/want-1) > 0.05 {
			t.Errorf("burstiness %v: CV %.4f, want 1/√b = %.4f", b, cv, want)
		}
		if math.Abs(mean*rate-1) > 0.04 {
			t.Errorf("burstiness %v: mean gap %.5f, want %.5f", b, mean, 1/rate)
		}
		dist := distuv.Gamma{Alpha: b, Beta: rate * b}
		if d, c := ksStat(g, dist.CDF), ksCritical(len(g)); d > c {
			t.Errorf("burstiness %v: KS statistic %.4f > %.4f against Gamma(%v, scale %v)", b, d, c, b, 1/(rate*b))
		}
	}
}

func TestConstantExact(t *testing.T) {
	offs, err := Offsets(ArrivalConstant, 3, 1, 7, 0, 99)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{0, 333333333, 666666667, 1000000000, 1333333333, 1666666667, 2000000000}
	if !slices.Equal(offs, want) {
		t.Errorf("offsets %v, want %v", offs, want)
	}
	// A duration bounds the schedule: offsets strictly below it.
	offs, _ = Offsets(ArrivalConstant, 1000, 1, 0, 2e9, 0)
	if len(offs) != 2000 || offs[1999] != 1999000000 {
		t.Errorf("1000/s for 2 s: %d offsets, last %d; want 2000, last 1999000000", len(offs), offs[len(offs)-1])
	}
}

func TestScheduleSeeded(t *testing.T) {
	for _, arr := range []string{ArrivalPoisson, ArrivalGamma} {
		b := map[string]float64{ArrivalPoisson: 1, ArrivalGamma: 0.5}[arr]
		a1, _ := Offsets(arr, 10, b, 0, 30e9, 5)
		a2, _ := Offsets(arr, 10, b, 0, 30e9, 5)
		a3, _ := Offsets(arr, 10, b, 0, 30e9, 6)
		if !slices.Equal(a1, a2) {
			t.Errorf("%s: the same seed gave two schedules", arr)
		}
		if slices.Equal(a1, a3) {
			t.Errorf("%s: seeds 5 and 6 gave the same schedule", arr)
		}
		if last := a1[len(a1)-1]; last >= 30e9 {
			t.Errorf("%s: offset %d past the 30 s duration", arr, last)
		}
		// A count limit takes a prefix of the same schedule.
		p, _ := Offsets(arr, 10, b, 20, 0, 5)
		if !slices.Equal(p, a1[:20]) {
			t.Errorf("%s: 20 requests are not the first 20 of the timed schedule", arr)
		}
	}
}

func TestScheduleEdges(t *testing.T) {
	offs, err := Offsets(ArrivalPoisson, math.Inf(1), 1, 5, 0, 0)
	if err != nil || !slices.Equal(offs, make([]int64, 5)) {
		t.Errorf("infinite rate: %v, %v; want 5 zeros", offs, err)
	}
	bad := []struct {
		arr     string
		rate, b float64
		n       int
		limit   int64
	}{
		{ArrivalPoisson, 10, 1, 0, 0},                // no limit
		{ArrivalPoisson, 0, 1, 5, 0},                 // no rate
		{ArrivalPoisson, math.NaN(), 1, 5, 0},        // NaN rate
		{ArrivalPoisson, 10, 2, 5, 0},                // burstiness without gamma
		{ArrivalGamma, 10, 0, 5, 0},                  // zero shape
		{"uniform", 10, 1, 5, 0},                     // unknown process
		{ArrivalPoisson, math.Inf(1), 1, 0, 1e9},     // everything at once for a duration
		{ArrivalPoisson, 1e9, 1, 0, 3600e9},          // too many requests
		{ArrivalConstant, 10, 1, MaxRequests + 1, 0}, // too many requests
	}
	for _, c := range bad {
		if _, err := Offsets(c.arr, c.rate, c.b, c.n, c.limit, 0); err == nil {
			t.Errorf("Offsets(%q, %v, %v, %d, %d) accepted", c.arr, c.rate, c.b, c.n, c.limit)
		}
	}
}

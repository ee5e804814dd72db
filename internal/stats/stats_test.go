package stats

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// Reference values: t quantiles from standard tables; the sample from a hand
// computation (mean 10, s = sqrt(2.5)).
func TestTQuantile(t *testing.T) {
	for _, c := range []struct{ df, want float64 }{{1, 12.706}, {2, 4.303}, {4, 2.776}, {9, 2.262}, {29, 2.045}, {1000, 1.962}} {
		if got := TQuantile(0.975, c.df); !near(got, c.want, 1e-3) {
			t.Errorf("t(0.975, %v) = %v, want %v", c.df, got, c.want)
		}
	}
}

func TestSummary(t *testing.T) {
	s := Summary([]float64{8, 9, 10, 11, 12})
	if s.N != 5 || *s.Mean != 10 || *s.Min != 8 || *s.Max != 12 {
		t.Fatalf("got %+v", s)
	}
	if !near(*s.Std, math.Sqrt(2.5), 1e-12) {
		t.Errorf("std %v", *s.Std)
	}
	half := 2.776445 * math.Sqrt(2.5) / math.Sqrt(5)
	if !near(*s.CI95, half, 1e-5) || !near(*s.CI95Lo, 10-half, 1e-5) || !near(*s.CI95Hi, 10+half, 1e-5) {
		t.Errorf("ci %v [%v, %v], want ±%v", *s.CI95, *s.CI95Lo, *s.CI95Hi, half)
	}
	if !near(*s.CV, math.Sqrt(2.5)/10, 1e-12) {
		t.Errorf("cv %v", *s.CV)
	}
	one := Summary([]float64{3})
	if one.N != 1 || *one.Mean != 3 || one.Std != nil || one.CI95 != nil || one.CV != nil {
		t.Errorf("n=1: %+v", one)
	}
	none := Summary(nil)
	if none.N != 0 || none.Mean != nil || none.Min != nil {
		t.Errorf("n=0: %+v", none)
	}
	zero := Summary([]float64{-1, 1})
	if zero.CV != nil {
		t.Errorf("zero mean: cv %v, want null", *zero.CV)
	}
}

// numpy.percentile([1, 2, 3, 4, 10], [50, 90, 95, 99]) = 3, 7.6, 8.8, 9.76
func TestLatencyPercentiles(t *testing.T) {
	l := Latency([]float64{4e9, 1e9, 10e9, 3e9, 2e9})
	for _, c := range []struct {
		got  *float64
		want float64
	}{{l.P50, 3}, {l.P90, 7.6}, {l.P95, 8.8}, {l.P99, 9.76}, {l.Mean, 4}, {l.Min, 1}, {l.Max, 10}} {
		if !near(*c.got, c.want, 1e-9) {
			t.Errorf("got %v want %v", *c.got, c.want)
		}
	}
	if e := Latency(nil); e.N != 0 || e.P50 != nil {
		t.Errorf("empty: %+v", e)
	}
}

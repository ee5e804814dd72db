// Package stats holds the descriptive statistics llem reports: percentiles of
// latency distributions and the across-cycle summary of a metric (mean,
// sample standard deviation, Student-t 95 % confidence interval, CV).
// Figures that cannot be computed are nil, never 0.
package stats

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/llem/llem/internal/record"
)

// Percentile returns the q-th quantile (0 ≤ q ≤ 1) of sorted values with
// linear interpolation between closest ranks (numpy's default "linear"
// method), so figures match what pandas and numpy users compute.
func Percentile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	h := q * float64(n-1)
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return sorted[n-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// Latency summarises a latency distribution given in nanoseconds, in seconds.
// values is sorted in place. An empty distribution gives N=0 and nil figures.
func Latency(ns []float64) *record.Latency {
	l := &record.Latency{N: len(ns)}
	if len(ns) == 0 {
		return l
	}
	sort.Float64s(ns)
	s := func(v float64) *float64 { v *= 1e-9; return &v }
	sum := 0.0
	for _, v := range ns {
		sum += v
	}
	l.Mean = s(sum / float64(len(ns)))
	l.P50 = s(Percentile(ns, 0.50))
	l.P90 = s(Percentile(ns, 0.90))
	l.P95 = s(Percentile(ns, 0.95))
	l.P99 = s(Percentile(ns, 0.99))
	l.Min = s(ns[0])
	l.Max = s(ns[len(ns)-1])
	return l
}

// TQuantile is the q-quantile of Student's t distribution with df degrees of freedom.
func TQuantile(q float64, df float64) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(q)
}

// Summary computes the across-cycle statistic of one metric. Std and the
// confidence interval need n ≥ 2 and are nil below; CV needs a non-zero mean.
// The interval is mean ± t(0.975, n−1)·s/√n.
func Summary(values []float64) *record.Stat {
	st := &record.Stat{N: len(values)}
	n := len(values)
	if n == 0 {
		return st
	}
	p := func(v float64) *float64 { return &v }
	mean, lo, hi := 0.0, values[0], values[0]
	for _, v := range values {
		mean += v
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	mean /= float64(n)
	st.Mean, st.Min, st.Max = p(mean), p(lo), p(hi)
	if n < 2 {
		return st
	}
	ss := 0.0
	for _, v := range values {
		ss += (v - mean) * (v - mean)
	}
	sd := math.Sqrt(ss / float64(n-1))
	half := TQuantile(0.975, float64(n-1)) * sd / math.Sqrt(float64(n))
	st.Std, st.CI95, st.CI95Lo, st.CI95Hi = p(sd), p(half), p(mean-half), p(mean+half)
	if mean != 0 {
		st.CV = p(sd / math.Abs(mean))
	}
	return st
}

package load

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Arrival processes.
const (
	ArrivalPoisson  = "poisson"  // exponential gaps: a memoryless stream at the mean rate
	ArrivalConstant = "constant" // gaps of exactly 1/rate
	ArrivalGamma    = "gamma"    // gamma gaps, shape = burstiness, mean 1/rate
)

// MaxRequests bounds one schedule, so a typo in --rate or --duration cannot
// allocate without limit.
const MaxRequests = 10_000_000

// Offsets computes the send offsets, in nanoseconds from the start, of an
// open-loop schedule: at most n requests (n ≤ 0: no count limit) whose offsets
// are below limitNS (≤ 0: no time limit); at least one limit must be set. The
// first request is sent at offset 0; the gaps between consecutive requests
// have mean 1/rate and are drawn up front from seed alone, so the same
// arguments give the same schedule. An infinite rate sends everything at 0.
//
// Gamma gaps have shape b = burstiness and scale 1/(rate·b): b = 1 is the
// Poisson process, b < 1 is burstier, b > 1 more even (coefficient of
// variation 1/√b). Offsets are the rounded cumulative sum in seconds, so
// rounding does not accumulate over a long schedule.
func Offsets(arrival string, rate, burstiness float64, n int, limitNS int64, seed uint64) ([]int64, error) {
	if n <= 0 && limitNS <= 0 {
		return nil, fmt.Errorf("schedule: give a request count or a duration")
	}
	if !(rate > 0) {
		return nil, fmt.Errorf("schedule: rate %v, want > 0", rate)
	}
	if math.IsInf(rate, 1) {
		if n <= 0 {
			return nil, fmt.Errorf("schedule: an infinite rate needs a request count")
		}
		return make([]int64, n), nil
	}
	if n > MaxRequests {
		return nil, fmt.Errorf("schedule: %d requests, more than %d", n, MaxRequests)
	}
	if limitNS > 0 {
		if expected := float64(limitNS) * 1e-9 * rate; expected > MaxRequests {
			return nil, fmt.Errorf("schedule: %.0f requests expected in the duration at %v/s, more than %d", expected, rate, MaxRequests)
		}
	}
	at, err := sendTimes(arrival, rate, burstiness, seed)
	if err != nil {
		return nil, err
	}
	want := n
	if want <= 0 {
		want = MaxRequests
	}
	out := make([]int64, 0, min(want, capHint(rate, limitNS)))
	for i := 0; i < want; i++ {
		off := int64(math.Round(at(i) * 1e9))
		if limitNS > 0 && off >= limitNS {
			break
		}
		out = append(out, off)
	}
	return out, nil
}

// capHint guesses the schedule's length, to allocate once.
func capHint(rate float64, limitNS int64) int {
	if limitNS <= 0 {
		return MaxRequests
	}
	return int(float64(limitNS)*1e-9*rate*1.1) + 16
}

// sendTimes returns the send time in seconds of request i; it must be called
// for i = 0, 1, 2… in order. Request 0 is sent at 0.
func sendTimes(arrival string, rate, burstiness float64, seed uint64) (func(i int) float64, error) {
	var gap func() float64
	switch arrival {
	case ArrivalConstant:
		// i/rate directly: exact, with no drift from a running sum.
		return func(i int) float64 { return float64(i) / rate }, nil
	case ArrivalPoisson:
		if burstiness != 1 {
			return nil, fmt.Errorf("schedule: burstiness %v needs --arrival gamma (Poisson is burstiness 1)", burstiness)
		}
		r := rand.New(rand.NewPCG(seed, seedArrivals))
		gap = func() float64 { return r.ExpFloat64() / rate }
	case ArrivalGamma:
		if !(burstiness > 0) || math.IsInf(burstiness, 0) {
			return nil, fmt.Errorf("schedule: burstiness %v, want a finite number > 0", burstiness)
		}
		r := rand.New(rand.NewPCG(seed, seedArrivals))
		scale := 1 / (rate * burstiness)
		gap = func() float64 { return gammaSample(r, burstiness) * scale }
	default:
		return nil, fmt.Errorf("schedule: arrival %q: want poisson, constant or gamma", arrival)
	}
	cum := 0.0
	return func(i int) float64 {
		if i > 0 {
			cum += gap()
		}
		return cum
	}, nil
}

// Streams of the seed: arrivals and per-request shapes draw from separate
// generators, so changing the length distribution keeps the arrival times.
const (
	seedArrivals = 0xa221
	seedShapes   = 0x5a9e
)

// gammaSample draws from Gamma(shape, 1) by Marsaglia and Tsang's method;
// shapes below 1 use the boost Gamma(a) = Gamma(a+1)·U^(1/a).
func gammaSample(r *rand.Rand, shape float64) float64 {
	if shape < 1 {
		u := r.Float64()
		for u == 0 {
			u = r.Float64()
		}
		return gammaSample(r, shape+1) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for { // accepts with probability > 0.95 per round
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

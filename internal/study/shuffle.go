package study

// The shuffled cycle order is defined by these two functions alone, so any
// language can reproduce it from the seed (docs/expand.md gives the steps):
//
//	SplitMix64 (Steele, Lea, Flood 2014): state += 0x9E3779B97F4A7C15;
//	  z = state; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
//	  z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31  (mod 2^64)
//	Fisher–Yates, from the end: for i = n-1 down to 1:
//	  j = (next() * (i+1)) >> 64  (the high word of the 128-bit product);
//	  swap a[i], a[j]
//
// Every cycle shuffles the unique configs in expansion order afresh, drawing
// from one generator that runs on across cycles.

import "math/bits"

// SplitMix64 is a tiny, well-known 64-bit generator.
type SplitMix64 struct{ state uint64 }

// NewSplitMix64 seeds a generator.
func NewSplitMix64(seed uint64) *SplitMix64 { return &SplitMix64{state: seed} }

// Next returns the next 64-bit value.
func (g *SplitMix64) Next() uint64 {
	g.state += 0x9E3779B97F4A7C15
	z := g.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Shuffle permutes a in place (Fisher–Yates with multiply-shift bounding).
func Shuffle[T any](a []T, g *SplitMix64) {
	for i := len(a) - 1; i >= 1; i-- {
		hi, _ := bits.Mul64(g.Next(), uint64(i+1))
		a[i], a[hi] = a[hi], a[i]
	}
}

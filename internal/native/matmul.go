package native

import (
	"math"
	"time"
)

// Matmul exposes the engine's matrix product, y = x·Wᵀ with W stored
// [out][in], on its own pool of goroutines, so that benchmarks outside the
// package (scripts/bench/native) can time the very kernels a forward step
// uses against other libraries on the same shapes.
type Matmul struct{ p *pool }

// NewMatmul starts a pool of threads goroutines (0 = GOMAXPROCS).
func NewMatmul(threads int) *Matmul { return &Matmul{newPool(threads)} }

// PackedWeights is a weight matrix packed for the kernels, as an engine
// packs each of its model's matrices once when it is made.
type PackedWeights struct{ w *packedW }

// PackWeights packs w ([out][in]) for Do; w is copied.
func PackWeights(w []float32, in, out int) PackedWeights {
	return PackedWeights{packWeights(w[:out*in], in, out)}
}

// Do sets y[r*out+o] = Σ_i x[r*in+i]·w[o*in+i] for r < rows, o < out.
func (m *Matmul) Do(y, x []float32, w PackedWeights, rows int) {
	m.p.matmul(y[:rows*w.w.out], x[:rows*w.w.in], w.w, rows)
}

// Kernels names the micro-kernels in use: avx512, avx2 or go.
func Kernels() string { return kernels.name }

// Close stops the goroutines.
func (m *Matmul) Close() { m.p.close() }

// Peak is one core's measured arithmetic peak.
type Peak struct {
	GHz    float64 // clock: a chain of dependent integer additions, one per cycle
	GFLOPs float64 // register-only fused multiply-adds at the widest vectors
	Lanes  int     // float32 lanes of those vectors (16 AVX-512, 8 AVX2)
}

// MeasurePeak times the clock and the FMA peak of the core it runs on, each
// the fastest of repeated runs over about d: on a shared machine the fastest
// run is the one that had the core to itself. ok is false where the CPU has
// no AVX2+FMA kernels to measure with.
func MeasurePeak(d time.Duration) (p Peak, ok bool) {
	if !hasAVX2 {
		return Peak{}, false
	}
	const n = 1 << 16
	fma, lanes := fmaPeakAVX2, 8
	if hasAVX512 {
		fma, lanes = fmaPeakAVX512, 16
	}
	best := func(f func()) float64 {
		b := math.Inf(1)
		for end := time.Now().Add(d / 2); time.Now().Before(end); {
			t0 := time.Now()
			f()
			b = min(b, time.Since(t0).Seconds())
		}
		return b
	}
	clock := best(func() { addChain(n) })
	flops := best(func() { fma(n) })
	return Peak{GHz: 8 * n / clock / 1e9, GFLOPs: float64(n*12*lanes*2) / flops / 1e9, Lanes: lanes}, true
}

package native

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

package native

// Matmul exposes the engine's matrix product, y = x·Wᵀ with W stored
// [out][in], on its own pool of goroutines, so that benchmarks outside the
// package (scripts/bench/native) can time the very kernels a forward step
// uses against other libraries on the same shapes.
type Matmul struct{ p *pool }

// NewMatmul starts a pool of threads goroutines (0 = GOMAXPROCS).
func NewMatmul(threads int) *Matmul { return &Matmul{newPool(threads)} }

// Do sets y[r*out+o] = Σ_i x[r*in+i]·w[o*in+i] for r < rows, o < out.
func (m *Matmul) Do(y, x, w []float32, rows, in, out int) {
	m.p.matmul(y[:rows*out], x[:rows*in], w[:out*in], rows, in, out)
}

// Close stops the goroutines.
func (m *Matmul) Close() { m.p.close() }

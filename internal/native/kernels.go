package native

import (
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// The matrix products are y[r][o] = Σ_i x[r][i]·w[o][i], with w stored
// [out][in]. Work is cut into fixed units — a block of rowBlock activation
// rows × a tile of outTile weight rows — whose boundaries do not depend on
// the thread count. Each unit is computed whole by one goroutine, and each
// output element is one dot product of two contiguous rows in a fixed order,
// so the result is bit for bit the same whatever the number of threads.
//
// Two kernels compute the dot products. Where the CPU has AVX2 and FMA
// (checked at start-up), hand-written assembly kernels (dot_amd64.s) take
// three weight rows against two activation rows, or four against one, with
// 8-lane fused multiply-adds. Elsewhere (or built with -tags purego), gonum's blas/gonum
// Sgemv does it, whose inner loop is gonum's SSE DotUnitary. Both beat
// gonum's own Sgemm on these shapes — its 64×64 k-blocking re-reads and
// re-writes C for every block of k — see docs/native.md for the figures. The
// two kernels round differently, so a machine's results are reproducible on
// that kind of machine, not across AVX2 and non-AVX2 ones.
const (
	rowBlock = 32 // activation rows per unit: 32×hidden floats stay in L1/L2
	outTile  = 64 // weight rows per unit: 64×in floats (96–256 KiB) stay in L2
)

// useAVX2 selects the AVX2+FMA kernel where the CPU has it; tests and
// benchmarks turn it off to compare with the gonum path.
var useAVX2 = hasAVX2

// pairKernel sends pairs of activation rows through dot3x2AVX2; off, every
// row goes through dot4AVX2 (same bits, for benchmarks).
var pairKernel = true

// pool runs units of work over a fixed set of goroutines, started once, so
// that a forward step spawns nothing and allocates nothing: a job is a
// pointer to a preallocated struct, handed to each worker over its channel.
type pool struct {
	threads int
	start   []chan job
	wg      sync.WaitGroup
	n, t    int
	mm      matmulJob
}

type job interface{ do(worker, lo, hi int) }

func newPool(threads int) *pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &pool{threads: threads, start: make([]chan job, threads)}
	for w := 1; w < threads; w++ {
		ch := make(chan job)
		p.start[w] = ch
		go func() {
			for j := range ch {
				j.do(w, w*p.n/p.t, (w+1)*p.n/p.t)
				p.wg.Done()
			}
		}()
	}
	return p
}

// close stops the workers.
func (p *pool) close() {
	for _, ch := range p.start[1:] {
		close(ch)
	}
	p.start = p.start[:1]
}

// run calls j.do(worker, lo, hi) over [0, n) cut into at most p.threads
// contiguous chunks; worker indexes per-goroutine scratch space.
func (p *pool) run(n int, j job) {
	t := min(p.threads, n, len(p.start))
	if t <= 1 {
		if n > 0 {
			j.do(0, 0, n)
		}
		return
	}
	p.n, p.t = n, t // published to the workers by the channel sends
	p.wg.Add(t - 1)
	for w := 1; w < t; w++ {
		p.start[w] <- j
	}
	j.do(0, 0, n/t)
	p.wg.Wait()
}

type matmulJob struct {
	y, x, w       []float32
	rows, in, out int
	nr            int
	avx2          bool
}

// matmul sets y[r*out+o] = dot(x[r*in:], w[o*in:]) for r < rows, o < out.
func (p *pool) matmul(y, x, w []float32, rows, in, out int) {
	nr := (rows + rowBlock - 1) / rowBlock
	nt := (out + outTile - 1) / outTile
	p.mm = matmulJob{y: y, x: x, w: w, rows: rows, in: in, out: out, nr: nr, avx2: useAVX2}
	p.run(nr*nt, &p.mm)
}

func (m *matmulJob) do(_, lo, hi int) {
	if m.avx2 {
		m.doAVX2(lo, hi)
		return
	}
	impl := gonum.Implementation{}
	in, out, nr := m.in, m.out, m.nr
	for u := lo; u < hi; u++ {
		// Units run tile-major so that a goroutine's consecutive units share
		// the weight tile, which is the larger operand.
		t, rb := u/nr, u%nr
		o0, o1 := t*outTile, min((t+1)*outTile, out)
		r0, r1 := rb*rowBlock, min((rb+1)*rowBlock, m.rows)
		wt := m.w[o0*in : o1*in]
		for r := r0; r < r1; r++ {
			impl.Sgemv(blas.NoTrans, o1-o0, in, 1, wt, in, m.x[r*in:(r+1)*in], 1, 0, m.y[r*out+o0:r*out+o1], 1)
		}
	}
}

// doAVX2 computes units with the AVX2+FMA kernels. Activation rows go in
// pairs through dot3x2AVX2 (three weight rows at a time, each weight chunk
// loaded once for both rows); a row left over goes through dot4AVX2. Both
// kernels do the same arithmetic per element, and the tail of k beyond the
// last multiple of 16 is added in Go, in order; weight rows beyond the last
// full group run the kernel with stride 0. So each element has one fixed
// sequence of operations whatever rows, threads or batch surround it.
func (m *matmulJob) doAVX2(lo, hi int) {
	in, out, nr := m.in, m.out, m.nr
	n16 := in &^ 15
	var acc [4]float32
	var acc6 [6]float32
	tail := func(s float32, x, w []float32) float32 {
		for k := n16; k < len(x); k++ {
			s += x[k] * w[k]
		}
		return s
	}
	for u := lo; u < hi; u++ {
		t, rb := u/nr, u%nr
		o0, o1 := t*outTile, min((t+1)*outTile, out)
		r0, r1 := rb*rowBlock, min((rb+1)*rowBlock, m.rows)
		pairsEnd := r0
		if pairKernel {
			pairsEnd = r0 + (r1-r0)&^1
		}
		for o := o0; o < o1; o += 3 {
			nrow, stride := min(3, o1-o), in
			if nrow < 3 {
				stride = 0
			}
			for r := r0; r < pairsEnd; r += 2 {
				x0, x1 := m.x[r*in:(r+1)*in], m.x[(r+1)*in:(r+2)*in]
				for i := range nrow {
					wi := m.w[(o+i)*in : (o+i+1)*in]
					j := i
					if stride == 0 {
						j = 0
					}
					if i == 0 || stride == 0 {
						if n16 > 0 {
							dot3x2AVX2(&x0[0], &x1[0], &wi[0], stride, n16, &acc6)
						} else {
							acc6 = [6]float32{}
						}
					}
					m.y[r*out+o+i] = tail(acc6[j], x0, wi)
					m.y[(r+1)*out+o+i] = tail(acc6[3+j], x1, wi)
				}
			}
		}
		for r := pairsEnd; r < r1; r++ { // the odd row left (all rows without pairKernel)
			x := m.x[r*in : (r+1)*in]
			for o := o0; o < o1; o += 4 {
				nrow, stride := min(4, o1-o), in
				if nrow < 4 {
					stride = 0
				}
				for i := range nrow {
					wi := m.w[(o+i)*in : (o+i+1)*in]
					j := i
					if stride == 0 {
						j = 0
					}
					if i == 0 || stride == 0 {
						if n16 > 0 {
							dot4AVX2(&x[0], &wi[0], stride, n16, &acc)
						} else {
							acc = [4]float32{}
						}
					}
					m.y[r*out+o+i] = tail(acc[j], x, wi)
				}
			}
		}
	}
}

// rmsnorm sets y = x / sqrt(mean(x²) + eps) ⊙ g for each row of x.
// The sum of squares is accumulated in float64: it costs nothing next to
// the matrix products and keeps long rows exact enough.
func rmsnorm(y, x, g []float32, rows, n int, eps float64) {
	for r := 0; r < rows; r++ {
		xr, yr := x[r*n:(r+1)*n], y[r*n:(r+1)*n]
		var ss float64
		for _, v := range xr {
			ss += float64(v) * float64(v)
		}
		s := float32(1 / math.Sqrt(ss/float64(n)+eps))
		for i, v := range xr {
			yr[i] = v * s * g[i]
		}
	}
}

// ropeTable returns cos and sin of pos·θ^(−2i/d) for pos < maxSeq, i < d/2,
// the frequencies rescaled by sc where it is not nil.
func ropeTable(maxSeq, d int, theta float64, sc *RopeScaling) (cos, sin []float32) {
	half := d / 2
	cos, sin = make([]float32, maxSeq*half), make([]float32, maxSeq*half)
	for i := 0; i < half; i++ {
		freq := sc.scale(math.Pow(theta, -2*float64(i)/float64(d)))
		for p := 0; p < maxSeq; p++ {
			a := float64(p) * freq
			cos[p*half+i], sin[p*half+i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	return cos, sin
}

// scale applies Llama 3.1's frequency rescaling to one rotary frequency:
// long wavelengths (low frequencies) are stretched by Factor, short ones
// kept, and those between interpolated linearly in OrigMaxPos/wavelength.
func (sc *RopeScaling) scale(freq float64) float64 {
	if sc == nil {
		return freq
	}
	wavelen := 2 * math.Pi / freq
	switch {
	case wavelen < sc.OrigMaxPos/sc.HighFreqFactor:
		return freq
	case wavelen > sc.OrigMaxPos/sc.LowFreqFactor:
		return freq / sc.Factor
	}
	smooth := (sc.OrigMaxPos/wavelen - sc.LowFreqFactor) / (sc.HighFreqFactor - sc.LowFreqFactor)
	return (1-smooth)*freq/sc.Factor + smooth*freq
}

// addBias adds b to each of the rows of y (rows × len(b)).
func addBias(y, b []float32, rows int) {
	for r := 0; r < rows; r++ {
		add(y[r*len(b):(r+1)*len(b)], b)
	}
}

// rope rotates each head of one row in place, Llama/Hugging Face layout
// ("rotate half": element i pairs with element i+d/2).
func rope(v []float32, heads, d int, cos, sin []float32) {
	half := d / 2
	c, s := cos[:half], sin[:half]
	for h := 0; h < heads; h++ {
		x := v[h*d : (h+1)*d]
		x1, x2 := x[:half], x[half:]
		for i := range half {
			a, b := x1[i], x2[i]
			x1[i] = a*c[i] - b*s[i]
			x2[i] = b*c[i] + a*s[i]
		}
	}
}

// swiglu sets g = silu(g) ⊙ u.
func swiglu(g, u []float32) {
	u = u[:len(g)]
	for i, v := range g {
		g[i] = v / (1 + expf(-v)) * u[i]
	}
}

// attendOne computes one head of one query row: softmax(q·Kᵀ/√d)·V over the
// first n cached positions. k and v hold n rows of stride kvStride starting at
// the head's offset. scores has room for n floats. With AVX2 (and d a
// multiple of 16) the scores are the matmul kernel's dot products, four keys
// at a time, and the weighted sum of values is fused multiply-adds.
func attendOne(out, q, k, v []float32, n, d, kvStride int, scores []float32) {
	scale := float32(1 / math.Sqrt(float64(d)))
	q = q[:d]
	avx := useAVX2 && d%16 == 0
	if avx {
		var acc [4]float32
		j := 0
		for ; j+4 <= n; j += 4 {
			dot4AVX2(&q[0], &k[j*kvStride], kvStride, d, &acc)
			scores[j], scores[j+1], scores[j+2], scores[j+3] = acc[0], acc[1], acc[2], acc[3]
		}
		for ; j < n; j++ {
			dot4AVX2(&q[0], &k[j*kvStride], 0, d, &acc)
			scores[j] = acc[0]
		}
	} else {
		for j := 0; j < n; j++ {
			kj := k[j*kvStride : j*kvStride+d]
			var s float32
			for i, qi := range q {
				s += qi * kj[i]
			}
			scores[j] = s
		}
	}
	mx := float32(math.Inf(-1))
	for j := 0; j < n; j++ {
		scores[j] *= scale
		mx = max(mx, scores[j])
	}
	var sum float64
	for j := 0; j < n; j++ {
		e := expf(scores[j] - mx)
		scores[j] = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	out = out[:d]
	clear(out)
	for j := 0; j < n; j++ {
		p := scores[j] * inv
		vj := v[j*kvStride : j*kvStride+d]
		if avx {
			axpyAVX2(p, &vj[0], &out[0], d)
			continue
		}
		for i := range out {
			out[i] += p * vj[i]
		}
	}
}

// expf is e^x in float32 (Cephes' expf: range reduction by ln 2 in two
// parts, a degree-6 polynomial; within 2 ulp of the rounded result over the
// range used here). It is 3–4× math.Exp, which made the SiLU and the
// softmax a quarter of a prefill's time.
func expf(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72283:
		return float32(math.Inf(1))
	case x < -87.33654: // below the smallest normal float32
		return 0
	}
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	fn := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - fn*c1 - fn*c2
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	n := int32(fn)
	if n > 127 { // 2^n overflows float32 though p·2^n may not: scale in two steps
		return p * 2 * math.Float32frombits(uint32(n-1+127)<<23)
	}
	return p * math.Float32frombits(uint32(n+127)<<23)
}

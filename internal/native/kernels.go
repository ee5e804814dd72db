package native

import (
	"math"
	"runtime"
	"sync"
)

// pool runs units of work over a fixed set of goroutines, started once, so
// that a forward step spawns nothing and allocates nothing: a job is a
// pointer to a preallocated struct, handed to each worker over its channel.
type pool struct {
	threads int
	minFMAs int // the least work a goroutine is handed (minThreadFMAs; tests lower it)
	start   []chan job
	wg      sync.WaitGroup
	n, t    int
	mm      gemmJob
	tiles   [][]float32 // per worker: one unit's tile of C
	apack   []float32   // the activations packed for the product in flight
}

type job interface{ do(worker, lo, hi int) }

func newPool(threads int) *pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &pool{threads: threads, minFMAs: minThreadFMAs, start: make([]chan job, threads), tiles: make([][]float32, threads)}
	for w := range p.tiles {
		p.tiles[w] = make([]float32, maxRowBlock*groupPanels*panelWidth)
	}
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

// minThreadFMAs is the least work (multiply-adds) worth handing to another
// goroutine: a hand-off costs microseconds (a channel send, a wake-up, the
// WaitGroup), about what a core does in a million multiply-adds, and on a
// busy machine the woken goroutine may wait for a core far longer. A small
// model's decode step is dozens of products of a few ten thousand
// multiply-adds each; split, they cost more CPU time than they save.
const minThreadFMAs = 1 << 20

// run calls j.do(worker, lo, hi) over [0, n) cut into at most p.threads
// contiguous chunks; worker indexes per-goroutine scratch space.
func (p *pool) run(n int, j job) { p.runWork(n, math.MaxInt, j) }

// threadsFor is how many goroutines a job of fmas multiply-adds gets.
func (p *pool) threadsFor(fmas int) int {
	return min(p.threads, len(p.start), max(1, fmas/p.minFMAs))
}

// runWork is run for a job of about fmas multiply-adds: it uses no more
// goroutines than give each p.minFMAs. How the work is cut never
// changes a result (units split rows and outputs, never a sum).
func (p *pool) runWork(n, fmas int, j job) {
	t := min(n, p.threadsFor(fmas))
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
	avx := hasAVX2 && d%16 == 0
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

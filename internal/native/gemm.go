package native

//go:generate go run ./gengemm

// The matrix products are y[r][o] = Σ_k x[r][k]·w[o][k], with w stored
// [out][in]. They are computed as outer products by register-blocked
// micro-kernels (gemm_amd64.s, written by gengemm): a tile of mr activation
// rows × np 16-wide panels of outputs lives in vector registers while k runs,
// each step broadcasting one activation per row and multiplying it with the
// panels' weights. For that the weights are packed once, when an engine is
// made, into k-major panels (packWeights), and the activations per product
// into k-major panels of mr rows (packRows).
//
// Every output element is one chain of fused multiply-adds in k order,
// c = fma(x[k], w[k], c), whatever tile, kernel, vector width or thread
// computes it, and k is never split between threads (work is cut over rows
// and outputs only). So a product gives the same bits on any number of
// threads, and a row gives the same bits whatever rows share its product
// (decode alone or in a batch, prefill whole or in chunks). Where the CPU has
// neither AVX-512 nor AVX2+FMA (or built with -tags purego), gemmGo does the
// same loops in Go, whose rounding (separate multiply and add on amd64) is
// its own: results are reproducible on one kind of machine, not across kinds.

const (
	panelWidth  = 16 // outputs per packed panel: one AVX-512 or two AVX2 registers
	groupPanels = 8  // panels per packing group: a group's k-row is 512 contiguous bytes
	maxMR       = 12 // the most rows a kernel takes
	maxRowBlock = 4 * maxMR
	// kBlock is the length of k one kernel call runs before the next panel
	// of outputs: a 2-panel strip of weights of kBlock k-rows is 32 KiB and
	// stays in L1 while every row panel of the unit passes over it. Splitting
	// k this way reloads the accumulators from C between blocks, which does
	// not change the chain of operations (nor the bits).
	kBlock = 256
)

// gemmKernel computes an mr × (np·16) tile of C, c[i·ldc+j] (+)= Σ_{k'<k}
// a[k'·mr+i]·b[k'·bstride+j], starting from C where load is non-zero, from
// zero otherwise (mr and np are the kernel's).
type gemmKernel func(a, b *float32, bstride, k int, c *float32, ldc, load int)

// kernelTable holds the kernels of one instruction set by [mr][np];
// shapes that do not fit the registers are nil.
type kernelTable [maxMR + 1][groupPanels + 1]gemmKernel

// kernelSet is the micro-kernels in use and the row-panel height they are
// fastest at. A nil table means the portable Go loops.
type kernelSet struct {
	name string
	t    *kernelTable
	mr   int
}

var (
	setAVX512 = kernelSet{"avx512", &kernelsAVX512, 12}
	setAVX2   = kernelSet{"avx2", &kernelsAVX2, 6}
	setGo     = kernelSet{"go", nil, 4}
)

// availableKernels lists the kernel sets this CPU can run, fastest first.
func availableKernels() []kernelSet {
	var s []kernelSet
	if hasAVX512 {
		s = append(s, setAVX512)
	}
	if hasAVX2 {
		s = append(s, setAVX2)
	}
	return append(s, setGo)
}

// kernels is the set the products use; tests and benchmarks switch it.
var kernels = availableKernels()[0]

// packedW is a weight matrix [out][in] packed for the kernels: outputs in
// groups of groupPanels·panelWidth (the last group narrower, rounded up to a
// whole panel and padded with zeros), each group k-major, so that the weights
// of a group for one k are contiguous: data[g·128·in + k·gw + j] = w[g·128+j][k]
// where gw is the group's width.
type packedW struct {
	data    []float32
	in, out int
}

func packWeights(w []float32, in, out int) *packedW {
	gw0 := groupPanels * panelWidth
	p := &packedW{data: make([]float32, roundUp(out, panelWidth)*in), in: in, out: out}
	for g0 := 0; g0 < out; g0 += gw0 {
		n := min(gw0, out-g0)
		gw := roundUp(n, panelWidth)
		dst := p.data[g0*in:]
		for j := range n {
			row := w[(g0+j)*in : (g0+j+1)*in]
			for k, v := range row {
				dst[k*gw+j] = v
			}
		}
	}
	return p
}

// group returns the packed weights of the group holding panel pn, the
// group's width and the panel's offset inside it.
func (p *packedW) group(pn int) (data []float32, gw, off int) {
	g := pn / groupPanels
	g0 := g * groupPanels * panelWidth
	gw = roundUp(min(groupPanels*panelWidth, p.out-g0), panelWidth)
	return p.data[g0*p.in:], gw, (pn - g*groupPanels) * panelWidth
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

// packRows copies x (rows × in) into dst as panels of mr rows (the last
// panel may be shorter), each k-major: the panel starting at row r0 holds
// x[r0+i][k] at dst[r0·in + k·h + i], h the panel's height.
func packRows(dst, x []float32, rows, in, mr int) {
	for r0 := 0; r0 < rows; r0 += mr {
		h := min(mr, rows-r0)
		d := dst[r0*in : (r0+h)*in]
		for i := range h {
			for k, v := range x[(r0+i)*in : (r0+i+1)*in] {
				d[k*h+i] = v
			}
		}
	}
}

// gemmJob is one product, cut into units of rb rows × up panels of outputs.
// Units are numbered panel-major, so that a thread's contiguous range of
// units shares the weights, the larger operand.
type gemmJob struct {
	y, a  []float32 // y: rows × out; a: the activations packed by packRows
	w     *packedW
	rows  int
	ks    kernelSet
	mr    int // row-panel height
	np    int // panels per kernel call
	rb    int // rows per unit, a multiple of mr
	up    int // panels per unit, a divisor of groupPanels
	nrb   int // units along the rows
	tiles [][]float32
}

// matmul sets y[r*out+o] = Σ_k x[r*in+k]·w[o][k] for r < rows, o < out.
func (p *pool) matmul(y, x []float32, w *packedW, rows int) {
	in, out := w.in, w.out
	if rows == 0 {
		return
	}
	ks := kernels
	mr := min(ks.mr, rows)
	a := x[:rows*in]
	if mr > 1 { // one row is its own packing
		if len(p.apack) < rows*in {
			p.apack = make([]float32, rows*in)
		}
		a = p.apack[:rows*in]
		packRows(a, x, rows, in, mr)
	}
	rb := min(roundUp(rows, mr), maxRowBlock/mr*mr)
	nrb := (rows + rb - 1) / rb
	panels := (out + panelWidth - 1) / panelWidth
	np := ks.widest(mr)
	up := unitPanels(panels, nrb, p.threadsFor(rows*in*out))
	p.mm = gemmJob{y: y[:rows*out], a: a, w: w, rows: rows, ks: ks, mr: mr, np: min(np, up),
		rb: rb, up: up, nrb: nrb, tiles: p.tiles}
	p.runWork(nrb*((panels+up-1)/up), rows*in*out, &p.mm)
}

// widest is the most panels a kernel of mr rows takes.
func (ks kernelSet) widest(mr int) int {
	if ks.t == nil {
		return 2
	}
	for np := groupPanels; np > 1; np /= 2 {
		if ks.t[mr][np] != nil {
			return np
		}
	}
	return 1
}

// unitPanels picks the panels per unit: whole groups on one thread;
// with more threads the width, of 8, 4, 2 or 1 panels, that leaves the
// busiest thread the least work, the wider on a tie.
func unitPanels(panels, nrb, threads int) int {
	if threads <= 1 {
		return groupPanels
	}
	best, cost := groupPanels, int(^uint(0)>>1)
	for up := groupPanels; up >= 1; up /= 2 {
		units := nrb * ((panels + up - 1) / up)
		if c := (units + threads - 1) / threads * min(up, panels); c < cost {
			best, cost = up, c
		}
	}
	return best
}

func (j *gemmJob) do(worker, lo, hi int) {
	tile, in, out := j.tiles[worker], j.w.in, j.w.out
	panels := (out + panelWidth - 1) / panelWidth
	for u := lo; u < hi; u++ {
		p0, r0 := u/j.nrb*j.up, u%j.nrb*j.rb
		p1, r1 := min(p0+j.up, panels), min(r0+j.rb, j.rows)
		ldc := (p1 - p0) * panelWidth
		for kb := 0; kb < in; kb += kBlock {
			kl := min(kBlock, in-kb)
			for p := p0; p < p1; p += j.np {
				data, gw, off := j.w.group(p)
				b := data[kb*gw+off:]
				for r := r0; r < r1; r += j.mr {
					h := min(j.mr, r1-r)
					j.ks.tile(h, min(j.np, p1-p), j.a[r*in+kb*h:], b, gw, kl,
						tile[(r-r0)*ldc+(p-p0)*panelWidth:], ldc, kb > 0)
				}
			}
		}
		o0, o1 := p0*panelWidth, min(p1*panelWidth, out)
		for r := r0; r < r1; r++ {
			t := tile[(r-r0)*ldc:]
			copy(j.y[r*out+o0:r*out+o1], t[:o1-o0])
		}
	}
}

// tile computes an h × (np·16) tile with the widest kernels that fit,
// after checking that the kernels stay inside the slices.
func (ks kernelSet) tile(h, np int, a, b []float32, bstride, k int, c []float32, ldc int, load bool) {
	_, _ = a[k*h-1], b[(k-1)*bstride+np*panelWidth-1]
	_ = c[(h-1)*ldc+np*panelWidth-1]
	if ks.t == nil {
		gemmGo(h, np, a, b, bstride, k, c, ldc, load)
		return
	}
	ld := 0
	if load {
		ld = 1
	}
	for np > 0 {
		q := groupPanels
		for q > np || ks.t[h][q] == nil {
			q /= 2
		}
		ks.t[h][q](&a[0], &b[0], bstride, k, &c[0], ldc, ld)
		b, c, np = b[q*panelWidth:], c[q*panelWidth:], np-q
	}
}

// gemmGo is the kernels' arithmetic in Go, for CPUs without them: eight
// outputs at a time in local accumulators (registers), k in order.
func gemmGo(h, np int, a, b []float32, bstride, k int, c []float32, ldc int, load bool) {
	for i := range h {
		for j := 0; j < np*panelWidth; j += 8 {
			ci := c[i*ldc+j : i*ldc+j+8]
			var s0, s1, s2, s3, s4, s5, s6, s7 float32
			if load {
				s0, s1, s2, s3, s4, s5, s6, s7 = ci[0], ci[1], ci[2], ci[3], ci[4], ci[5], ci[6], ci[7]
			}
			for kk := range k {
				av, bk := a[kk*h+i], b[kk*bstride+j:kk*bstride+j+8]
				s0 += av * bk[0]
				s1 += av * bk[1]
				s2 += av * bk[2]
				s3 += av * bk[3]
				s4 += av * bk[4]
				s5 += av * bk[5]
				s6 += av * bk[6]
				s7 += av * bk[7]
			}
			ci[0], ci[1], ci[2], ci[3], ci[4], ci[5], ci[6], ci[7] = s0, s1, s2, s3, s4, s5, s6, s7
		}
	}
}

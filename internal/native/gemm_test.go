package native

import (
	"bytes"
	"fmt"
	"go/build"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// fmaf32 is a·b+c rounded once to float32, the product of a float32 fused
// multiply-add. a·b is exact in float64; TwoSum gives the float64 sum s and
// its exact error e; nudging s to the odd neighbour when e ≠ 0 rounds to odd,
// after which the rounding to float32 is correct (53 ≥ 24+2 bits).
func fmaf32(a, b, c float32) float32 {
	r, cc := float64(a)*float64(b), float64(c)
	s := r + cc
	bb := s - r
	e := (r - (s - bb)) + (cc - bb)
	if e != 0 && math.Float64bits(s)&1 == 0 {
		s = math.Nextafter(s, math.Copysign(math.Inf(1), e))
	}
	return float32(s)
}

// chainRef is the product every assembly kernel must give bit for bit: each
// element one fused multiply-add chain in k order.
func chainRef(x, w []float32, rows, in, out int) []float32 {
	y := make([]float32, rows*out)
	for r := range rows {
		for o := range out {
			var c float32
			for k := range in {
				c = fmaf32(x[r*in+k], w[o*in+k], c)
			}
			y[r*out+o] = c
		}
	}
	return y
}

func f64Ref(x, w []float32, rows, in, out int) []float64 {
	y := make([]float64, rows*out)
	for r := range rows {
		for o := range out {
			var s float64
			for k := range in {
				s += float64(x[r*in+k]) * float64(w[o*in+k])
			}
			y[r*out+o] = s
		}
	}
	return y
}

func TestFMAf32(t *testing.T) {
	// 1 + 2⁻²⁴ is a tie between 1 and 1+2⁻²³: a float64 sum rounded twice
	// lands on it exactly; the tiny third term must break the tie upwards.
	a, b := float32(1+1.0/(1<<12)), float32(1+1.0/(1<<12)) // a·b = 1 + 2⁻¹¹ + 2⁻²⁴
	c := float32(-1.0 / (1 << 11))
	if got, want := fmaf32(a, b, c), float32(1); got != want {
		t.Fatalf("fmaf32 tie: %v, want %v", got, want)
	}
	if got := fmaf32(3, 5, 7); got != 22 {
		t.Fatalf("fmaf32(3,5,7) = %v", got)
	}
}

// gemmShapes are ragged against every blocking: rows against the row panels
// (12, 6, 4) and blocks (48), outputs against panels (16) and groups (128),
// k against kBlock (256), plus the presets' shapes.
var gemmShapes = [][3]int{
	{1, 1, 1}, {1, 5, 3}, {2, 16, 16}, {3, 17, 33}, {5, 45, 130}, {7, 64, 127},
	{11, 33, 129}, {12, 128, 128}, {13, 257, 50}, {25, 300, 200}, {49, 31, 17},
	{61, 513, 145}, {70, 384, 130}, {1, 1024, 384}, {8, 384, 1024}, {97, 96, 272},
}

// TestGemmVsReference: every kernel set against float64 sums; the
// assembly kernels against the fma-chain reference bit for bit (so AVX2
// and AVX-512 agree too); all of them bit-identical over 1–4 threads; x and
// y at odd offsets into their arrays.
func TestGemmVsReference(t *testing.T) {
	defer func(k kernelSet) { kernels = k }(kernels)
	r := rand.New(rand.NewPCG(7, 7))
	for _, sh := range gemmShapes {
		rows, in, out := sh[0], sh[1], sh[2]
		xa, w := randVec(r, rows*in+1), randVec(r, out*in)
		x := xa[1:]
		want, chain := f64Ref(x, w, rows, in, out), chainRef(x, w, rows, in, out)
		pw := packWeights(w, in, out)
		for _, ks := range availableKernels() {
			kernels = ks
			for th := 1; th <= 4; th++ {
				name := fmt.Sprintf("%s/%dx%dx%d/threads %d", ks.name, rows, in, out, th)
				p := newPool(th)
				p.minFMAs = 1 // split even the small shapes
				ya := make([]float32, rows*out+3)
				y := ya[3:]
				p.matmul(y, x, pw, rows)
				p.close()
				near(t, name, y, want, 1e-4*math.Sqrt(float64(in)))
				if ks.t == nil {
					continue
				}
				for i := range y {
					if math.Float32bits(y[i]) != math.Float32bits(chain[i]) {
						t.Fatalf("%s: y[%d] = %v, the fma chain gives %v", name, i, y[i], chain[i])
					}
				}
			}
		}
	}
}

// TestGemmFuzzSizes: random sizes up to a few panels and blocks, every
// kernel set, against the fma chain (assembly) or float64 (Go).
func TestGemmFuzzSizes(t *testing.T) {
	defer func(k kernelSet) { kernels = k }(kernels)
	r := rand.New(rand.NewPCG(11, 13))
	n := 60
	if testing.Short() {
		n = 20
	}
	for range n {
		rows, in, out := 1+r.IntN(60), 1+r.IntN(300), 1+r.IntN(300)
		x, w := randVec(r, rows*in), randVec(r, out*in)
		pw := packWeights(w, in, out)
		want, chain := f64Ref(x, w, rows, in, out), chainRef(x, w, rows, in, out)
		for _, ks := range availableKernels() {
			kernels = ks
			p := newPool(1 + r.IntN(3))
			p.minFMAs = 1
			y := make([]float32, rows*out)
			p.matmul(y, x, pw, rows)
			p.close()
			name := fmt.Sprintf("%s/%dx%dx%d", ks.name, rows, in, out)
			near(t, name, y, want, 1e-4*math.Sqrt(float64(in)))
			if ks.t != nil && !bitsEqual(y, chain) {
				t.Fatalf("%s: differs from the fma chain", name)
			}
		}
	}
}

// TestGemmRowsIndependent: a row's result does not depend on the rows
// computed with it (decode alone or in a batch, in any row panel).
func TestGemmRowsIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	const in, out = 300, 150
	x, w := randVec(r, 40*in), randVec(r, out*in)
	pw := packWeights(w, in, out)
	p := newPool(2)
	p.minFMAs = 1
	defer p.close()
	all := make([]float32, 40*out)
	p.matmul(all, x, pw, 40)
	for _, rows := range []int{1, 2, 7, 13} {
		for r0 := 0; r0+rows <= 40; r0 += 9 {
			y := make([]float32, rows*out)
			p.matmul(y, x[r0*in:], pw, rows)
			if !bitsEqual(y, all[r0*out:(r0+rows)*out]) {
				t.Fatalf("rows %d..%d alone differ from the same rows among 40", r0, r0+rows)
			}
		}
	}
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestPackWeights(t *testing.T) {
	const in, out = 3, 150 // a full group of 128 and one of 22 outputs, padded to 32
	w := make([]float32, out*in)
	for i := range w {
		w[i] = float32(i + 1)
	}
	p := packWeights(w, in, out)
	if len(p.data) != 160*in {
		t.Fatalf("packed %d floats, want %d", len(p.data), 160*in)
	}
	for o := range out {
		data, gw, off := p.group(o / panelWidth)
		for k := range in {
			if got := data[k*gw+off+o%panelWidth]; got != w[o*in+k] {
				t.Fatalf("w[%d][%d]: packed %v, want %v", o, k, got, w[o*in+k])
			}
		}
	}
	if data, gw, _ := p.group(8); gw != 32 || data[22] != 0 || data[gw+31] != 0 {
		t.Fatalf("last group: width %d, padding %v %v", gw, data[22], data[gw+31])
	}
}

// TestGeneratedKernelsUpToDate: gemm_amd64.s and gemm_amd64.go are what
// gengemm writes now (run go generate ./internal/native after changing it).
func TestGeneratedKernelsUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the generator")
	}
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(build.Default.GOROOT, "bin", "go"), "run", "./gengemm", "-dir", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./gengemm: %v\n%s", err, out)
	}
	for _, f := range []string{"gemm_amd64.s", "gemm_amd64.go"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from gengemm's output: run go generate ./internal/native", f)
		}
	}
}

// A product too small to be worth a hand-off stays on one goroutine; a
// large one gets every thread, one per minThreadFMAs of work at most.
func TestThreadsForWork(t *testing.T) {
	p := newPool(4)
	defer p.close()
	for _, c := range []struct{ fmas, want int }{
		{128 * 128, 1}, {minThreadFMAs - 1, 1}, {2 * minThreadFMAs, 2}, {3*minThreadFMAs + 5, 3}, {64 * 384 * 1024, 4},
	} {
		if got := p.threadsFor(c.fmas); got != c.want {
			t.Errorf("threadsFor(%d) = %d, want %d", c.fmas, got, c.want)
		}
	}
}

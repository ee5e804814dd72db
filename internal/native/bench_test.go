package native

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/llem/llem/internal/native/preset"
)

// Benchmarks: see docs/native.md for the commands and the figures measured.
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/native/
//
// Every benchmark reports GFLOP/s of matrix-product (and, for the model
// steps, attention) arithmetic, so the kernels can be compared with gonum's
// pure-Go BLAS on the same shapes. The model steps also report
// best-tokens/s, from the fastest single step: on a shared machine the mean
// measures the neighbours as much as the engine.

func presetArch(b *testing.B, name string) Arch {
	a, ok := preset.Lookup(name)
	if !ok {
		b.Fatalf("no preset %s", name)
	}
	return a
}

// BenchmarkMatmul times the engine's product, with each kernel set this
// CPU has, against gonum's Sgemm on the largest products of each preset (the
// FFN's gate/up: [rows × hidden] · [ffn × hidden]ᵀ, down: [rows × ffn] ·
// [hidden × ffn]ᵀ, and the LM head) at 1, 8, 256 and 1024 rows (decode at
// batch 1 and 8, a prefill of one and of eight 128-token prompts), and a
// 1024³ product. Run with -cpu 1,2 to give both the same cores: gonum
// spreads Sgemm over GOMAXPROCS goroutines, the engine over its threads,
// which this benchmark sets to GOMAXPROCS. Sgemm is timed only with
// -bench-gonum (it takes seconds per large shape).
func BenchmarkMatmul(b *testing.B) {
	type shape struct {
		name          string
		rows, in, out int
	}
	var shapes []shape
	for _, name := range []string{"llem-tiny", "llem-small"} {
		a := presetArch(b, name)
		for _, rows := range []int{1, 8, 256, 1024} {
			shapes = append(shapes,
				shape{name + "/gate", rows, a.HiddenSize, a.FFNSize},
				shape{name + "/down", rows, a.FFNSize, a.HiddenSize},
				shape{name + "/lmhead", rows, a.HiddenSize, a.VocabSize})
		}
	}
	shapes = append(shapes, shape{"square", 1024, 1024, 1024})
	for _, sh := range shapes {
		r := rand.New(rand.NewPCG(1, 2))
		x, w, y := randVec(r, sh.rows*sh.in), randVec(r, sh.out*sh.in), make([]float32, sh.rows*sh.out)
		pw := packWeights(w, sh.in, sh.out)
		flops := 2 * float64(sh.rows*sh.in*sh.out)
		dims := fmt.Sprintf("%s/%dx%dx%d", sh.name, sh.rows, sh.in, sh.out)
		for _, ks := range availableKernels() {
			b.Run("engine-"+ks.name+"/"+dims, func(b *testing.B) {
				defer func(k kernelSet) { kernels = k }(kernels)
				kernels = ks
				p := newPool(runtime.GOMAXPROCS(0))
				defer p.close()
				timeFLOPs(b, flops, func() { p.matmul(y, x, pw, sh.rows) })
			})
		}
		if !*benchGonum {
			continue
		}
		b.Run("gonum-sgemm/"+dims, func(b *testing.B) {
			impl := gonum.Implementation{}
			for b.Loop() {
				impl.Sgemm(blas.NoTrans, blas.Trans, sh.rows, sh.out, sh.in, 1, x, sh.in, w, sh.in, 0, y, sh.out)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// timeFLOPs runs f under b.Loop and reports GFLOP/s over the mean and over
// the fastest call (best-GFLOP/s): on a shared machine the mean measures the
// neighbours as much as the kernel.
func timeFLOPs(b *testing.B, flops float64, f func()) {
	best := math.Inf(1)
	for b.Loop() {
		t0 := time.Now()
		f()
		best = min(best, time.Since(t0).Seconds())
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	b.ReportMetric(flops/best/1e9, "best-GFLOP/s")
}

// BenchmarkPeak measures what one core can do: register-only fused
// multiply-adds at each vector width this CPU has (GFLOP/s, the arithmetic
// peak the products are compared with) and a chain of dependent integer
// additions, one per cycle, whose rate is the clock the core really runs at
// (GHz; inside a VM /proc/cpuinfo shows only the nominal one). Run with
// -cpu 1: one goroutine.
func BenchmarkPeak(b *testing.B) {
	if !hasAVX2 {
		b.Skip("no AVX2+FMA on this CPU")
	}
	const n = 1 << 16
	b.Run("clock", func(b *testing.B) {
		best := math.Inf(1)
		for b.Loop() {
			t0 := time.Now()
			addChain(n)
			best = min(best, time.Since(t0).Seconds())
		}
		b.ReportMetric(8*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GHz")
		b.ReportMetric(8*n/best/1e9, "best-GHz")
	})
	peaks := []struct {
		name  string
		lanes int
		f     func(int)
		ok    bool
	}{{"fma-avx2", 8, fmaPeakAVX2, hasAVX2}, {"fma-avx512", 16, fmaPeakAVX512, hasAVX512}}
	for _, pk := range peaks {
		if !pk.ok {
			continue
		}
		b.Run(pk.name, func(b *testing.B) {
			timeFLOPs(b, float64(n*12*pk.lanes*2), func() { pk.f(n) })
		})
	}
}

var benchGonum = flag.Bool("bench-gonum", false, "BenchmarkMatmul: time gonum's Sgemm too")

// stepFLOPs is the arithmetic of one Forward call: every row's matrix
// products except the LM head, the LM head for the wanted rows, and each
// row's attention over its positions.
func stepFLOPs(a Arch, pos []int, wanted int) float64 {
	perTok := MatmulFLOPsPerToken(a) - 2*int64(a.VocabSize)*int64(a.HiddenSize)
	f := float64(len(pos))*float64(perTok) + float64(wanted)*2*float64(a.VocabSize)*float64(a.HiddenSize)
	for _, p := range pos {
		f += float64(AttentionFLOPs(a, p))
	}
	return f
}

const benchPrompt = 128

// BenchmarkPrefill: a batch of benchPrompt-token prompts in one Forward
// call (logits for each prompt's last row). tokens/s counts prompt tokens.
func BenchmarkPrefill(b *testing.B) {
	for _, name := range []string{"llem-tiny", "llem-small"} {
		a := presetArch(b, name)
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/batch%d", name, batch), func(b *testing.B) {
				e := newTestEngine(b, a, 1, Options{Threads: 0, Slots: batch, MaxSeq: benchPrompt + 1, MaxRows: batch * benchPrompt})
				var toks []int32
				var slots, pos, want []int
				for s := 0; s < batch; s++ {
					for p := 0; p < benchPrompt; p++ {
						toks = append(toks, int32((s*131+p*7)%a.VocabSize))
						slots, pos = append(slots, s), append(pos, p)
					}
					want = append(want, len(toks)-1)
				}
				best := time.Duration(math.MaxInt64)
				for b.Loop() {
					t0 := time.Now()
					if _, err := e.Forward(toks, slots, pos, want); err != nil {
						b.Fatal(err)
					}
					best = min(best, time.Since(t0))
				}
				s := b.Elapsed().Seconds()
				b.ReportMetric(float64(len(toks))*float64(b.N)/s, "tokens/s")
				b.ReportMetric(float64(len(toks))/best.Seconds(), "best-tokens/s")
				b.ReportMetric(stepFLOPs(a, pos, batch)*float64(b.N)/s/1e9, "GFLOP/s")
				b.ReportMetric(float64(MatmulFLOPsPerToken(a)), "matmul-FLOP/token")
			})
		}
	}
}

// BenchmarkDecode: one decode step of a batch, each sequence at a context
// of benchPrompt..benchPrompt+63 tokens (the positions cycle). tokens/s
// counts generated tokens.
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"llem-tiny", "llem-small"} {
		a := presetArch(b, name)
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/batch%d", name, batch), func(b *testing.B) {
				const span = 64
				e := newTestEngine(b, a, 1, Options{Threads: 0, Slots: batch, MaxSeq: benchPrompt + span, MaxRows: batch * benchPrompt})
				var toks []int32
				var slots, pos, want []int
				for s := 0; s < batch; s++ {
					for p := 0; p < benchPrompt; p++ {
						toks = append(toks, int32((s*131+p*7)%a.VocabSize))
						slots, pos = append(slots, s), append(pos, p)
					}
				}
				if _, err := e.Forward(toks, slots, pos, nil); err != nil {
					b.Fatal(err)
				}
				toks, slots, pos, want = toks[:batch], slots[:batch], pos[:batch], want[:0]
				for s := range batch {
					toks[s], slots[s], want = int32(s+1), s, append(want, s)
				}
				var flops float64
				i := 0
				best := time.Duration(math.MaxInt64)
				for b.Loop() {
					for s := range pos {
						pos[s] = benchPrompt + i%span
					}
					i++
					t0 := time.Now()
					if _, err := e.Forward(toks, slots, pos, want); err != nil {
						b.Fatal(err)
					}
					best = min(best, time.Since(t0))
					flops += stepFLOPs(a, pos, batch)
				}
				s := b.Elapsed().Seconds()
				b.ReportMetric(float64(batch)*float64(b.N)/s, "tokens/s")
				b.ReportMetric(float64(batch)/best.Seconds(), "best-tokens/s")
				b.ReportMetric(flops/s/1e9, "GFLOP/s")
				b.ReportMetric(float64(MatmulFLOPsPerToken(a)), "matmul-FLOP/token")
			})
		}
	}
}

// TestDecodeStepAllocatesNothing: forward steps and whole generated batches
// allocate nothing once the engine exists.
func TestDecodeStepAllocatesNothing(t *testing.T) {
	e := newTestEngine(t, testArch, 1, Options{Threads: 2, Slots: 2, MaxSeq: 16, MaxRows: 8})
	toks, slots, pos, want := []int32{1, 2}, []int{0, 1}, []int{0, 0}, []int{0, 1}
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := e.Forward(toks, slots, pos, want); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a forward step allocates %g times", allocs)
	}
	g, _ := NewGenerator(e, Decoding{Temperature: 1, TopK: 5, TopP: 0.9, RepetitionPenalty: 1.1}, true)
	reqs := []Request{{Prompt: []int32{3, 4}, MaxNew: 8}, {Prompt: []int32{5}, MaxNew: 8}}
	res := make([]Result, 2)
	for i := range res {
		res[i].Tokens, res[i].ITL = make([]int32, 0, 8), make([]int64, 0, 8)
	}
	var c int64
	now := func() int64 { c++; return c }
	allocs = testing.AllocsPerRun(10, func() {
		if err := g.Run(t.Context(), reqs, res, now); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a generated batch allocates %g times", allocs)
	}
}

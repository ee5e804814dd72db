// Command native is the native engine against PyTorch eager on a CPU, side
// by side in one run: the same synthetic checkpoint (llem-tiny, llem-small
// saved with native.SaveLlama), the same token ids and the same number of
// threads for both; prefill and decode tokens/s at batch 1 and 8, then the
// largest matrix products in GFLOP/s against the machine's FP32 peak.
//
//	go run ./scripts/bench/native [-min-time 2s] [-threads 1,2] [-batches 1,8] [-openblas DIR]
//
// It needs a python3 with torch (Debian's python3-torch). Debian's torch
// does its products with whatever libblas.so.3 the system has, by default
// the reference BLAS (-refblas DIR pins it where OpenBLAS is the system's
// default, e.g. /usr/lib/x86_64-linux-gnu/blas); -openblas DIR (a directory holding OpenBLAS's
// libblas.so.3, e.g. /usr/lib/x86_64-linux-gnu/openblas-pthread) adds a
// second torch column with LD_LIBRARY_PATH=DIR and OPENBLAS_NUM_THREADS set
// to the thread count, what a user who installs libopenblas0 gets. Figures are medians
// of per-step times; the load average before and after is printed with them,
// since on a shared machine it moves them more than anything else.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llem/llem/internal/native"
	"github.com/llem/llem/internal/native/preset"
)

var openblas, refblas string

// torchRuns are the torch configurations timed: the reference BLAS (from
// -refblas, else the system's default libblas.so.3), and OpenBLAS where
// -openblas is given.
func torchRuns() []string {
	if openblas == "" {
		return []string{refblas}
	}
	return []string{refblas, openblas}
}

type point struct {
	Batch       int     `json:"batch"`
	PrefillS    float64 `json:"prefill_s"`
	DecodeStepS float64 `json:"decode_step_s"`
}

func main() {
	minTime := flag.Duration("min-time", 2*time.Second, "time each measurement at least this long")
	threadsF := flag.String("threads", "1,2", "thread counts")
	batchesF := flag.String("batches", "1,8", "batch sizes")
	prompt := flag.Int("prompt", 128, "prompt tokens")
	steps := flag.Int("steps", 64, "decode steps after the prefill")
	flag.StringVar(&refblas, "refblas", "", "directory with the reference BLAS's libblas.so.3 for the torch column (default: the system's)")
	flag.StringVar(&openblas, "openblas", "", "directory with OpenBLAS's libblas.so.3: also time torch with it")
	flag.Parse()
	if err := run(*minTime, ints(*threadsF), ints(*batchesF), *prompt, *steps); err != nil {
		fmt.Fprintln(os.Stderr, "bench native:", err)
		os.Exit(1)
	}
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench native: %q is not a positive integer\n", f)
			os.Exit(2)
		}
		out = append(out, n)
	}
	return out
}

func run(minTime time.Duration, threads, batches []int, prompt, steps int) error {
	py, err := python()
	if err != nil {
		return err
	}
	script := filepath.Join(filepath.Dir(os.Args[0]), "torch_bench.py")
	if _, err := os.Stat(script); err != nil {
		script = "scripts/bench/native/torch_bench.py" // go run from the repository root
	}
	tmp, err := os.MkdirTemp("", "llem-bench-native-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Printf("load average before: %s\n%s\n\n", loadavg(), peak())
	hdr := "| preset | threads | batch | prefill tok/s llem | torch"
	if openblas != "" {
		hdr += " | torch+OpenBLAS"
	}
	hdr += " | llem ÷ best torch | decode tok/s llem | torch"
	if openblas != "" {
		hdr += " | torch+OpenBLAS"
	}
	hdr += " | llem ÷ best torch |"
	fmt.Printf("%s\n|%s\n", hdr, strings.Repeat("---|", strings.Count(hdr, "|")-1))
	for _, name := range []string{"llem-tiny", "llem-small"} {
		a, _ := preset.Lookup(name)
		m, err := native.NewSynthetic(a, 1)
		if err != nil {
			return err
		}
		dir := filepath.Join(tmp, name)
		if err := native.SaveLlama(m, dir); err != nil {
			return err
		}
		for _, t := range threads {
			var th []struct{ Results []point }
			for _, lib := range torchRuns() {
				var r struct{ Results []point }
				if err := pyJSON(&r, lib, t, py, script, "model", dir, strconv.Itoa(t), join(batches), strconv.Itoa(prompt), strconv.Itoa(steps), fmt.Sprint(minTime.Seconds())); err != nil {
					return err
				}
				th = append(th, r)
			}
			for i, b := range batches {
				g, err := measure(m, t, b, prompt, steps, minTime)
				if err != nil {
					return err
				}
				pre, dec := float64(b*prompt)/g.PrefillS, float64(b)/g.DecodeStepS
				preCols, decCols, bestPre, bestDec := "", "", 0.0, 0.0
				for _, r := range th {
					tp, td := float64(b*prompt)/r.Results[i].PrefillS, float64(b)/r.Results[i].DecodeStepS
					preCols += fmt.Sprintf(" %.0f |", tp)
					decCols += fmt.Sprintf(" %.0f |", td)
					bestPre, bestDec = max(bestPre, tp), max(bestDec, td)
				}
				fmt.Printf("| %s | %d | %d | %.0f |%s %.2f | %.0f |%s %.2f |\n", name, t, b, pre, preCols, pre/bestPre, dec, decCols, dec/bestDec)
			}
		}
	}
	if err := matmuls(py, script, threads, minTime); err != nil {
		return err
	}
	fmt.Printf("\nload average after: %s\n", loadavg())
	return nil
}

func join(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// measure times the Go engine on the work torch_bench.py does: one prefill
// of batch prompts (a single Forward call, logits of the last rows), then
// steps greedy decode steps; medians of the prefills and of all steps.
func measure(m *native.Model, threads, batch, prompt, steps int, minTime time.Duration) (point, error) {
	runtime.GOMAXPROCS(threads)
	e, err := native.NewEngine(m, native.Options{Threads: threads, Slots: batch, MaxSeq: prompt + steps, MaxRows: batch * prompt})
	if err != nil {
		return point{}, err
	}
	defer e.Close()
	v := m.Arch.VocabSize
	var toks []int32
	var slots, pos, want []int
	for s := 0; s < batch; s++ {
		for p := 0; p < prompt; p++ {
			toks, slots, pos = append(toks, int32((s*131+p*7)%v)), append(slots, s), append(pos, p)
		}
		want = append(want, len(toks)-1)
	}
	dt, sl, ps, wt := make([]int32, batch), make([]int, batch), make([]int, batch), make([]int, batch)
	var pre, dec []float64
	end := time.Now().Add(minTime)
	for len(pre) < 3 || time.Now().Before(end) {
		t0 := time.Now()
		l, err := e.Forward(toks, slots, pos, want)
		if err != nil {
			return point{}, err
		}
		pre = append(pre, time.Since(t0).Seconds())
		for s := 0; s < steps; s++ {
			for b := range batch {
				dt[b], sl[b], ps[b], wt[b] = argmax(l[b*v:(b+1)*v]), b, prompt+s, b
			}
			t0 := time.Now()
			if l, err = e.Forward(dt, sl, ps, wt); err != nil {
				return point{}, err
			}
			dec = append(dec, time.Since(t0).Seconds())
		}
	}
	return point{Batch: batch, PrefillS: median(pre), DecodeStepS: median(dec)}, nil
}

func argmax(l []float32) int32 {
	best := 0
	for i, x := range l {
		if x > l[best] {
			best = i
		}
	}
	return int32(best)
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// matmuls times the products of llem-small — decode at batch 1 (a
// matrix–vector product), the largest at 256 rows (a prefill chunk) and the
// FFN's gate at 1024 rows (a prefill of eight prompts) — and a 1024³ one,
// with the engine's kernels and with torch, in GFLOP/s: median and fastest
// call, and the fastest against the threads' FP32 peak.
func matmuls(py, script string, threads []int, minTime time.Duration) error {
	small, _ := preset.Lookup("llem-small")
	h, f, v := small.HiddenSize, small.FFNSize, small.VocabSize
	shapes := [][3]int{{1, h, f}, {256, h, f}, {256, f, h}, {256, h, v}, {1024, h, f}, {1024, 1024, 1024}}
	hdr := "| product rows×in×out | threads | llem GFLOP/s median / best | best % of peak | torch median / best"
	if openblas != "" {
		hdr += " | torch+OpenBLAS median / best"
	}
	fmt.Printf("\n%s |\n|%s\n", hdr, strings.Repeat("---|", strings.Count(hdr, "|")))
	for _, t := range threads {
		args := []string{script, "matmul", strconv.Itoa(t), fmt.Sprint(minTime.Seconds() / 4)}
		for _, s := range shapes {
			args = append(args, fmt.Sprintf("%dx%dx%d", s[0], s[1], s[2]))
		}
		type result struct {
			Seconds     float64 `json:"seconds"`
			BestSeconds float64 `json:"best_seconds"`
		}
		var th []struct{ Results []result }
		for _, lib := range torchRuns() {
			var r struct{ Results []result }
			if err := pyJSON(&r, lib, t, py, args...); err != nil {
				return err
			}
			th = append(th, r)
		}
		runtime.GOMAXPROCS(t)
		mm := native.NewMatmul(t)
		for i, s := range shapes {
			rows, in, out := s[0], s[1], s[2]
			x, wf, y := make([]float32, rows*in), make([]float32, out*in), make([]float32, rows*out)
			for j := range x {
				x[j] = float32(j%7) - 3
			}
			for j := range wf {
				wf[j] = float32(j%5) - 2
			}
			w := native.PackWeights(wf, in, out)
			var ts []float64
			end := time.Now().Add(minTime / 4)
			for len(ts) < 5 || time.Now().Before(end) {
				t0 := time.Now()
				mm.Do(y, x, w, rows)
				ts = append(ts, time.Since(t0).Seconds())
			}
			fl := 2 * float64(rows*in*out) / 1e9
			cols := ""
			for _, r := range th {
				cols += fmt.Sprintf(" %.1f / %.1f |", fl/r.Results[i].Seconds, fl/r.Results[i].BestSeconds)
			}
			pct := "–"
			if corePeak > 0 {
				pct = fmt.Sprintf("%.0f %%", 100*fl/slices.Min(ts)/(float64(t)*corePeak))
			}
			fmt.Printf("| %d×%d×%d | %d | %.1f / %.1f | %s |%s\n", rows, in, out, t, fl/median(ts), fl/slices.Min(ts), pct, cols)
		}
		mm.Close()
	}
	return nil
}

// pyJSON runs python with args, with OpenBLAS from lib where lib is set,
// and decodes its JSON output into dst.
func pyJSON(dst any, lib string, threads int, py string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command(py, args...)
	cmd.Stderr = &stderr
	if lib != "" {
		cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+lib, "OPENBLAS_NUM_THREADS="+strconv.Itoa(threads))
	}
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", py, strings.Join(args, " "), err, stderr.String())
	}
	return json.Unmarshal(out, dst)
}

// python returns python3 from PATH or Debian's, whichever imports torch.
func python() (string, error) {
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		if p, err := exec.LookPath(py); err == nil && exec.Command(p, "-c", "import torch").Run() == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no python3 imports torch: install python3-torch")
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ") + fmt.Sprintf(" (%d CPUs)", runtime.NumCPU())
}

// peak derives the FP32 peak from /proc/cpuinfo: cores × FLOP per cycle ×
// clock. FLOP per cycle = 2 (an FMA) × lanes (8 with AVX2, 16 with
// AVX-512) × FMA units, which cpuinfo does not give: 2 is assumed (every
// x86 core with AVX2 since Haswell and Zen 2 has two FMA pipes).
func peak() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	var model string
	var mhz float64
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "model name" && model == "":
			model = v
		case k == "cpu MHz" && mhz == 0:
			mhz, _ = strconv.ParseFloat(v, 64)
		}
	}
	s := fmt.Sprintf("CPU: %s, %d cores, %.0f MHz nominal (cpuinfo), kernels %s", model, runtime.NumCPU(), mhz, native.Kernels())
	p, ok := native.MeasurePeak(2 * time.Second)
	if !ok {
		return s
	}
	corePeak = 2 * float64(p.Lanes) * 2 * p.GHz
	return s + fmt.Sprintf("\nmeasured clock %.2f GHz (dependent-add chain, best of 1 s); FP32 peak per core = 2 FMA units × %d lanes × 2 FLOP × %.2f GHz = %.1f GFLOP/s (register-only FMAs measured: %.1f); machine (%d cores): %.1f GFLOP/s",
		p.GHz, p.Lanes, p.GHz, corePeak, p.GFLOPs, runtime.NumCPU(), float64(runtime.NumCPU())*corePeak)
}

// corePeak is one core's FP32 peak in GFLOP/s, 0 where unmeasured.
var corePeak float64

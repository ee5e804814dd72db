package native

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/native/preset"
)

// The engine against an independent forward pass in PyTorch
// (testdata/torch_llama.py): same checkpoint on disk, same token ids; the
// prefill's logits and those of 32 greedy decode steps must agree within
// torchTol of the logits' RMS, and the greedy tokens must be identical.

const (
	torchTol   = 1e-4
	torchSteps = 32
)

// torchPython returns a Python that imports torch, or skips the test. The
// python3 on PATH comes first; Debian's /usr/bin/python3 (where apt puts
// python3-torch) is tried when that one lacks torch (a pyenv shim, a venv).
func torchPython(t *testing.T) string {
	t.Helper()
	py, err := findPython("torch")
	if err != nil {
		t.Skipf("skipped: %v; install python3-torch (scripts/test-setup.d/torch.sh)", err)
	}
	return py
}

// findPython returns the first of python3 (on PATH) and /usr/bin/python3
// that imports module.
func findPython(module string) (string, error) {
	var tried []string
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		p, err := exec.LookPath(py)
		if err != nil {
			tried = append(tried, py+": not found")
			continue
		}
		out, err := exec.Command(p, "-c", "import "+module).CombinedOutput()
		if err == nil {
			return p, nil
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		tried = append(tried, p+": "+lines[len(lines)-1])
	}
	return "", fmt.Errorf("no python3 imports %s (%s)", module, strings.Join(tried, "; "))
}

func fillNormal(r *rand.Rand, n int, std float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64() * std)
	}
	return s
}

// torchCase is a checkpoint variant: a synthetic model, edited.
type torchCase struct {
	name string
	arch Arch
	edit func(m *Model, r *rand.Rand)
}

func torchCases(t *testing.T) []torchCase {
	tiny, _ := preset.Lookup("llem-tiny")
	small, _ := preset.Lookup("llem-small")
	biases := func(all bool) func(m *Model, r *rand.Rand) {
		return func(m *Model, r *rand.Rand) {
			q, kv := m.Arch.Heads*m.HeadDim, m.Arch.KVHeads*m.HeadDim
			for i := range m.Layers {
				L := &m.Layers[i]
				L.BQ, L.BK, L.BV = fillNormal(r, q, 0.5), fillNormal(r, kv, 0.5), fillNormal(r, kv, 0.5)
				if all {
					L.BO = fillNormal(r, m.Arch.HiddenSize, 0.1)
				}
			}
			if !all {
				m.ModelType = "qwen2"
			}
		}
	}
	return []torchCase{
		{"llem-tiny", tiny, nil},
		{"llem-small", small, nil},
		{"tied", tiny, func(m *Model, _ *rand.Rand) { m.LMHead, m.Tied = m.Embed, true }},
		{"rope_theta=500000", tiny, func(m *Model, _ *rand.Rand) { m.RopeTheta = 500000 }},
		{"qwen2-biases", tiny, func(m *Model, r *rand.Rand) { biases(false)(m, r); m.LMHead, m.Tied = m.Embed, true }},
		{"attention_bias", tiny, biases(true)},
		{"rope_scaling=llama3", tiny, func(m *Model, _ *rand.Rand) {
			// Wavelengths 2π…1.3e6 positions straddle both thresholds (16, 64):
			// every branch of the rescaling is used.
			m.RopeTheta = 500000
			m.RopeScaling = &RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OrigMaxPos: 64}
		}},
		{"head_dim=48", tiny, func(m *Model, r *rand.Rand) {
			// Qwen3/Gemma-style: heads × head_dim (192) ≠ hidden (128).
			a := m.Arch
			m.HeadDim = 48
			q, kv := a.Heads*m.HeadDim, a.KVHeads*m.HeadDim
			for i := range m.Layers {
				L := &m.Layers[i]
				std := 1 / math.Sqrt(float64(a.HiddenSize))
				L.WQ, L.WK, L.WV = fillNormal(r, q*a.HiddenSize, std), fillNormal(r, kv*a.HiddenSize, std), fillNormal(r, kv*a.HiddenSize, std)
				L.WO = fillNormal(r, a.HiddenSize*q, 1/math.Sqrt(float64(q)))
			}
		}},
	}
}

func TestAgainstPyTorch(t *testing.T) {
	py := torchPython(t)
	ref, err := filepath.Abs("testdata/torch_llama.py")
	if err != nil {
		t.Fatal(err)
	}
	worstAll := 0.0
	for _, c := range torchCases(t) {
		t.Run(c.name, func(t *testing.T) {
			m, err := NewSynthetic(c.arch, 11)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 4))
			if c.edit != nil {
				c.edit(m, r)
			}
			dir := t.TempDir()
			if err := SaveLlama(m, dir); err != nil {
				t.Fatal(err)
			}
			loaded, err := LoadLlama(dir)
			if err != nil {
				t.Fatal(err)
			}
			prompts := [][]int32{randTokens(r, 7, c.arch.VocabSize), randTokens(r, 20, c.arch.VocabSize)}
			goLogits, goToks := engineGreedy(t, loaded, prompts, torchSteps)
			thLogits, thToks := runTorch(t, py, ref, dir, prompts, c.arch.VocabSize)
			worst := compareLogits(t, goLogits, thLogits, c.arch.VocabSize)
			for i := range prompts {
				if !equal(goToks[i], thToks[i]) {
					t.Errorf("prompt %d: greedy tokens differ\n go    %v\n torch %v", i, goToks[i], thToks[i])
				}
			}
			t.Logf("%s: %d prompts × %d logit rows, worst |go − torch| / rms = %.3g (tolerance %g); greedy tokens identical: %v",
				c.name, len(prompts), torchSteps+1, worst, torchTol, !t.Failed())
			worstAll = max(worstAll, worst)
		})
	}
	t.Logf("all cases: worst |go − torch| / rms = %.3g, tolerance %g", worstAll, torchTol)
}

func randTokens(r *rand.Rand, n, vocab int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(r.IntN(vocab))
	}
	return s
}

// engineGreedy runs the prompts as one batch: one ragged prefill, then
// decode steps of one row per prompt; it returns, per prompt, the logit
// rows (prefill's last, then each step's) and the greedy tokens.
func engineGreedy(t *testing.T, m *Model, prompts [][]int32, steps int) ([][]float32, [][]int32) {
	maxLen := 0
	var toks []int32
	var slots, pos, want []int
	for s, p := range prompts {
		maxLen = max(maxLen, len(p))
		for i, id := range p {
			toks, slots, pos = append(toks, id), append(slots, s), append(pos, i)
		}
		want = append(want, len(toks)-1)
	}
	e, err := NewEngine(m, Options{Threads: 2, Slots: len(prompts), MaxSeq: maxLen + steps + 1, MaxRows: len(toks)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	v := m.Arch.VocabSize
	logits := make([][]float32, len(prompts))
	out := make([][]int32, len(prompts))
	for step := 0; ; step++ {
		l, err := e.Forward(toks, slots, pos, want)
		if err != nil {
			t.Fatal(err)
		}
		if step == steps {
			for s := range prompts {
				logits[s] = append(logits[s], l[s*v:(s+1)*v]...)
			}
			break
		}
		toks, slots, pos, want = toks[:0], slots[:0], pos[:0], want[:0]
		for s, p := range prompts {
			row := l[s*v : (s+1)*v]
			logits[s] = append(logits[s], row...)
			best := 0
			for i, x := range row {
				if x > row[best] {
					best = i
				}
			}
			out[s] = append(out[s], int32(best))
			toks, slots, pos, want = append(toks, int32(best)), append(slots, s), append(pos, len(p)+step), append(want, s)
		}
	}
	return logits, out
}

func runTorch(t *testing.T, py, ref, dir string, prompts [][]int32, vocab int) ([][]float32, [][]int32) {
	req, _ := json.Marshal(map[string]any{"prompts": prompts, "steps": torchSteps})
	reqPath, outPath := filepath.Join(dir, "request.json"), filepath.Join(dir, "torch-logits.bin")
	if err := os.WriteFile(reqPath, req, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(py, ref, dir, reqPath, outPath)
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("torch reference: %v: %s", err, stderr.String())
	}
	var res struct{ Tokens [][]int32 }
	if err := json.Unmarshal(stdout, &res); err != nil || len(res.Tokens) != len(prompts) {
		t.Fatalf("torch reference output %q: %v", stdout, err)
	}
	b, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	per := (torchSteps + 1) * vocab
	if len(b) != 4*per*len(prompts) {
		t.Fatalf("torch logits: %d bytes, want %d", len(b), 4*per*len(prompts))
	}
	logits := make([][]float32, len(prompts))
	for s := range logits {
		logits[s] = make([]float32, per)
		for i := range logits[s] {
			logits[s][i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*(s*per+i):]))
		}
	}
	return logits, res.Tokens
}

// compareLogits checks every logit row against the reference's within
// torchTol × the reference row's RMS, and returns the worst ratio seen.
func compareLogits(t *testing.T, got, want [][]float32, vocab int) float64 {
	worst := 0.0
	for s := range want {
		for row := 0; row*vocab < len(want[s]); row++ {
			g, w := got[s][row*vocab:(row+1)*vocab], want[s][row*vocab:(row+1)*vocab]
			var ss, md float64
			for i := range w {
				ss += float64(w[i]) * float64(w[i])
				md = max(md, math.Abs(float64(g[i])-float64(w[i])))
			}
			d := md / math.Sqrt(ss/float64(vocab))
			worst = max(worst, d)
			if d > torchTol || math.IsNaN(d) {
				t.Errorf("prompt %d, logit row %d: max |go − torch| = %.3g × rms, tolerance %g", s, row, d, torchTol)
			}
		}
	}
	return worst
}

// TestParamsOfVariants: Params counts what the tensors of every cross-check
// variant hold (biases, head_dim apart from hidden/heads, tied head).
func TestParamsOfVariants(t *testing.T) {
	for _, c := range torchCases(t) {
		m, err := NewSynthetic(c.arch, 11)
		if err != nil {
			t.Fatal(err)
		}
		if c.edit != nil {
			c.edit(m, rand.New(rand.NewPCG(3, 4)))
		}
		n := len(m.Embed) + len(m.Norm)
		if !m.Tied {
			n += len(m.LMHead)
		}
		for _, l := range m.Layers {
			for _, s := range [][]float32{l.AttnNorm, l.WQ, l.WK, l.WV, l.WO, l.MLPNorm, l.WGate, l.WUp, l.WDown, l.BQ, l.BK, l.BV, l.BO} {
				n += len(s)
			}
		}
		if m.Params() != int64(n) {
			t.Errorf("%s: Params %d, tensors hold %d", c.name, m.Params(), n)
		}
	}
}

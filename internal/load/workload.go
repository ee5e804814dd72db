package load

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/dataset"
)

// Spec is what one request asks the server for.
type Spec struct {
	Prompt    string
	MaxTokens int
	IgnoreEOS bool // forces MaxTokens output tokens on servers that honour it
}

// Lengths is a length distribution in tokens: Median every time (Sigma 0),
// or lognormal round(Median·e^(Sigma·Z)), clipped to [1, Median·e^(4·Sigma)]
// so one draw cannot ask for an absurd prompt.
type Lengths struct {
	Median int
	Sigma  float64
}

func (l Lengths) max() int {
	return int(math.Round(float64(l.Median) * math.Exp(4*l.Sigma)))
}

func (l Lengths) draw(r *rand.Rand) int {
	if l.Sigma == 0 {
		return l.Median
	}
	v := int(math.Round(float64(l.Median) * math.Exp(l.Sigma*r.NormFloat64())))
	return max(1, min(v, l.max()))
}

func (l Lengths) check(flag string) error {
	if l.Median < 1 || l.Sigma < 0 || l.Sigma > 10 || math.IsNaN(l.Sigma) {
		return fmt.Errorf("--%s-len %d and --%s-sigma %v: want a length ≥ 1 and 0 ≤ sigma ≤ 10", flag, l.Median, flag, l.Sigma)
	}
	return nil
}

// Workload gives each request of a run its prompt and output length. Spec(i)
// depends only on the seed and i (and the trace or dataset), never on the
// order requests are sent in, so a closed loop and an open loop send the
// same requests.
type Workload struct {
	Texts         []string // prompts from a dataset, used in turn; nil: synthetic
	Trace         []Entry  // when set, lengths (and maybe prompts) come from it
	Input, Output Lengths  // when no trace gives them
	CharsPerToken float64  // bytes of synthetic prompt per input token
	IgnoreEOS     bool     // always set for a trace
	Seed          uint64

	base string // synthetic text that synthetic prompts are cut from
}

// promptSpan is how far into the synthetic text a prompt may start, so
// prompts differ from their first byte (a server's prefix cache cannot serve
// one request from another's prompt).
const promptSpan = 4096

// maxPromptBytes bounds one synthetic prompt.
const maxPromptBytes = dataset.MaxPromptBytes - promptSpan

// Prepare builds the synthetic text the prompts are cut from, long enough
// for the longest prompt the workload can ask for.
func (w *Workload) Prepare() error {
	if !(w.CharsPerToken > 0) || w.CharsPerToken > 100 {
		return fmt.Errorf("--chars-per-token %v: want a number in (0, 100]", w.CharsPerToken)
	}
	longest := 0
	switch {
	case w.Trace != nil:
		for _, e := range w.Trace {
			if e.Prompt == "" {
				longest = max(longest, e.InputTokens)
			}
		}
	case w.Texts == nil:
		longest = w.Input.max()
	}
	if longest == 0 {
		return nil
	}
	n := w.promptBytes(longest) + promptSpan
	texts, err := dataset.Synthetic(config.Synthetic{InputLen: n, Seed: int64(w.Seed)}, 1)
	if err != nil {
		return err
	}
	w.base = texts[0]
	return nil
}

func (w *Workload) promptBytes(tokens int) int {
	return max(1, min(int(math.Round(float64(tokens)*w.CharsPerToken)), maxPromptBytes))
}

// Spec returns request i's prompt and output length.
func (w *Workload) Spec(i int) Spec {
	r := rand.New(rand.NewPCG(w.Seed, seedShapes<<32|uint64(i)))
	if w.Trace != nil {
		e := w.Trace[i%len(w.Trace)]
		s := Spec{MaxTokens: e.OutputTokens, IgnoreEOS: true, Prompt: e.Prompt}
		switch {
		case w.Texts != nil:
			s.Prompt = w.Texts[i%len(w.Texts)]
		case s.Prompt == "":
			s.Prompt = w.cut(r, e.InputTokens)
		}
		return s
	}
	s := Spec{IgnoreEOS: w.IgnoreEOS}
	if w.Texts != nil {
		s.Prompt = w.Texts[i%len(w.Texts)]
	} else {
		s.Prompt = w.cut(r, w.Input.draw(r))
	}
	s.MaxTokens = w.Output.draw(r)
	return s
}

// cut returns a synthetic prompt of about tokens tokens, from a random place
// in the synthetic text.
func (w *Workload) cut(r *rand.Rand, tokens int) string {
	n := w.promptBytes(tokens)
	start := r.IntN(len(w.base) - n + 1)
	return w.base[start : start+n]
}

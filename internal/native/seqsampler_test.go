package native

import (
	"math"
	"testing"

	"github.com/llem/llem/internal/native/preset"
)

// stepSeq is one sequence of a hand-driven continuous batch.
type stepSeq struct {
	prompt []int32
	slot   int
	start  int // the step it joins at
	chunk  int // prompt rows per step
	done   int // prompt rows in the cache
	out    []int32
	logits [][]float32 // a copy of every row of logits it got
	s      *Sampler
}

// runSteps drives seqs together the way a continuous-batching server does:
// at each step, one decode row per sequence past its prompt and a chunk of
// prompt rows for the others, mixed in one Forward call, until each has n
// tokens.
func runSteps(t *testing.T, e *Engine, seqs []*stepSeq, n int) {
	t.Helper()
	dec := Decoding{Greedy: true, TopP: 1, RepetitionPenalty: 1}
	v := e.Model().Arch.VocabSize
	for step := 0; step < 10000; step++ {
		var tokens []int32
		var slots, pos, want []int
		var wantSeq []*stepSeq
		busy := false
		for _, q := range seqs {
			if step < q.start || len(q.out) == n {
				busy = busy || step < q.start
				continue
			}
			busy = true
			if q.done == len(q.prompt) {
				want, wantSeq = append(want, len(tokens)), append(wantSeq, q)
				tokens, slots, pos = append(tokens, q.out[len(q.out)-1]), append(slots, q.slot), append(pos, q.done+len(q.out)-1)
				continue
			}
			end := min(q.done+q.chunk, len(q.prompt))
			for p := q.done; p < end; p++ {
				tokens, slots, pos = append(tokens, q.prompt[p]), append(slots, q.slot), append(pos, p)
			}
			q.done = end
			if end == len(q.prompt) {
				want, wantSeq = append(want, len(tokens)-1), append(wantSeq, q)
			}
		}
		if !busy {
			return
		}
		if len(tokens) == 0 {
			continue
		}
		logits, err := e.Forward(tokens, slots, pos, want)
		if err != nil {
			t.Fatal(err)
		}
		for j, q := range wantSeq {
			l := logits[j*v : (j+1)*v]
			q.logits = append(q.logits, append([]float32(nil), l...))
			q.out = append(q.out, q.s.Next(l, dec, len(q.out)))
		}
	}
	t.Fatal("sequences did not finish in 10000 steps")
}

// TestContinuousBatchBitIdentical: a sequence's logits, hence its greedy
// tokens, are the same to the bit whether it runs alone with its prompt in
// one piece, or joins 15 others mid-flight in another slot with its prompt
// prefilled in chunks between their decode rows. This is what lets
// llem-serve promise that a request's output does not depend on its
// company: every product row and attention (row, head) unit is computed in
// one fixed order whatever the batch (docs/native.md, "Engine").
func TestContinuousBatchBitIdentical(t *testing.T) {
	a, _ := preset.Lookup("llem-tiny")
	a.MaxSeqLen = 128
	tok := NewTokenizer(a.VocabSize)
	prompt := tok.Encode(nil, "Results do not depend on the company a request keeps.", -1)
	const n = 24
	newE := func() *Engine {
		return newTestEngine(t, a, 5, Options{Threads: 2, Slots: 16, MaxSeq: 128, MaxRows: 256})
	}
	alone := &stepSeq{prompt: prompt, slot: 0, chunk: len(prompt), s: NewSampler(a.VocabSize)}
	e1 := newE()
	defer e1.Close()
	runSteps(t, e1, []*stepSeq{alone}, n)

	var seqs []*stepSeq
	for i := range 15 {
		p := tok.Encode(nil, string(rune('a'+i))+" other prompt of some length "+string(make([]byte, 3*i)), -1)
		slot := i // every slot but 7, which the sequence under test takes
		if i >= 7 {
			slot++
		}
		seqs = append(seqs, &stepSeq{prompt: p, slot: slot, start: i % 5, chunk: 1 + 7*i, s: NewSampler(a.VocabSize)})
	}
	mixed := &stepSeq{prompt: prompt, slot: 7, start: 3, chunk: 5, s: NewSampler(a.VocabSize)}
	seqs = append(seqs, mixed)
	e2 := newE()
	defer e2.Close()
	runSteps(t, e2, seqs, n)

	for i := range n {
		for k, x := range alone.logits[i] {
			if math.Float32bits(x) != math.Float32bits(mixed.logits[i][k]) {
				t.Fatalf("token %d: logit %d is %v in the batch, %v alone", i, k, mixed.logits[i][k], x)
			}
		}
	}
	if !equal(alone.out, mixed.out) {
		t.Fatalf("tokens in the batch %v, alone %v", mixed.out, alone.out)
	}
}

func TestLogprobs(t *testing.T) {
	l := []float32{1, 3, 3, -2}
	lp, top := Logprobs(l, 3, 3, nil)
	var z float64
	for _, x := range l {
		z += math.Exp(float64(x))
	}
	if want := -2 - math.Log(z); math.Abs(lp-want) > 1e-12 {
		t.Fatalf("logprob %v, want %v", lp, want)
	}
	if len(top) != 3 || top[0].ID != 1 || top[1].ID != 2 || top[2].ID != 0 {
		t.Fatalf("top %+v, want ids 1, 2 (tie: lower id first), 0", top)
	}
	if _, top = Logprobs(l, 0, 0, top); len(top) != 0 {
		t.Fatalf("top 0 gave %d entries", len(top))
	}
}

// TestSamplerMinNewTokens: Next masks EOS until made reaches MinNewTokens.
func TestSamplerMinNewTokens(t *testing.T) {
	s := NewSampler(300)
	s.Reset(1)
	d := Decoding{Greedy: true, TopP: 1, RepetitionPenalty: 1, MinNewTokens: 2}
	l := make([]float32, 300) // all equal: greedy picks the lowest id, EOS
	if got := s.Next(l, d, 1); got == EOS {
		t.Fatal("EOS chosen before min_new_tokens")
	}
	clear(l)
	if got := s.Next(l, d, 2); got != EOS {
		t.Fatalf("got %d after min_new_tokens, want EOS", got)
	}
}

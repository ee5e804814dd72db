package native

import (
	"context"
	"fmt"
	"math"
)

// Request is one prompt to complete.
type Request struct {
	Prompt []int32
	MaxNew int    // tokens to generate at most (≥ 1)
	Seed   uint64 // seeds the request's sampler
}

// Result is what one request produced, with the wall-clock time (from the
// caller's clock) of every token.
type Result struct {
	Tokens []int32
	TStart int64   // the batch started
	TFirst int64   // the first token was chosen (after the batch's prefill)
	TEnd   int64   // the last token was chosen
	ITL    []int64 // gaps between consecutive tokens, len(Tokens)-1
}

// Generator runs batches of requests on an engine: one batched prefill of
// every prompt, then one batched decode step per token over the sequences
// still running. It owns per-slot samplers and row buffers, so a batch
// allocates nothing beyond what the results' slices need to grow.
type Generator struct {
	e         *Engine
	dec       Decoding
	ignoreEOS bool
	samplers  []*sampler
	tokens    []int32
	slots     []int
	pos       []int
	want      []int
	active    []int
	lengths   []int
	wantSlot  []int
	first     []float32 // [slots][vocab]: each prompt's first-token logits
}

// NewGenerator returns a generator on e.
func NewGenerator(e *Engine, dec Decoding, ignoreEOS bool) (*Generator, error) {
	if err := dec.Check(); err != nil {
		return nil, err
	}
	g := &Generator{e: e, dec: dec, ignoreEOS: ignoreEOS}
	for range e.opt.Slots {
		g.samplers = append(g.samplers, newSampler(e.m.Arch.VocabSize))
	}
	g.tokens = make([]int32, 0, e.opt.MaxRows)
	g.slots = make([]int, 0, e.opt.MaxRows)
	g.pos = make([]int, 0, e.opt.MaxRows)
	g.want = make([]int, 0, e.opt.Slots)
	g.active = make([]int, 0, e.opt.Slots)
	g.lengths = make([]int, e.opt.Slots)
	g.wantSlot = make([]int, 0, e.opt.Slots)
	g.first = make([]float32, e.opt.Slots*e.m.Arch.VocabSize)
	return g, nil
}

// Run completes reqs (at most the engine's slots) as one batch, writing
// res[i] for reqs[i]. now is the clock the timestamps come from. It stops
// with ctx's error between steps.
func (g *Generator) Run(ctx context.Context, reqs []Request, res []Result, now func() int64) error {
	e := g.e
	if len(reqs) == 0 || len(reqs) > e.opt.Slots || len(res) < len(reqs) {
		return fmt.Errorf("native: batch of %d requests for %d slots", len(reqs), e.opt.Slots)
	}
	for i, r := range reqs {
		if len(r.Prompt) == 0 || r.MaxNew < 1 || len(r.Prompt)+r.MaxNew > e.opt.MaxSeq {
			return fmt.Errorf("native: request %d: %d prompt tokens + %d new tokens do not fit 1..%d positions", i, len(r.Prompt), r.MaxNew, e.opt.MaxSeq)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	v := e.m.Arch.VocabSize
	t0 := now()
	// Prefill: the prompts' rows in Forward calls of at most MaxRows rows (a
	// long prompt spans several; its cache fills in order). Each prompt's
	// last-row logits are kept in g.first until every prompt is in.
	g.tokens, g.slots, g.pos, g.want, g.wantSlot = g.tokens[:0], g.slots[:0], g.pos[:0], g.want[:0], g.wantSlot[:0]
	for i, r := range reqs {
		s := g.samplers[i]
		s.reset(r.Seed)
		for p, t := range r.Prompt {
			if len(g.tokens) == e.opt.MaxRows {
				if err := g.prefill(); err != nil {
					return err
				}
			}
			g.tokens = append(g.tokens, t)
			g.slots = append(g.slots, i)
			g.pos = append(g.pos, p)
			if t >= 0 && int(t) < len(s.seen)*64 {
				s.see(t)
			}
		}
		g.want = append(g.want, len(g.tokens)-1)
		g.wantSlot = append(g.wantSlot, i)
		g.lengths[i] = len(r.Prompt)
		res[i].Tokens, res[i].ITL = res[i].Tokens[:0], res[i].ITL[:0]
		res[i].TStart, res[i].TFirst, res[i].TEnd = t0, 0, 0
	}
	if err := g.prefill(); err != nil {
		return err
	}
	logits := g.first
	g.active = g.active[:0]
	for i := range reqs {
		g.active = append(g.active, i)
	}
	g.pick(reqs, res, logits, v, now)
	for len(g.active) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		g.tokens, g.slots, g.pos, g.want = g.tokens[:0], g.slots[:0], g.pos[:0], g.want[:0]
		for j, i := range g.active {
			g.tokens = append(g.tokens, res[i].Tokens[len(res[i].Tokens)-1])
			g.slots = append(g.slots, i)
			g.pos = append(g.pos, g.lengths[i])
			g.want = append(g.want, j)
			g.lengths[i]++
		}
		logits, err := e.Forward(g.tokens, g.slots, g.pos, g.want)
		if err != nil {
			return err
		}
		g.pick(reqs, res, logits, v, now)
	}
	return nil
}

// prefill runs the rows gathered so far and keeps the wanted rows' logits.
func (g *Generator) prefill() error {
	if len(g.tokens) == 0 {
		return nil
	}
	v := g.e.m.Arch.VocabSize
	logits, err := g.e.Forward(g.tokens, g.slots, g.pos, g.want)
	if err != nil {
		return err
	}
	for j, slot := range g.wantSlot {
		copy(g.first[slot*v:(slot+1)*v], logits[j*v:(j+1)*v])
	}
	g.tokens, g.slots, g.pos, g.want, g.wantSlot = g.tokens[:0], g.slots[:0], g.pos[:0], g.want[:0], g.wantSlot[:0]
	return nil
}

// pick samples a token for each active sequence (row j of logits is
// g.active[j]), stamps them all with the time sampling ended and drops the
// sequences that finished.
func (g *Generator) pick(reqs []Request, res []Result, logits []float32, v int, now func() int64) {
	g.tokens = g.tokens[:0] // reused to hold this step's picks
	for j, i := range g.active {
		s := g.samplers[i]
		l := logits[j*v : (j+1)*v]
		if len(res[i].Tokens) < g.dec.MinNewTokens {
			l[g.e.m.EOS] = float32(math.Inf(-1)) // as Hugging Face's MinNewTokensLengthLogitsProcessor
		}
		tok := s.next(l, g.dec)
		s.see(tok)
		g.tokens = append(g.tokens, tok)
	}
	t := now()
	kept := g.active[:0]
	for j, i := range g.active {
		tok := g.tokens[j]
		r := &res[i]
		if len(r.Tokens) == 0 {
			r.TFirst = t
		} else {
			r.ITL = append(r.ITL, t-r.TEnd)
		}
		r.Tokens = append(r.Tokens, tok)
		r.TEnd = t
		if len(r.Tokens) < reqs[i].MaxNew && (g.ignoreEOS || tok != g.e.m.EOS) {
			kept = append(kept, i)
		}
	}
	g.active = kept
}

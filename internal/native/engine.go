package native

import (
	"errors"
	"fmt"
)

// Options size an engine's preallocated state.
type Options struct {
	Threads int // goroutines for matrix products and attention; 0 = all cores
	Slots   int // sequences that can be in flight at once (the batch size)
	MaxSeq  int // positions per sequence (prompt + output); ≤ the model's MaxSeqLen
	MaxRows int // token rows one Forward call may carry (≥ Slots); a longer prefill is split
}

// Engine runs a model's forward pass. Every buffer, the KV cache included,
// is allocated once by NewEngine; Forward allocates nothing. An Engine is not
// safe for concurrent use.
type Engine struct {
	m       *Model
	p       *pool
	packed  []packedLayer // the layers' matrices packed for the kernels
	lmHead  *packedW
	aj      attnJob
	opt     Options
	kvDim   int
	kc, vc  [][]float32 // per layer: [slot][pos][kvDim]
	cos     []float32
	sin     []float32
	x, xn   []float32 // [rows][hidden]
	q, att  []float32 // [rows][heads*headDim]
	k, v    []float32 // [rows][kvDim]
	g, u    []float32 // [rows][ffn]
	last    []float32 // [slots][hidden]: the rows whose logits are wanted
	logits  []float32 // [slots][vocab]
	scores  [][]float32
	units   []attnUnit
	fwdRows int
}

type attnUnit struct{ row, head int }

// NewEngine allocates an engine for m. It packs a copy of m's matrices for
// the kernels: changes to m's weights afterwards are not seen by the engine.
func NewEngine(m *Model, opt Options) (*Engine, error) {
	a := m.Arch
	if opt.Slots < 1 || opt.MaxRows < opt.Slots {
		return nil, fmt.Errorf("native: engine needs at least one slot and a row per slot (slots %d, rows %d)", opt.Slots, opt.MaxRows)
	}
	if opt.MaxSeq < 1 || opt.MaxSeq > a.MaxSeqLen {
		return nil, fmt.Errorf("native: sequence length %d outside 1..max_seq_len (%d)", opt.MaxSeq, a.MaxSeqLen)
	}
	e := &Engine{m: m, p: newPool(opt.Threads), opt: opt, kvDim: a.KVHeads * m.HeadDim}
	qd := a.Heads * m.HeadDim
	r := opt.MaxRows
	if need := int64(r)*int64(2*a.HiddenSize+2*qd+2*e.kvDim+2*a.FFNSize+max(a.HiddenSize, qd, a.FFNSize)) +
		2*int64(a.Layers)*int64(opt.Slots)*int64(opt.MaxSeq)*int64(e.kvDim); need > maxParams {
		return nil, fmt.Errorf("native: activations and KV cache need %d floats, more than the engine's limit of %d; lower batch_size or max_input_tokens", need, int64(maxParams))
	}
	e.kc, e.vc = make([][]float32, a.Layers), make([][]float32, a.Layers)
	for l := range e.kc {
		e.kc[l] = make([]float32, opt.Slots*opt.MaxSeq*e.kvDim)
		e.vc[l] = make([]float32, opt.Slots*opt.MaxSeq*e.kvDim)
	}
	e.cos, e.sin = ropeTable(opt.MaxSeq, m.HeadDim, m.RopeTheta, m.RopeScaling)
	e.x, e.xn = make([]float32, r*a.HiddenSize), make([]float32, r*a.HiddenSize)
	e.q, e.att = make([]float32, r*qd), make([]float32, r*qd)
	e.k, e.v = make([]float32, r*e.kvDim), make([]float32, r*e.kvDim)
	e.g, e.u = make([]float32, r*a.FFNSize), make([]float32, r*a.FFNSize)
	e.last = make([]float32, opt.Slots*a.HiddenSize)
	e.logits = make([]float32, opt.Slots*a.VocabSize)
	e.scores = make([][]float32, e.p.threads)
	for i := range e.scores {
		e.scores[i] = make([]float32, opt.MaxSeq)
	}
	e.units = make([]attnUnit, 0, r*a.Heads)
	e.packed, e.lmHead = packModel(m)
	e.p.apack = make([]float32, r*max(a.HiddenSize, qd, a.FFNSize))
	return e, nil
}

// packedLayer is a layer's matrices packed for the kernels.
type packedLayer struct{ q, k, v, o, gate, up, down *packedW }

// packModel packs every matrix of m, each once (a copy of the weights: the
// model keeps its [out][in] matrices for saving and for other engines).
func packModel(m *Model) ([]packedLayer, *packedW) {
	a := m.Arch
	h, qd, kvd := a.HiddenSize, a.Heads*m.HeadDim, a.KVHeads*m.HeadDim
	pl := make([]packedLayer, len(m.Layers))
	for i := range m.Layers {
		L := &m.Layers[i]
		pl[i] = packedLayer{
			q: packWeights(L.WQ, h, qd), k: packWeights(L.WK, h, kvd), v: packWeights(L.WV, h, kvd),
			o: packWeights(L.WO, qd, h), gate: packWeights(L.WGate, h, a.FFNSize),
			up: packWeights(L.WUp, h, a.FFNSize), down: packWeights(L.WDown, a.FFNSize, h),
		}
	}
	return pl, packWeights(m.LMHead, h, a.VocabSize)
}

// Close stops the engine's goroutines.
func (e *Engine) Close() { e.p.close() }

// Model returns the engine's model.
func (e *Engine) Model() *Model { return e.m }

// Threads is the number of goroutines the engine uses.
func (e *Engine) Threads() int { return e.p.threads }

// StateBytes is the memory of the preallocated activations (the products'
// packed copy of them included) and KV cache; the packed copy of the
// weights is not counted.
func (e *Engine) StateBytes() int64 {
	n := 2 * len(e.kc) * len(e.kc[0])
	n += len(e.x) + len(e.xn) + len(e.q) + len(e.att) + len(e.k) + len(e.v) + len(e.g) + len(e.u)
	n += len(e.last) + len(e.logits) + len(e.cos) + len(e.sin) + len(e.p.apack)
	return 4 * int64(n)
}

// ErrBadStep is returned by Forward for inputs outside the engine's sizes.
var ErrBadStep = errors.New("native: bad forward step")

// Forward runs one step over a set of token rows. Row r carries token
// tokens[r] of the sequence in slot slots[r] at position pos[r]; its keys and
// values are written to the cache at that position, and it attends to the
// cache positions 0..pos[r] of its slot. Rows of one slot must hold
// consecutive positions following what the cache already holds: a prefill is
// all of a prompt's rows, a decode step one row per sequence, and both can be
// mixed in one call. want lists the rows whose next-token logits are needed;
// the result holds len(want) rows of vocab logits, valid until the next call.
func (e *Engine) Forward(tokens []int32, slots, pos, want []int) ([]float32, error) {
	a, m := e.m.Arch, e.m
	n := len(tokens)
	if n == 0 || n > e.opt.MaxRows || len(slots) != n || len(pos) != n || len(want) > e.opt.Slots {
		return nil, fmt.Errorf("%w: %d rows (max %d), %d slots, %d positions, %d wanted (max %d)", ErrBadStep, n, e.opt.MaxRows, len(slots), len(pos), len(want), e.opt.Slots)
	}
	for r, t := range tokens {
		if t < 0 || int(t) >= a.VocabSize || slots[r] < 0 || slots[r] >= e.opt.Slots || pos[r] < 0 || pos[r] >= e.opt.MaxSeq {
			return nil, fmt.Errorf("%w: row %d: token %d, slot %d, position %d", ErrBadStep, r, t, slots[r], pos[r])
		}
	}
	for _, w := range want {
		if w < 0 || w >= n {
			return nil, fmt.Errorf("%w: wanted row %d of %d", ErrBadStep, w, n)
		}
	}
	h, hd, kvd, f := a.HiddenSize, m.HeadDim, e.kvDim, a.FFNSize
	qd := a.Heads * hd
	half := hd / 2
	for r, t := range tokens {
		copy(e.x[r*h:(r+1)*h], m.Embed[int(t)*h:(int(t)+1)*h])
	}
	e.units = e.units[:0]
	for r := 0; r < n; r++ {
		for hh := 0; hh < a.Heads; hh++ {
			e.units = append(e.units, attnUnit{r, hh})
		}
	}
	seqStride := e.opt.MaxSeq * kvd
	for li := range m.Layers {
		L, P := &m.Layers[li], &e.packed[li]
		kc, vc := e.kc[li], e.vc[li]
		rmsnorm(e.xn, e.x, L.AttnNorm, n, h, m.NormEps)
		e.p.matmul(e.q, e.xn, P.q, n)
		e.p.matmul(e.k, e.xn, P.k, n)
		e.p.matmul(e.v, e.xn, P.v, n)
		if L.BQ != nil { // Qwen2-style biases
			addBias(e.q, L.BQ, n)
			addBias(e.k, L.BK, n)
			addBias(e.v, L.BV, n)
		}
		for r := 0; r < n; r++ {
			c, s := e.cos[pos[r]*half:(pos[r]+1)*half], e.sin[pos[r]*half:(pos[r]+1)*half]
			rope(e.q[r*qd:(r+1)*qd], a.Heads, hd, c, s)
			rope(e.k[r*kvd:(r+1)*kvd], a.KVHeads, hd, c, s)
			off := slots[r]*seqStride + pos[r]*kvd
			copy(kc[off:off+kvd], e.k[r*kvd:(r+1)*kvd])
			copy(vc[off:off+kvd], e.v[r*kvd:(r+1)*kvd])
		}
		e.aj = attnJob{e: e, kc: kc, vc: vc, slots: slots, pos: pos}
		e.p.run(len(e.units), &e.aj)
		e.p.matmul(e.xn, e.att, P.o, n)
		if L.BO != nil {
			addBias(e.xn, L.BO, n)
		}
		add(e.x[:n*h], e.xn[:n*h])
		rmsnorm(e.xn, e.x, L.MLPNorm, n, h, m.NormEps)
		e.p.matmul(e.g, e.xn, P.gate, n)
		e.p.matmul(e.u, e.xn, P.up, n)
		swiglu(e.g[:n*f], e.u[:n*f])
		e.p.matmul(e.xn, e.g, P.down, n)
		add(e.x[:n*h], e.xn[:n*h])
	}
	for i, r := range want {
		rmsnorm(e.last[i*h:(i+1)*h], e.x[r*h:(r+1)*h], m.Norm, 1, h, m.NormEps)
	}
	e.p.matmul(e.logits, e.last, e.lmHead, len(want))
	e.fwdRows += n
	return e.logits[:len(want)*a.VocabSize], nil
}

// attnJob is one layer's attention over the step's (row, head) units.
type attnJob struct {
	e          *Engine
	kc, vc     []float32
	slots, pos []int
}

func (j *attnJob) do(w, lo, hi int) {
	e := j.e
	a := e.m.Arch
	hd, kvd := e.m.HeadDim, e.kvDim
	qd, group, seqStride := a.Heads*hd, a.Heads/a.KVHeads, e.opt.MaxSeq*kvd
	sc := e.scores[w]
	for _, u := range e.units[lo:hi] {
		base := j.slots[u.row]*seqStride + (u.head/group)*hd
		o := u.row*qd + u.head*hd
		attendOne(e.att[o:], e.q[o:], j.kc[base:], j.vc[base:], j.pos[u.row]+1, hd, kvd, sc)
	}
}

func add(x, y []float32) {
	y = y[:len(x)]
	for i := range x {
		x[i] += y[i]
	}
}

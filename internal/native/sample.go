package native

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
)

// Decoding is how the next token is chosen from the logits. The zero value
// is not meaningful; build one from the config's decoder section.
type Decoding struct {
	Greedy            bool    // argmax; the other fields but RepetitionPenalty are ignored
	Temperature       float64 // > 0 when sampling
	TopK              int     // 0 = off
	TopP              float64 // 1 = off
	MinP              float64 // 0 = off
	RepetitionPenalty float64 // 1 = off; Hugging Face's rule (divide positive logits, multiply negative)
	MinNewTokens      int     // EOS cannot be chosen before this many tokens (0 = off)
}

// Check reports a decoding the sampler cannot honour.
func (d Decoding) Check() error {
	switch {
	case !d.Greedy && !(d.Temperature > 0):
		return fmt.Errorf("decoder.temperature: %g, want > 0 when sampling", d.Temperature)
	case d.TopK < 0:
		return fmt.Errorf("decoder.top_k: %d, want ≥ 0", d.TopK)
	case !(d.TopP > 0 && d.TopP <= 1):
		return fmt.Errorf("decoder.top_p: %g, want in (0, 1]", d.TopP)
	case !(d.MinP >= 0 && d.MinP <= 1):
		return fmt.Errorf("decoder.min_p: %g, want in [0, 1]", d.MinP)
	case !(d.RepetitionPenalty > 0):
		return fmt.Errorf("decoder.repetition_penalty: %g, want > 0", d.RepetitionPenalty)
	case d.MinNewTokens < 0:
		return fmt.Errorf("decoder.min_new_tokens: %d, want ≥ 0", d.MinNewTokens)
	}
	return nil
}

// sampler chooses tokens for one slot. Its random stream is reseeded per
// request, so a request's tokens depend on its seed only, not on which batch
// or slot it ran in.
type sampler struct {
	pcg   rand.PCG
	rng   *rand.Rand
	seen  []uint64 // bitset of the ids in the sequence, for the repetition penalty
	idx   []int32  // candidate ids
	probs []float64
}

func newSampler(vocab int) *sampler {
	s := &sampler{seen: make([]uint64, (vocab+63)/64), idx: make([]int32, vocab), probs: make([]float64, vocab)}
	s.rng = rand.New(&s.pcg)
	return s
}

func (s *sampler) reset(seed uint64) {
	s.pcg.Seed(seed, 0x853c49e6748fea9b)
	clear(s.seen)
}

func (s *sampler) see(id int32) { s.seen[id>>6] |= 1 << (uint(id) & 63) }

// before reports whether id a ranks before id b: higher logit, then lower id.
func before(l []float32, a, b int32) bool {
	return l[a] > l[b] || (l[a] == l[b] && a < b)
}

// next picks a token from logits (which it modifies).
func (s *sampler) next(l []float32, d Decoding) int32 {
	if d.RepetitionPenalty != 1 {
		s.penalize(l, float32(d.RepetitionPenalty))
	}
	if d.Greedy {
		return argmax(l)
	}
	v := len(l)
	k := v
	if d.TopK > 0 && d.TopK < v {
		k = d.TopK
	}
	idx := s.idx[:0]
	if k < v || d.TopP < 1 || d.MinP > 0 {
		idx = topK(l, s.idx, k)
	} else {
		for i := range l {
			idx = append(idx, int32(i))
		}
	}
	mx := l[idx[0]]
	for _, i := range idx {
		mx = max(mx, l[i])
	}
	inv := 1 / d.Temperature
	probs := s.probs[:len(idx)]
	var sum float64
	for j, i := range idx {
		p := math.Exp(float64(l[i]-mx) * inv)
		probs[j] = p
		sum += p
	}
	n := len(idx)
	if d.TopP < 1 { // idx is sorted: keep the smallest prefix reaching top_p
		var c float64
		for j := range n {
			c += probs[j] / sum
			if c >= d.TopP {
				n = j + 1
				break
			}
		}
	}
	if d.MinP > 0 { // probs[0] is the largest
		floor := d.MinP * probs[0]
		m := 1
		for m < n && probs[m] >= floor {
			m++
		}
		n = m
	}
	sum = 0
	for _, p := range probs[:n] {
		sum += p
	}
	u := s.rng.Float64() * sum
	for j, p := range probs[:n] {
		u -= p
		if u < 0 {
			return idx[j]
		}
	}
	return idx[n-1]
}

// penalize divides the positive logits of the tokens seen so far by p and
// multiplies their negative ones by it.
func (s *sampler) penalize(l []float32, p float32) {
	for w, set := range s.seen {
		for set != 0 {
			i := w*64 + trailingZeros(set)
			set &= set - 1
			if l[i] > 0 {
				l[i] /= p
			} else {
				l[i] *= p
			}
		}
	}
}

// argmax is the first id of the highest logit.
func argmax(l []float32) int32 {
	best := int32(0)
	for i := range l {
		if l[i] > l[best] {
			best = int32(i)
		}
	}
	return best
}

// topK puts the k best ids of l, best first, into buf[:k]: a min-heap of the
// k best so far (root = the worst of them), then heap-sorted.
func topK(l []float32, buf []int32, k int) []int32 {
	h := buf[:0]
	worse := func(a, b int32) bool { return before(l, b, a) } // a ranks after b
	down := func(h []int32, i int) {
		for {
			c := 2*i + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && worse(h[c+1], h[c]) {
				c++
			}
			if !worse(h[c], h[i]) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := range l {
		id := int32(i)
		if len(h) < k {
			h = append(h, id)
			for j := len(h) - 1; j > 0; { // sift up
				p := (j - 1) / 2
				if !worse(h[j], h[p]) {
					break
				}
				h[j], h[p] = h[p], h[j]
				j = p
			}
		} else if before(l, id, h[0]) {
			h[0] = id
			down(h, 0)
		}
	}
	for n := len(h) - 1; n > 0; n-- { // pop the worst to the end: best first
		h[0], h[n] = h[n], h[0]
		down(h[:n], 0)
	}
	return h
}

func trailingZeros(x uint64) int { return bits.TrailingZeros64(x) }

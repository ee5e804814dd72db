package native

import (
	"math"
	"sort"
)

// Sampler chooses the tokens of one sequence, for callers that drive
// Engine.Forward themselves (a server that steps many sequences together,
// each joining and leaving the batch on its own). It is the generator's
// per-slot sampler: a sequence's tokens depend on its seed, its prompt and
// the logits, never on the sequences it shared a step with.
type Sampler struct{ s *sampler }

// NewSampler returns a sampler for a vocabulary of vocab ids.
func NewSampler(vocab int) *Sampler { return &Sampler{s: newSampler(vocab)} }

// Reset starts a new sequence: reseeds the random stream and forgets the
// tokens seen (the repetition penalty's set).
func (s *Sampler) Reset(seed uint64) { s.s.reset(seed) }

// See records a token of the sequence (prompt or output) for the
// repetition penalty; ids outside the vocabulary are ignored.
func (s *Sampler) See(id int32) {
	if id >= 0 && int(id) < len(s.s.seen)*64 {
		s.s.see(id)
	}
}

// Next picks the next token from logits, which it modifies (repetition
// penalty, and EOS masked while fewer than d.MinNewTokens tokens were made),
// and records it as seen. made is the number of tokens generated so far.
func (s *Sampler) Next(logits []float32, d Decoding, made int) int32 {
	if made < d.MinNewTokens {
		logits[EOS] = float32(math.Inf(-1))
	}
	t := s.s.next(logits, d)
	s.s.see(t)
	return t
}

// TokenLogprob is a token id and its log-probability.
type TokenLogprob struct {
	ID      int32
	Logprob float64
}

// Logprobs returns the log-probability of id under the softmax of logits
// (the model's raw distribution, before any penalty or temperature, as
// OpenAI-style servers report it), and the top n ids by log-probability,
// best first (ties: lower id first), appended to top[:0]. Computed in
// float64 so that the figures do not depend on summation order.
func Logprobs(logits []float32, id int32, n int, top []TokenLogprob) (float64, []TokenLogprob) {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = max(mx, float64(l))
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - mx)
	}
	lse := mx + math.Log(sum)
	top = top[:0]
	if n > 0 {
		for i, l := range logits {
			top = append(top, TokenLogprob{ID: int32(i), Logprob: float64(l) - lse})
		}
		sort.Slice(top, func(a, b int) bool {
			if top[a].Logprob != top[b].Logprob {
				return top[a].Logprob > top[b].Logprob
			}
			return top[a].ID < top[b].ID
		})
		top = top[:min(n, len(top))]
	}
	return float64(logits[id]) - lse, top
}

// KVBytesPerToken is the KV-cache memory one position of one sequence takes
// (keys and values of every layer, float32).
func KVBytesPerToken(m *Model) int64 {
	return 2 * 4 * int64(m.Arch.Layers) * int64(m.Arch.KVHeads) * int64(m.HeadDim)
}

package native

// The byte-level tokenizer of the synthetic models.
//
// Id 0 is end of sequence (and stands for an empty prompt). Every other id
// is a byte: id ↦ byte (id−1) mod 256, so every id of any vocabulary decodes
// to something and a model's output is always text. Byte b has the ids
// 1 + b + 256·j for every j that fits in the vocabulary ("banks"); the
// encoder picks the bank from the two bytes before it, j = (p₁ + 256·p₂) mod
// n_b where n_b is the number of banks of b. The same byte thus gets
// different ids in different contexts — a crude stand-in for byte-pair
// merges — and every id of the vocabulary is reachable from some text, so
// the embedding and LM-head rows are all exercised. One token per byte:
// a prompt of n bytes is n tokens, which is how max_input_tokens truncates.

// EOS is the end-of-sequence id.
const EOS int32 = 0

// MinVocab is the smallest vocabulary the tokenizer can map: EOS plus one id
// per byte value.
const MinVocab = 257

// Tokenizer maps bytes to ids of a vocabulary of a given size.
type Tokenizer struct{ vocab int }

// NewTokenizer returns the tokenizer for a vocabulary of n ids (n ≥ MinVocab).
func NewTokenizer(n int) Tokenizer { return Tokenizer{vocab: n} }

// banks is the number of ids of byte b.
func (t Tokenizer) banks(b byte) int { return (t.vocab-2-int(b))/256 + 1 }

// Encode appends the ids of s to dst, at most limit of them (limit < 0: no
// limit); an empty s encodes to [EOS] so that every prompt has a token.
func (t Tokenizer) Encode(dst []int32, s string, limit int) []int32 {
	if limit < 0 || limit > len(s) {
		limit = len(s)
	}
	if limit == 0 {
		return append(dst, EOS)
	}
	var p1, p2 int
	for i := 0; i < limit; i++ {
		b := s[i]
		j := (p1 + 256*p2) % t.banks(b)
		dst = append(dst, int32(1+int(b)+256*j))
		p1, p2 = int(b), p1
	}
	return dst
}

// Decode appends the bytes of ids to dst; EOS decodes to nothing.
func (t Tokenizer) Decode(dst []byte, ids []int32) []byte {
	for _, id := range ids {
		if id > 0 {
			dst = append(dst, byte((id-1)%256))
		}
	}
	return dst
}

// Package tokenizer reads Hugging Face tokenizer.json files of the BPE kind
// and encodes text to token ids and ids back to text, as the tokenizers
// library does for the models the native engine runs:
//
//   - byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM): the text is split by
//     the pre-tokenizer's pattern, each piece's UTF-8 bytes are mapped to
//     printable characters (GPT-2's bytes_to_unicode) and merged;
//   - SentencePiece-style BPE (Llama 2, Mistral): spaces become "▁", a "▁"
//     is prepended, and characters missing from the vocabulary fall back to
//     their bytes, tokens <0x00>…<0xFF>.
//
// Added tokens (<s>, <|endoftext|>, ...) are matched literally before any
// of that. Anything the package does not implement (other model types,
// normalizers, split patterns) is refused when the file is loaded, with the
// field named, so that no prompt is silently tokenised differently from
// what the model was trained on.
package tokenizer

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// Tokenizer is a loaded tokenizer.json. It is safe for concurrent use.
type Tokenizer struct {
	vocab        map[string]int32
	pieces       []string // id → token text ("" where the id is unused)
	special      []bool   // id → an added special token (skipped by Decode)
	merges       map[[2]int32]merge
	added        []string // added tokens, longest first, for literal matching
	split        splitter // byte-level pre-tokenizer split; nil: whole text
	digits       int      // a Digits pre-tokenizer before it: digitsIndividual, digitsContiguous
	byteLevel    bool
	prefixSpace  bool // byte level: add a space in front of the text
	metaspace    bool // SentencePiece style: " " → "▁"
	prependMeta  bool // and a "▁" in front
	prependFirst bool // only in front of the text, not after an added token
	byteFallback bool
	ignoreMerges bool // a piece that is a token is not merged (Llama 3)
	nfc          bool
	unk          int32 // -1: none
	bytes        [256]int32
	bos          []int32 // ids the post-processor puts in front
}

type merge struct {
	rank int
	id   int32
}

// Size is the number of ids (one more than the largest).
func (t *Tokenizer) Size() int { return len(t.pieces) }

// ID returns the id of a token's text.
func (t *Tokenizer) ID(token string) (int32, bool) {
	id, ok := t.vocab[token]
	return id, ok
}

// Encode returns the ids of text, with the post-processor's prefix (a BOS
// token for Llama-style tokenizers) in front.
func (t *Tokenizer) Encode(text string) []int32 {
	ids := append([]int32(nil), t.bos...)
	for start := true; len(text) > 0; start = false {
		i, tok := t.nextAdded(text)
		ids = t.encodeText(ids, text[:i], start && i > 0)
		if tok == "" {
			break
		}
		ids = append(ids, t.vocab[tok])
		text = text[i+len(tok):]
	}
	return ids
}

// nextAdded finds the first added token in s: its byte offset and text, or
// len(s) and "".
func (t *Tokenizer) nextAdded(s string) (int, string) {
	best, tok := len(s), ""
	for _, a := range t.added { // longest first: the longest wins at a position
		if i := strings.Index(s[:min(len(s), best+len(a))], a); i >= 0 && i < best {
			best, tok = i, a
		}
	}
	return best, tok
}

// encodeText encodes text that holds no added token.
// atStart says that text begins the input (for prepend_scheme "first").
func (t *Tokenizer) encodeText(ids []int32, text string, atStart bool) []int32 {
	if text == "" {
		return ids
	}
	if t.nfc {
		text = nfc(text)
	}
	if t.metaspace {
		text = strings.ReplaceAll(text, " ", "▁")
		if t.prependMeta && (atStart || !t.prependFirst) {
			text = "▁" + text
		}
		return t.bpe(ids, text)
	}
	if t.prefixSpace && text[0] != ' ' {
		text = " " + text
	}
	words := []string{text}
	if t.digits != 0 {
		words = splitDigits(text, t.digits == digitsIndividual)
	}
	if t.split != nil {
		var all []string
		for _, w := range words {
			all = append(all, t.split(w)...)
		}
		words = all
	}
	var b strings.Builder
	for _, w := range words {
		b.Reset()
		for i := 0; i < len(w); i++ {
			b.WriteRune(byteToRune[w[i]])
		}
		ids = t.bpe(ids, b.String())
	}
	return ids
}

// bpe appends the ids of one word: its characters (or their bytes, where
// the vocabulary lacks them) merged pair by pair, the lowest-ranked pair
// first and the leftmost among equals, until no pair of neighbours merges.
func (t *Tokenizer) bpe(ids []int32, word string) []int32 {
	if id, ok := t.vocab[word]; ok && t.ignoreMerges {
		return append(ids, id)
	}
	syms := make([]int32, 0, len(word))
	for _, r := range word {
		s := string(r)
		if id, ok := t.vocab[s]; ok {
			syms = append(syms, id)
			continue
		}
		if t.byteFallback {
			for i := 0; i < len(s); i++ {
				syms = append(syms, t.bytes[s[i]])
			}
			continue
		}
		if t.unk >= 0 && (len(syms) == 0 || syms[len(syms)-1] != t.unk) { // fuse_unk
			syms = append(syms, t.unk)
		}
	}
	for len(syms) > 1 {
		best, at := merge{rank: -1}, -1
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := t.merges[[2]int32{syms[i], syms[i+1]}]; ok && (at < 0 || m.rank < best.rank) {
				best, at = m, i
			}
		}
		if at < 0 {
			break
		}
		syms[at] = best.id
		syms = append(syms[:at+1], syms[at+2:]...)
	}
	return append(ids, syms...)
}

// Decode returns the text of ids; special tokens and ids outside the
// vocabulary decode to nothing, bytes that are not UTF-8 to U+FFFD.
func (t *Tokenizer) Decode(ids []int32) string {
	var raw []byte
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.pieces) || t.special[id] {
			continue
		}
		p := t.pieces[id]
		switch {
		case t.byteLevel:
			for _, r := range p {
				if b, ok := runeToByte[r]; ok {
					raw = append(raw, b)
				} else {
					raw = utf8.AppendRune(raw, r)
				}
			}
		case len(p) == 6 && strings.HasPrefix(p, "<0x") && p[5] == '>' && t.byteFallback:
			raw = append(raw, hexByte(p[3:5]))
		default:
			raw = append(raw, strings.ReplaceAll(p, "▁", " ")...)
		}
	}
	s := strings.ToValidUTF8(string(raw), "\uFFFD")
	if t.metaspace && t.prependMeta {
		s = strings.TrimPrefix(s, " ")
	}
	return s
}

// Digits pre-tokenizer modes.
const (
	digitsIndividual = 1 + iota
	digitsContiguous
)

// splitDigits cuts ASCII digits out of s: each alone, or runs of them.
func splitDigits(s string, individual bool) []string {
	var out []string
	for len(s) > 0 {
		n := 0
		isDigit := s[0] >= '0' && s[0] <= '9'
		for n < len(s) && (s[n] >= '0' && s[n] <= '9') == isDigit && !(isDigit && individual && n == 1) {
			n++
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func hexByte(h string) byte {
	var b byte
	for i := 0; i < 2; i++ {
		c := h[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		}
		b = b<<4 | c
	}
	return b
}

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others
// (control characters, space, some Latin-1) to U+0100 onwards, in order.
var byteToRune [256]rune
var runeToByte = map[rune]byte{}

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// sortAdded orders added tokens longest first.
func sortAdded(a []string) {
	sort.SliceStable(a, func(i, j int) bool { return len(a[i]) > len(a[j]) })
}

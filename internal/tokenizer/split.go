package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The pre-tokenizer regexes of byte-level BPE tokenizers use lookahead
// (\s+(?!\S)) and case-insensitive groups, which Go's regexp cannot express,
// so the patterns known to be in use are scanners written by hand, each
// following the regex's leftmost-alternative, greedy semantics. A
// tokenizer.json with any other pattern is refused rather than split wrong.

// splitter cuts text into the pieces BPE then works on one at a time.
type splitter func(text string) []string

// Patterns as they appear in tokenizer.json files.
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// splitterFor returns the scanner of a known pattern.
func splitterFor(pattern string) (splitter, bool) {
	switch pattern {
	case gpt2Pattern:
		return func(s string) []string { return scan(s, gpt2Match) }, true
	case llama3Pattern:
		return func(s string) []string { return scan(s, func(s string) int { return cl100kMatch(s, 3) }) }, true
	case qwen2Pattern:
		return func(s string) []string { return scan(s, func(s string) int { return cl100kMatch(s, 1) }) }, true
	}
	return nil, false
}

// scan cuts s into consecutive matches; match returns the byte length of
// the match at the start of its argument (> 0 for non-empty input).
func scan(s string, match func(string) int) []string {
	var out []string
	for len(s) > 0 {
		n := match(s)
		if n <= 0 { // cannot happen: the last alternative matches any rune
			_, n = utf8.DecodeRuneInString(s)
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func isL(r rune) bool  { return unicode.IsLetter(r) }
func isN(r rune) bool  { return unicode.IsNumber(r) }
func isWS(r rune) bool { return unicode.IsSpace(r) }

// run is the byte length of the longest prefix of s whose runes satisfy f,
// at most max runes (max < 0: no limit).
func run(s string, f func(rune) bool, max int) int {
	n := 0
	for i, r := range s {
		if max == 0 || !f(r) {
			return i
		}
		max--
		n = i + utf8.RuneLen(r)
	}
	return n
}

func first(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

var contractions = []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

func contraction(s string, fold bool) int {
	for _, c := range contractions {
		if len(s) >= len(c) && (s[:len(c)] == c || fold && strings.EqualFold(s[:len(c)], c)) {
			return len(c)
		}
	}
	return 0
}

// optSpace matches " ?" followed by a non-empty run of f.
func optSpace(s string, f func(rune) bool) int {
	sp := 0
	if s[0] == ' ' {
		sp = 1
	}
	if n := run(s[sp:], f, -1); n > 0 {
		return sp + n
	}
	return 0
}

func notLNS(r rune) bool { return !isWS(r) && !isL(r) && !isN(r) }

// spaces matches \s+(?!\S)|\s+: a whitespace run, less its last rune when
// a non-space follows and the run has more than one rune.
func spaces(s string) int {
	n := run(s, isWS, -1)
	if n == 0 {
		return 0
	}
	if n < len(s) {
		_, last := utf8.DecodeLastRuneInString(s[:n])
		if n-last > 0 {
			return n - last
		}
	}
	return n
}

func gpt2Match(s string) int {
	if n := contraction(s, false); n > 0 {
		return n
	}
	for _, f := range []func(rune) bool{isL, isN, notLNS} {
		if n := optSpace(s, f); n > 0 {
			return n
		}
	}
	if n := spaces(s); n > 0 {
		return n
	}
	_, n := utf8.DecodeRuneInString(s)
	return n
}

func isCRLF(r rune) bool { return r == '\r' || r == '\n' }

// cl100kMatch follows the Llama 3 pattern (digits groups of up to 3) and
// Qwen2's (single digits).
func cl100kMatch(s string, digits int) int {
	if n := contraction(s, true); n > 0 {
		return n
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if r := first(s); !isCRLF(r) && !isL(r) && !isN(r) {
		k := utf8.RuneLen(r)
		if n := run(s[k:], isL, -1); n > 0 {
			return k + n
		}
	}
	if n := run(s, isL, -1); n > 0 {
		return n
	}
	if n := run(s, isN, digits); n > 0 {
		return n
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	if n := optSpace(s, notLNS); n > 0 {
		return n + run(s[n:], isCRLF, -1)
	}
	// \s*[\r\n]+: up to and including the last newline of the whitespace run
	ws := run(s, isWS, -1)
	if i := strings.LastIndexAny(s[:ws], "\r\n"); i >= 0 {
		return i + 1
	}
	if n := spaces(s); n > 0 {
		return n
	}
	_, n := utf8.DecodeRuneInString(s)
	return n
}

package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Splits worked out by hand from the patterns' regex semantics (leftmost
// alternative, greedy, \s+(?!\S) leaving the last space to the next word).
func TestSplitPatterns(t *testing.T) {
	for _, c := range []struct {
		pattern, in string
		want        []string
	}{
		{gpt2Pattern, "Hello world", []string{"Hello", " world"}},
		{gpt2Pattern, "Hello,   world!!", []string{"Hello", ",", "  ", " world", "!!"}},
		{gpt2Pattern, "I'm don't 'LL", []string{"I", "'m", " don", "'t", " '", "LL"}},
		{gpt2Pattern, "a1234 x\n\ny ", []string{"a", "1234", " x", "\n", "\n", "y", " "}},
		{gpt2Pattern, " \tnaïve 日本", []string{" ", "\t", "naïve", " 日本"}},
		{llama3Pattern, "Hello world", []string{"Hello", " world"}},
		{llama3Pattern, "I'M 12345 ok", []string{"I", "'M", " ", "123", "45", " ok"}},
		{llama3Pattern, "x  \n\n  y", []string{"x", "  \n\n", " ", " y"}},
		{llama3Pattern, "(hello) ...\n", []string{"(hello", ")", " ...\n"}},
		{llama3Pattern, "end   ", []string{"end", "   "}},
		{qwen2Pattern, "12345", []string{"1", "2", "3", "4", "5"}},
	} {
		s, _ := splitterFor(c.pattern)
		if got := s(c.in); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

// gpt2JSON builds a tokenizer.json with GPT-2's pre-tokenizer, its 256 byte
// tokens at GPT-2's ids (0–255, in bytes_to_unicode order) and a few merges
// whose results carry GPT-2's real ids; intermediate merges get free ids.
func gpt2JSON(t *testing.T) []byte {
	vocab := map[string]int32{}
	order := 0
	for _, r := range []struct{ lo, hi int }{{'!', '~'}, {0xA1, 0xAC}, {0xAE, 0xFF}} {
		for b := r.lo; b <= r.hi; b++ {
			vocab[string(rune(b))] = int32(order)
			order++
		}
	}
	for b := 0; b < 256; b++ {
		if _, ok := vocab[string(byteToRune[b])]; !ok {
			vocab[string(byteToRune[b])] = int32(order)
			order++
		}
	}
	final := map[string]int32{"Hello": 15496, "Ġworld": 995, "Ġthe": 262, "The": 464, "ĠHello": 18435, "ĊĊ": 628}
	merges := [][2]string{{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"T", "he"}, {"l", "l"}, {"H", "e"}, {"He", "ll"}, {"Hell", "o"},
		{"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}, {"l", "d"}, {"Ġwor", "ld"}, {"Ġ", "Hello"}, {"Ċ", "Ċ"}}
	next := int32(60000)
	for _, m := range merges {
		tok := m[0] + m[1]
		if id, ok := final[tok]; ok {
			vocab[tok] = id
		} else {
			vocab[tok], next = next, next+1
		}
	}
	f := map[string]any{
		"added_tokens":   []map[string]any{{"id": 50256, "content": "<|endoftext|>", "special": true}},
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "ByteLevel", "trim_offsets": false},
		"model":          map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Known GPT-2 encodings (ids from GPT-2's vocabulary).
func TestGPT2Encodings(t *testing.T) {
	tok, err := Parse(gpt2JSON(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   string
		want []int32
	}{
		{"Hello world", []int32{15496, 995}},
		{"Hello, world!", []int32{15496, 11, 995, 0}},
		{"The the", []int32{464, 262}},
		{" Hello", []int32{18435}},
		{"\n\n", []int32{628}},
		{"a b", []int32{64, 220, 65}},
		{"Hello<|endoftext|>", []int32{15496, 50256}},
	} {
		got := tok.Encode(c.in)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%q: got %v, want %v", c.in, got, c.want)
		}
		if d := tok.Decode(got); d != strings.ReplaceAll(c.in, "<|endoftext|>", "") {
			t.Errorf("decode %v: %q, want %q", got, d, c.in)
		}
	}
	// Bytes of characters with no merges here: é is C3 A9, Ã (106 + 0xC3 − 0xAE)
	// and © (94 + 0xA9 − 0xA1) in GPT-2's byte order.
	if got := tok.Encode("é"); fmt.Sprint(got) != "[127 102]" {
		t.Errorf("é: %v, want [127 102] (Ã ©)", got)
	}
	if d := tok.Decode([]int32{127}); d != "\uFFFD" {
		t.Errorf("half a UTF-8 sequence decodes to %q, want U+FFFD", d)
	}
}

// SmolLM's pre-tokenizer: Digits then ByteLevel's GPT-2 split. Merges of
// "c"+"1" and "1"+"2" exist; neither may cross a digit boundary, and "12"
// forms only with contiguous digits.
func TestDigitsThenByteLevel(t *testing.T) {
	vocab := map[string]int32{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToRune[b])] = int32(b)
	}
	vocab["c1"], vocab["12"] = 300, 301
	for _, c := range []struct {
		individual bool
		want       string
	}{{true, "[97 98 99 49 50 32 51]"}, {false, "[97 98 99 301 32 51]"}} {
		b, _ := json.Marshal(map[string]any{
			"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Digits", "individual_digits": c.individual},
				map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}}},
			"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"c 1", "1 2"}},
		})
		tok, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		in := "abc12 3"
		if got := fmt.Sprint(tok.Encode(in)); got != c.want {
			t.Errorf("individual_digits %v: %q → %s, want %s", c.individual, in, got, c.want)
		}
		if d := tok.Decode(tok.Encode(in)); d != in {
			t.Errorf("%q round trip: %q", in, d)
		}
	}
}

func TestRefused(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"model":{"type":"Unigram"}}`, "model.type"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\w+"},"behavior":"Isolated"}}`, "pattern"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]},"pre_tokenizer":{"type":"ByteLevel"}}`, "merges[0]"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[],"byte_fallback":true},"pre_tokenizer":{"type":"Metaspace","replacement":"▁"}}`, "<0x00>"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"normalizer":{"type":"NFKC"},"pre_tokenizer":{"type":"ByteLevel"}}`, "NFKC"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`, "neither byte-level"},
	} {
		if _, err := Parse([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.json, err, c.want)
		}
	}
}

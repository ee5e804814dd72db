package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/text/unicode/norm"
)

func nfc(s string) string { return norm.NFC.String(s) }

// file is the part of tokenizer.json the package reads.
type file struct {
	AddedTokens []struct {
		ID      int32  `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    *component `json:"normalizer"`
	PreTokenizer  *component `json:"pre_tokenizer"`
	PostProcessor *component `json:"post_processor"`
	Model         struct {
		Type                    string           `json:"type"`
		Vocab                   map[string]int32 `json:"vocab"`
		Merges                  json.RawMessage  `json:"merges"`
		UnkToken                *string          `json:"unk_token"`
		ByteFallback            bool             `json:"byte_fallback"`
		IgnoreMerges            bool             `json:"ignore_merges"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
		Dropout                 *float64         `json:"dropout"`
	} `json:"model"`
}

// component is a normalizer, pre-tokenizer or post-processor: a type and
// its fields, possibly a sequence of components.
type component struct {
	Type           string       `json:"type"`
	Normalizers    []*component `json:"normalizers"`
	Pretokenizers  []*component `json:"pretokenizers"`
	Processors     []*component `json:"processors"`
	Pattern        *pattern     `json:"pattern"`
	Content        string       `json:"content"`
	Prepend        string       `json:"prepend"`
	Replacement    string       `json:"replacement"`
	PrependScheme  string       `json:"prepend_scheme"`
	AddPrefixSpace *bool        `json:"add_prefix_space"`
	UseRegex       *bool        `json:"use_regex"`
	Behavior       string       `json:"behavior"`
	Invert         bool         `json:"invert"`
	Split          *bool        `json:"split"`
	Individual     bool         `json:"individual_digits"`
	Single         []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
}

type pattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// Load reads a tokenizer.json.
func Load(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse reads the contents of a tokenizer.json.
func Parse(b []byte) (*Tokenizer, error) {
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %v", err)
	}
	m := &f.Model
	switch {
	case m.Type != "BPE":
		return nil, fmt.Errorf("model.type %q: only BPE tokenizers are supported", m.Type)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" || m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, fmt.Errorf("model: continuing_subword_prefix/end_of_word_suffix are not supported")
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, fmt.Errorf("model.dropout %g: BPE dropout is not supported", *m.Dropout)
	}
	t := &Tokenizer{vocab: m.Vocab, byteFallback: m.ByteFallback, ignoreMerges: m.IgnoreMerges, unk: -1}
	if err := t.buildVocab(&f); err != nil {
		return nil, err
	}
	if err := t.buildMerges(m.Merges); err != nil {
		return nil, err
	}
	if err := t.normalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if err := t.preTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if t.byteLevel == t.metaspace {
		return nil, fmt.Errorf("pre_tokenizer/normalizer: neither byte-level nor SentencePiece-style (▁ for spaces); not supported")
	}
	if err := t.postProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tokenizer) buildVocab(f *file) error {
	for _, a := range f.AddedTokens {
		if a.ID < 0 {
			return fmt.Errorf("added_tokens: %q has id %d", a.Content, a.ID)
		}
		if t.vocab == nil {
			t.vocab = map[string]int32{}
		}
		t.vocab[a.Content] = a.ID
		if a.Content != "" {
			t.added = append(t.added, a.Content)
		}
	}
	sortAdded(t.added)
	n := int32(0)
	for tok, id := range t.vocab {
		if id < 0 || id > 1<<24 {
			return fmt.Errorf("model.vocab: %q has id %d", tok, id)
		}
		n = max(n, id+1)
	}
	t.pieces, t.special = make([]string, n), make([]bool, n)
	for tok, id := range t.vocab {
		t.pieces[id] = tok
	}
	for _, a := range f.AddedTokens {
		t.special[a.ID] = a.Special
	}
	if u := f.Model.UnkToken; u != nil {
		id, ok := t.vocab[*u]
		if !ok {
			return fmt.Errorf("model.unk_token %q is not in the vocabulary", *u)
		}
		t.unk = id
	}
	if t.byteFallback {
		for b := 0; b < 256; b++ {
			id, ok := t.vocab[fmt.Sprintf("<0x%02X>", b)]
			if !ok {
				return fmt.Errorf("model.byte_fallback: no token <0x%02X> in the vocabulary", b)
			}
			t.bytes[b] = id
		}
	}
	return nil
}

// buildMerges reads merges as "a b" strings (older files) or [a, b] pairs.
func (t *Tokenizer) buildMerges(raw json.RawMessage) error {
	var pairs [][2]string
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return fmt.Errorf("model.merges[%d]: %q is not two tokens", i, s)
			}
			pairs = append(pairs, [2]string{a, b})
		}
	} else if err := json.Unmarshal(raw, &pairs); err != nil {
		return fmt.Errorf("model.merges: %v", err)
	}
	t.merges = make(map[[2]int32]merge, len(pairs))
	for i, p := range pairs {
		a, okA := t.vocab[p[0]]
		b, okB := t.vocab[p[1]]
		c, okC := t.vocab[p[0]+p[1]]
		if !okA || !okB || !okC {
			return fmt.Errorf("model.merges[%d]: %q + %q: a token or the merge is not in the vocabulary", i, p[0], p[1])
		}
		if _, dup := t.merges[[2]int32{a, b}]; !dup { // the first (best) rank counts
			t.merges[[2]int32{a, b}] = merge{rank: i, id: c}
		}
	}
	return nil
}

func (t *Tokenizer) normalizer(c *component) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "Sequence":
		for _, n := range c.Normalizers {
			if err := t.normalizer(n); err != nil {
				return err
			}
		}
	case "NFC":
		t.nfc = true
	case "Prepend":
		if c.Prepend != "▁" {
			return fmt.Errorf("normalizer Prepend %q: only ▁ is supported", c.Prepend)
		}
		t.prependMeta = true
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil || *c.Pattern.String != " " || c.Content != "▁" {
			return fmt.Errorf("normalizer Replace: only \" \" → \"▁\" is supported")
		}
		t.metaspace = true
	default:
		return fmt.Errorf("normalizer %q is not supported", c.Type)
	}
	return nil
}

func (t *Tokenizer) preTokenizer(c *component) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "Sequence":
		for _, p := range c.Pretokenizers {
			if err := t.preTokenizer(p); err != nil {
				return err
			}
		}
	case "ByteLevel":
		t.byteLevel = true
		t.prefixSpace = c.AddPrefixSpace != nil && *c.AddPrefixSpace
		if c.UseRegex == nil || *c.UseRegex {
			if t.split != nil {
				return fmt.Errorf("pre_tokenizer: a Split and ByteLevel's own regex both given; not supported")
			}
			t.split, _ = splitterFor(gpt2Pattern)
		}
	case "Split":
		if c.Pattern == nil || c.Pattern.Regex == nil || c.Behavior != "Isolated" || c.Invert {
			return fmt.Errorf("pre_tokenizer Split: only an Isolated regex split is supported")
		}
		s, ok := splitterFor(*c.Pattern.Regex)
		if !ok {
			return fmt.Errorf("pre_tokenizer Split: pattern %s is not one of the known ones (GPT-2, Llama 3, Qwen2)", strconv.Quote(*c.Pattern.Regex))
		}
		t.split = s
	case "Digits": // SmolLM: ASCII digits cut out before the byte-level split
		if t.split != nil {
			return fmt.Errorf("pre_tokenizer Digits after a split is not supported")
		}
		t.digits = digitsContiguous
		if c.Individual {
			t.digits = digitsIndividual
		}
	case "Metaspace":
		if c.Replacement != "▁" || c.Split != nil && *c.Split {
			return fmt.Errorf("pre_tokenizer Metaspace: only replacement ▁ without split is supported")
		}
		t.metaspace = true
		t.prependMeta = c.PrependScheme != "never"
		t.prependFirst = c.PrependScheme == "first"
	default:
		return fmt.Errorf("pre_tokenizer %q is not supported", c.Type)
	}
	return nil
}

// postProcessor reads the ids a TemplateProcessing puts before a single
// sequence (Llama's <s>, Llama 3's <|begin_of_text|>); ByteLevel
// post-processing changes only offsets.
func (t *Tokenizer) postProcessor(c *component) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "Sequence":
		for _, p := range c.Processors {
			if err := t.postProcessor(p); err != nil {
				return err
			}
		}
	case "ByteLevel":
	case "TemplateProcessing":
		for _, p := range c.Single {
			if p.Sequence != nil {
				return nil // what follows the text (an EOS) is not wanted for a prompt
			}
			if p.SpecialToken != nil {
				id, ok := t.vocab[p.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("post_processor: special token %q is not in the vocabulary", p.SpecialToken.ID)
				}
				t.bos = append(t.bos, id)
			}
		}
	default:
		return fmt.Errorf("post_processor %q is not supported", c.Type)
	}
	return nil
}

package nativeworker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	eng "github.com/llem/llem/internal/native"
	"github.com/llem/llem/internal/tokenizer"
)

// codec turns prompts into token ids and output ids into text: the
// checkpoint's own tokenizer.json where it has one, else the engine's
// byte-level stand-in (synthetic models, checkpoints without one).
type codec interface {
	// encode returns the ids of s, at most limit of them, and whether it cut.
	encode(s string, limit int) ([]int32, bool)
	decode(ids []int32) string
	name() string
}

type byteCodec struct{ t eng.Tokenizer }

func (c byteCodec) encode(s string, limit int) ([]int32, bool) {
	return c.t.Encode(make([]int32, 0, min(len(s), limit)), s, limit), len(s) > limit
}
func (c byteCodec) decode(ids []int32) string { return string(c.t.Decode(nil, ids)) }
func (c byteCodec) name() string              { return "byte-level" }

// hfCodec is a Hugging Face tokenizer.json. A prompt is cut to its first
// limit tokens (the BOS, if the tokenizer adds one, among them); an empty
// one, with no BOS either, becomes [eos] so that every prompt has a token.
type hfCodec struct {
	t    *tokenizer.Tokenizer
	eos  int32
	path string
}

func (c hfCodec) encode(s string, limit int) ([]int32, bool) {
	ids := c.t.Encode(s)
	if len(ids) == 0 {
		ids = append(ids, c.eos)
	}
	if len(ids) > limit {
		return ids[:limit], true
	}
	return ids, false
}
func (c hfCodec) decode(ids []int32) string { return c.t.Decode(ids) }
func (c hfCodec) name() string              { return c.path }

// codecFor picks the tokenizer for a model: dir/tokenizer.json where dir is
// the checkpoint directory ("" for a synthetic model) and the file exists.
func codecFor(dir string, m *eng.Model) (codec, error) {
	if dir == "" {
		return byteCodec{eng.NewTokenizer(m.Arch.VocabSize)}, nil
	}
	path := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return byteCodec{eng.NewTokenizer(m.Arch.VocabSize)}, nil
	}
	t, err := tokenizer.Load(path)
	if err != nil {
		return nil, err
	}
	if t.Size() > m.Arch.VocabSize {
		return nil, fmt.Errorf("%s: %d token ids, more than the model's vocab_size %d", path, t.Size(), m.Arch.VocabSize)
	}
	return hfCodec{t: t, eos: m.EOS, path: path}, nil
}

// encodePrompts tokenises the prompts, each cut to limit tokens; it returns
// them with how many were cut and the longest length.
func encodePrompts(c codec, texts []string, limit int) (prompts [][]int32, cut, longest int) {
	prompts, longest = make([][]int32, len(texts)), 1
	for i, p := range texts {
		var was bool
		prompts[i], was = c.encode(p, limit)
		if was {
			cut++
		}
		longest = max(longest, len(prompts[i]))
	}
	return prompts, cut, longest
}

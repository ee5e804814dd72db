// Package dataset resolves an experiment's prompts: from a JSONL file, from
// the aienergyscore set the user supplies in $LLEM_DATASETS, or from the
// built-in synthetic generator. llem-exec calls Load and writes the prompts
// into experiment.json, so every backend (the Python workers included) runs
// the same prompts in the same order. Truncation to max_input_tokens is left
// to each worker's tokenizer.
package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/llem/llem/internal/config"
)

// Limits against hostile or mistaken input.
const (
	MaxLineBytes    = 16 << 20 // one JSONL record
	MaxPromptBytes  = 1 << 20  // one synthetic prompt
	MaxPromptsTotal = 1 << 20  // records read from one file
)

// EnvDatasets names the directory holding datasets llem does not bundle.
const EnvDatasets = "LLEM_DATASETS"

// Text fields, in the order the first non-empty one is taken.
var TextFields = []string{"prompt", "text", "instruction", "input", "question"}

// Info says what Load did, for the user's log.
type Info struct {
	Source string // file path, or "synthetic"
	Read   int    // records read
	Blank  int    // blank lines skipped
	Meta   int    // records skipped for a "_"-prefixed key (provenance headers)
	NoText int    // records skipped for having none of TextFields as a non-empty string
}

// Load returns cfg.N prompts from cfg's dataset in cfg's dataset_order. A
// relative dataset path is resolved against baseDir (the directory of the
// study file). See LoadInfo.
func Load(cfg *config.Config, baseDir string) ([]string, error) {
	p, _, err := LoadInfo(cfg, baseDir)
	return p, err
}

// LoadInfo is Load, also saying what was read and skipped.
//
// JSONL rules: blank lines are skipped; a line that is not a JSON object is an
// error naming file:line (the original skipped them silently, which hides a
// broken file); a record with any key starting with "_" is skipped (the
// provenance header of a published set); a record with no text in any of
// TextFields is skipped and counted. Fewer usable records than n is an error.
func LoadInfo(cfg *config.Config, baseDir string) ([]string, Info, error) {
	n := cfg.N
	if n < 1 {
		return nil, Info{}, fmt.Errorf("dataset: n = %d, want ≥ 1", n)
	}
	var recs []record
	var info Info
	switch {
	case cfg.Dataset.Synthetic != nil:
		ps, err := Synthetic(*cfg.Dataset.Synthetic, n)
		if err != nil {
			return nil, Info{}, err
		}
		info = Info{Source: config.DatasetSynthetic, Read: n}
		recs = make([]record, n)
		for i, p := range ps {
			recs[i].text = p
		}
	default:
		path, err := Resolve(cfg.Dataset.Name, baseDir)
		if err != nil {
			return nil, Info{}, err
		}
		stop := 0
		if cfg.DatasetOrder == "interleaved" {
			stop = n // file order: no need to read past n records (as the original)
		}
		recs, info, err = readFile(path, stop)
		if err != nil {
			return nil, info, err
		}
		if len(recs) < n {
			return nil, info, fmt.Errorf("dataset %s: %d usable prompts, fewer than n = %d", path, len(recs), n)
		}
	}
	if err := order(recs, cfg.DatasetOrder, cfg.RandomSeed); err != nil {
		return nil, info, err
	}
	out := make([]string, n)
	for i := range out {
		out[i] = recs[i].text
	}
	return out, info, nil
}

// Resolve turns a dataset name into a file path: aienergyscore is looked up
// in $LLEM_DATASETS; anything else is a .jsonl path, relative ones against
// baseDir.
func Resolve(name, baseDir string) (string, error) {
	if name == config.DatasetAIEnergyScore {
		dir := os.Getenv(EnvDatasets)
		if dir == "" {
			return "", fmt.Errorf("dataset aienergyscore: $%s is not set; llem bundles no prompt text — put aienergyscore.jsonl (the AIEnergyScore text_generation prompts, one {\"prompt\": …} per line) in a directory and set %s to it", EnvDatasets, EnvDatasets)
		}
		p := filepath.Join(dir, "aienergyscore.jsonl")
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("dataset aienergyscore: %v ($%s=%s); llem bundles no prompt text — put aienergyscore.jsonl there", err, EnvDatasets, dir)
		}
		return p, nil
	}
	if !strings.HasSuffix(name, ".jsonl") {
		return "", fmt.Errorf("dataset %q: not a .jsonl file, %q or %q", name, config.DatasetSynthetic, config.DatasetAIEnergyScore)
	}
	if !filepath.IsAbs(name) && baseDir != "" {
		name = filepath.Join(baseDir, name)
	}
	return name, nil
}

// ReadFile returns every usable prompt of a JSONL file in file order, read
// by the rules of LoadInfo; for tools that cycle through a file instead of
// taking n prompts from it (llem-load).
func ReadFile(path string) ([]string, Info, error) {
	recs, info, err := readFile(path, 0)
	if err != nil {
		return nil, info, err
	}
	if len(recs) == 0 {
		return nil, info, fmt.Errorf("dataset %s: no usable prompts", path)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.text
	}
	return out, info, nil
}

type record struct {
	text   string
	source string
}

func readFile(path string, stop int) ([]record, Info, error) {
	info := Info{Source: path}
	f, err := os.Open(path)
	if err != nil {
		return nil, info, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var recs []record
	for line := 1; ; line++ {
		b, err := readLine(r)
		if errors.Is(err, errLong) {
			return nil, info, fmt.Errorf("%s:%d: line longer than %d bytes", path, line, MaxLineBytes)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, info, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			if len(b) > 0 || err == nil {
				info.Blank++
			}
		} else {
			rec, skip, perr := parseRecord(b)
			if perr != nil {
				return nil, info, fmt.Errorf("%s:%d: %v", path, line, perr)
			}
			info.Read++
			switch skip {
			case skipMeta:
				info.Meta++
			case skipNoText:
				info.NoText++
			default:
				recs = append(recs, rec)
				if len(recs) > MaxPromptsTotal {
					return nil, info, fmt.Errorf("%s:%d: more than %d prompts", path, line, MaxPromptsTotal)
				}
				if stop > 0 && len(recs) == stop {
					return recs, info, nil
				}
			}
		}
		if err != nil { // EOF
			return recs, info, nil
		}
	}
}

var errLong = errors.New("line too long")

// readLine returns one line without its newline; err is io.EOF at the end.
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLineBytes {
			return nil, errLong
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == nil {
			buf = buf[:len(buf)-1]
		}
		return bytes.TrimSuffix(buf, []byte("\r")), err
	}
}

const (
	keep = iota
	skipMeta
	skipNoText
)

func parseRecord(b []byte) (record, int, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return record{}, 0, fmt.Errorf("invalid JSON at column %d: %v", se.Offset, err)
		}
		return record{}, 0, fmt.Errorf("not a JSON object: %v", err)
	}
	if obj == nil {
		return record{}, 0, errors.New("not a JSON object: null")
	}
	for k := range obj {
		if strings.HasPrefix(k, "_") {
			return record{}, skipMeta, nil
		}
	}
	var rec record
	if raw, ok := obj["source"]; ok {
		_ = json.Unmarshal(raw, &rec.source) // a non-string source groups as ""
	}
	for _, f := range TextFields {
		var s string
		if raw, ok := obj[f]; ok && json.Unmarshal(raw, &s) == nil {
			if s = strings.TrimSpace(s); s != "" {
				rec.text = s
				return rec, keep, nil
			}
		}
	}
	return record{}, skipNoText, nil
}

// order puts records in dataset_order: interleaved keeps file order, grouped
// sorts stably by the records' "source" field ("" where absent), shuffled
// permutes with random_seed.
func order(recs []record, how string, seed int64) error {
	switch how {
	case "", "interleaved":
	case "grouped":
		slices.SortStableFunc(recs, func(a, b record) int { return strings.Compare(a.source, b.source) })
	case "shuffled":
		r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
		r.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	default:
		return fmt.Errorf("dataset_order %q: want interleaved, grouped or shuffled", how)
	}
	return nil
}

// Synthetic generates n prompts of pseudo-words. Prompt i depends only on
// (seed, i), so the first k prompts are the same for any n ≥ k. Its length
// in bytes — which is its length in tokens for the native backend's
// byte-level tokenizer — is input_len (distribution fixed) or
// round(input_len · e^(σ·Z)), Z standard normal (lognormal: median input_len),
// at least 1 and at most MaxPromptBytes. A subword tokenizer makes fewer
// tokens of the same text (about one per 3–4 bytes).
func Synthetic(s config.Synthetic, n int) ([]string, error) {
	if s.InputLen < 1 {
		return nil, fmt.Errorf("dataset.input_len: %d, want ≥ 1", s.InputLen)
	}
	sigma := 0.0
	switch s.Distribution {
	case "", "fixed":
	case "lognormal":
		if s.Sigma == nil || !(*s.Sigma > 0) {
			return nil, errors.New("dataset.sigma: lognormal lengths need sigma > 0")
		}
		sigma = *s.Sigma
	default:
		return nil, fmt.Errorf("dataset.distribution %q: want fixed or lognormal", s.Distribution)
	}
	out := make([]string, n)
	var sb strings.Builder
	for i := range out {
		r := rand.New(rand.NewPCG(uint64(s.Seed), uint64(i)))
		L := s.InputLen
		if sigma > 0 {
			L = int(math.Round(float64(s.InputLen) * math.Exp(sigma*r.NormFloat64())))
		}
		L = max(1, min(L, MaxPromptBytes))
		out[i] = words(&sb, r, L)
	}
	return out, nil
}

// Syllable parts of the pseudo-words. No text from anywhere is bundled.
var (
	onsets = []string{"", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "st", "tr", "ch", "sh", "br", "pl", "gr", "th"}
	nuclei = []string{"a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou", "ea", "io"}
	codas  = []string{"", "", "", "n", "r", "s", "t", "l", "m", "nd", "st"}
)

// words writes pseudo-words of 1–3 syllables into sentences until the text
// has exactly L bytes.
func words(sb *strings.Builder, r *rand.Rand, L int) string {
	sb.Reset()
	sb.Grow(L + 16)
	start := true
	inSentence := 0
	for sb.Len() < L {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		for range 1 + r.IntN(3) {
			syl := onsets[r.IntN(len(onsets))] + nuclei[r.IntN(len(nuclei))] + codas[r.IntN(len(codas))]
			if start && syl != "" {
				syl = strings.ToUpper(syl[:1]) + syl[1:]
				start = false
			}
			sb.WriteString(syl)
		}
		inSentence++
		if inSentence >= 6+r.IntN(10) {
			sb.WriteByte('.')
			start, inSentence = true, 0
		}
	}
	return sb.String()[:L]
}

package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// findPython returns the first of python3 (on PATH) and Debian's
// /usr/bin/python3 that imports module, or skips the test.
func findPython(t *testing.T, module string) string {
	t.Helper()
	var tried []string
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		p, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if out, err := exec.Command(p, "-c", "import "+module).CombinedOutput(); err != nil {
			tried = append(tried, p+": "+strings.TrimSpace(string(out)))
			continue
		}
		return p
	}
	t.Skipf("skipped: no python3 imports %s (%s); install python3-sentencepiece (scripts/test-setup.d/torch.sh)", module, strings.Join(tried, "; "))
	return ""
}

// edgeCases are strings a tokenizer gets wrong first: whitespace runs and
// kinds, characters outside the training corpus (byte fallback), scripts
// and combining marks, empty and one-character strings.
var edgeCases = []string{
	"", " ", "  ", "a", " a", "a ", "  two leading", "two trailing  ", "a  b   c    d",
	"tab\tseparated\tvalues", "\t leading tab", "line\nbreak", "\n\n\nnewlines", "cr\r\nlf", "\u00a0nbsp\u00a0",
	"emoji 🎉🚀 and ZWJ 👩‍💻", "日本語のテキスト", "中文 混合 English", "Ünïcödé façade naïve", "e\u0301 combining",
	"مرحبا بالعالم", "Ελληνικά κείμενα", "Привет, мир!", "한국어", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "\x7f control \x01",
	"numbers 1234567890 3.14159 1e-5", "punctuation!?.,;:()[]{}<>«»—–…", "under_score snake_case CamelCase",
	"don't won't it's I'm you're they've we'll he'd", "URL https://example.org/a?b=c&d=e#f",
	"▁ literal metaspace ▁▁", "￼ object replacement", strings.Repeat("long ", 200),
}

func TestAgainstSentencePiece(t *testing.T) {
	py := findPython(t, "sentencepiece")
	dir := t.TempDir()
	// The corpus: the repository's own documentation, real text with
	// Unicode symbols; the strings compared: its lines and the edge cases.
	var corpus []string
	for _, pat := range []string{"../../README.md", "../../docs/*.md"} {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			corpus = append(corpus, string(b))
		}
	}
	if len(corpus) == 0 {
		t.Fatal("no corpus: README.md and docs/ not found")
	}
	text := strings.Join(corpus, "\n")
	corpusPath := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(corpusPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	strs := append([]string(nil), edgeCases...)
	for _, l := range strings.Split(text, "\n") {
		// SentencePiece treats <s> in text as text; Hugging Face as the
		// added token. Such lines test the difference, not the encoder.
		if !strings.Contains(l, "<s>") && !strings.Contains(l, "</s>") && !strings.Contains(l, "<unk>") {
			strs = append(strs, l)
		}
	}
	sb, _ := json.Marshal(strs)
	strsPath := filepath.Join(dir, "strings.json")
	if err := os.WriteFile(strsPath, sb, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "testdata/sp_reference.py", corpusPath, strsPath, dir).CombinedOutput(); err != nil {
		t.Fatalf("sp_reference.py: %v\n%s", err, out)
	}
	tok, err := Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		IDs  [][]int32 `json:"ids"`
		Text []string  `json:"text"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil || json.Unmarshal(b, &want) != nil || len(want.IDs) != len(strs) {
		t.Fatalf("expected.json: %v", err)
	}
	bos, _ := tok.ID("<s>")
	mismatches, fallback := 0, 0
	for i, s := range strs {
		got := tok.Encode(s)
		if len(got) == 0 || got[0] != bos {
			t.Fatalf("%q: encoding %v does not start with <s> (%d)", s, got, bos)
		}
		got = got[1:]
		if fmt.Sprint(got) != fmt.Sprint(want.IDs[i]) {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("%q:\n go            %v\n sentencepiece %v", s, got, want.IDs[i])
			}
		}
		if d := tok.Decode(want.IDs[i]); d != want.Text[i] {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("decode %v: go %q, sentencepiece %q", want.IDs[i], d, want.Text[i])
			}
		}
		for _, id := range want.IDs[i] {
			if id >= 3 && id < 3+256 {
				fallback++
				break
			}
		}
	}
	if fallback == 0 {
		t.Error("no string went through byte fallback: the test does not exercise it")
	}
	t.Logf("SentencePiece %d-piece BPE model with byte fallback: %d strings compared (encode and decode; %d used byte fallback), %d mismatches",
		tok.Size(), len(strs), fallback, mismatches)
}

package load

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTraceAzureCSV(t *testing.T) {
	// Azure's layout: absolute datetimes with varying fractional digits.
	p := writeFile(t, "azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"+
		"2023-11-16 18:17:03.979,4808,10\n"+
		"2023-11-16 18:17:04.1,3180,8\n"+
		"2023-11-16 18:17:05,110,27\n"+
		"2023-11-16 18:17:04.000000123,7,3\n") // out of order: sorted
	es, info, err := ReadTrace(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{0, 4808, 10, ""}, {21000123, 7, 3, ""}, {121000000, 3180, 8, ""}, {1021000000, 110, 27, ""}}
	if len(es) != len(want) || info.Format != "csv" || info.Rows != 4 {
		t.Fatalf("%d entries (%+v), want %d", len(es), info, len(want))
	}
	for i := range want {
		if es[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, es[i], want[i])
		}
	}
}

func TestTraceBurstGPTCSV(t *testing.T) {
	p := writeFile(t, "burst.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"+
		"5,ChatGPT,472,18,490,Conversation log\n"+
		"45,ChatGPT,1087,0,1087,Conversation log\n"+ // failed request: skipped
		"118.5,GPT-4,417,276,693,Conversation log\n")
	es, info, err := ReadTrace(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || info.NoReply != 1 || es[1] != (Entry{113500000000, 417, 276, ""}) {
		t.Errorf("entries %+v, info %+v", es, info)
	}
}

func TestTraceJSONL(t *testing.T) {
	p := writeFile(t, "t.jsonl", `{"offset_s": 1.5, "input_tokens": 10, "output_tokens": 4}

{"offset_s": 0.25, "prompt": "hello there", "output_tokens": 2, "other": "ignored"}
{"offset_s": 3, "input_tokens": 1, "output_tokens": 1}
`)
	es, _, err := ReadTrace(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{0, 0, 2, "hello there"}, {1250000000, 10, 4, ""}, {2750000000, 1, 1, ""}}
	for i := range want {
		if i >= len(es) || es[i] != want[i] {
			t.Fatalf("entries %+v, want %+v", es, want)
		}
	}
}

func TestTraceErrors(t *testing.T) {
	cases := map[string]struct{ name, content, want string }{
		"bad header":   {"a.csv", "time,in,out\n1,2,3\n", "a.csv:1: header"},
		"bad time":     {"b.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n1,2,3\nyesterday,2,3\n", "b.csv:3: TIMESTAMP \"yesterday\""},
		"bad tokens":   {"c.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n1,x,3\n", "c.csv:2: column 2"},
		"short row":    {"d.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n1,2\n", "d.csv"},
		"empty":        {"e.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n", "no requests"},
		"bad json":     {"f.jsonl", "{\"offset_s\": 1, \"input_tokens\": 1, \"output_tokens\": 1}\n{oops\n", "f.jsonl:2:"},
		"no offset":    {"g.jsonl", `{"input_tokens": 1, "output_tokens": 1}`, "g.jsonl:1: offset_s"},
		"zero output":  {"h.jsonl", `{"offset_s": 0, "input_tokens": 1, "output_tokens": 0}`, "h.jsonl:1: output_tokens"},
		"no input":     {"i.jsonl", `{"offset_s": 0, "output_tokens": 3}`, "i.jsonl:1: input_tokens"},
		"missing file": {"", "", "trace:"},
	}
	for name, c := range cases {
		p := filepath.Join(t.TempDir(), "missing.jsonl")
		if c.name != "" {
			p = writeFile(t, c.name, c.content)
		}
		_, _, err := ReadTrace(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
}

func TestWorkloadSpecs(t *testing.T) {
	w := &Workload{Input: Lengths{100, 0.5}, Output: Lengths{20, 0}, CharsPerToken: 2, Seed: 3}
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	w2 := &Workload{Input: Lengths{100, 0.5}, Output: Lengths{20, 0}, CharsPerToken: 2, Seed: 3}
	if err := w2.Prepare(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	lengths := map[int]bool{}
	for i := range 200 {
		s := w.Spec(i)
		if s != w2.Spec(i) {
			t.Fatalf("spec %d differs between two workloads of the same seed", i)
		}
		if s.MaxTokens != 20 || s.IgnoreEOS {
			t.Errorf("spec %d: max_tokens %d ignore_eos %v, want 20 false", i, s.MaxTokens, s.IgnoreEOS)
		}
		if n := len(s.Prompt); n < 1 || n > 2*w.Input.max() || n%2 != 0 {
			t.Errorf("spec %d: prompt of %d bytes, want an even count in [2, %d]", i, n, 2*w.Input.max())
		}
		seen[s.Prompt[:min(16, len(s.Prompt))]] = true
		lengths[len(s.Prompt)] = true
	}
	if len(seen) < 190 || len(lengths) < 50 {
		t.Errorf("%d distinct prompt starts and %d lengths in 200 lognormal prompts", len(seen), len(lengths))
	}
	// A trace sets the lengths and forces them; dataset text replaces prompts.
	tw := &Workload{Trace: []Entry{{0, 5, 7, ""}, {1, 0, 3, "given"}}, CharsPerToken: 1}
	if err := tw.Prepare(); err != nil {
		t.Fatal(err)
	}
	if s := tw.Spec(0); len(s.Prompt) != 5 || s.MaxTokens != 7 || !s.IgnoreEOS {
		t.Errorf("trace spec 0: %+v", s)
	}
	if s := tw.Spec(1); s.Prompt != "given" || s.MaxTokens != 3 {
		t.Errorf("trace spec 1: %+v", s)
	}
	dw := &Workload{Texts: []string{"a", "b"}, Output: Lengths{4, 0}, CharsPerToken: 1}
	if err := dw.Prepare(); err != nil {
		t.Fatal(err)
	}
	if dw.Spec(0).Prompt != "a" || dw.Spec(3).Prompt != "b" {
		t.Errorf("dataset prompts are not used in turn")
	}
}

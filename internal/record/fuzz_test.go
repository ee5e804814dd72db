package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/llem/llem/internal/fuzzguard"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// kinds maps every record kind to a fresh value of its type.
var kinds = map[string]func() any{
	KindExperiment: func() any { return new(Experiment) },
	KindSkipped:    func() any { return new(Skipped) },
	KindBaseline:   func() any { return new(Baseline) },
	KindRun:        func() any { return new(Run) },
	KindEnergy:     func() any { return new(Energy) },
	KindSummary:    func() any { return new(Summary) },
}

// FuzzRecords: any bytes read as NDJSON give records or one error naming
// f.ndjson:line, never a panic; a record of a known kind either decodes
// strictly or fails with an error naming its own line, and what decodes
// encodes and decodes again to the same bytes (nothing read is lost on the
// way through a tool).
func FuzzRecords(f *testing.F) {
	for _, s := range seedRecords(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzguard.Start("FuzzRecords")()
		r := NewReader(bytes.NewReader(data), "f.ndjson")
		for r.Next() {
			l := r.Line()
			if l.Kind == "" || l.No < 1 {
				t.Fatalf("line %d with kind %q", l.No, l.Kind)
			}
			mk := kinds[l.Kind]
			if mk == nil {
				continue
			}
			for _, strict := range []bool{true, false} {
				v := mk()
				err := l.Decode(v)
				if !strict {
					err = l.DecodeLax(v)
				}
				if err != nil {
					var pe *PosError
					if !errors.As(err, &pe) || pe.Line != l.No || !strings.HasPrefix(err.Error(), fmt.Sprintf("f.ndjson:%d:", l.No)) {
						t.Fatalf("decode error without its position: %v", err)
					}
					continue
				}
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatalf("a decoded %s does not encode: %v", l.Kind, err)
				}
				w := mk()
				if err := (Line{File: "re", No: 1, Raw: b}).Decode(w); err != nil {
					t.Fatalf("a re-encoded %s does not decode: %v\n%s", l.Kind, err, b)
				}
				if b2, _ := json.Marshal(w); !bytes.Equal(b, b2) {
					t.Fatalf("%s round trip:\n%s\n%s", l.Kind, b, b2)
				}
			}
		}
		if err := r.Err(); err != nil {
			var pe *PosError
			if !errors.As(err, &pe) || pe.Line < 1 || !strings.HasPrefix(err.Error(), "f.ndjson:") {
				t.Fatalf("reader error without its position: %v", err)
			}
		}
	})
}

// seedRecords: records of every kind as the tools write them (the golden
// files of llem-aggregate, one record a seed, and a stream of several), plus
// damaged lines.
func seedRecords(tb testing.TB) map[string][]byte {
	seeds := map[string][]byte{
		"bad-not-object":    []byte("{\"kind\":\"run\",\"v\":1}\n[1,2]\n"),
		"bad-no-kind":       []byte("{\"v\":1}\n"),
		"bad-type":          []byte("{\"kind\":\"experiment\",\"v\":1,\"seq\":\"x\"}\n"),
		"bad-trailing":      []byte("{\"kind\":\"run\",\"v\":1} {\"kind\":\"run\"}\n"),
		"bad-big-number":    []byte("{\"kind\":\"energy\",\"v\":1,\"seq\":1e400}\n"),
		"bad-unknown-field": []byte("{\"kind\":\"baseline\",\"v\":1,\"zz\":1}\n"),
		"crlf-blank":        []byte("\r\n{\"kind\":\"future\",\"v\":9}\r\n\n"),
	}
	var all []byte
	for _, name := range []string{"study.golden.ndjson", "requests_energy.golden.ndjson"} {
		f, err := os.Open(filepath.Join("..", "aggregate", "testdata", name))
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, MaxLineBytes)
		seen := map[string]int{}
		for sc.Scan() {
			var h struct{ Kind string }
			json.Unmarshal(sc.Bytes(), &h)
			if seen[h.Kind]++; seen[h.Kind] > 2 {
				continue
			}
			line := append(append([]byte(nil), sc.Bytes()...), '\n')
			seeds[fmt.Sprintf("%s-%s-%d", strings.TrimSuffix(name, ".golden.ndjson"), h.Kind, seen[h.Kind])] = line
			if len(all) < 64<<10 {
				all = append(all, line...)
			}
		}
		f.Close()
	}
	seeds["stream"] = all
	run := Run{Experiment: Experiment{Kind: KindRun, V: Version, Study: "s", StudyHash: "0123456789abcdef", ID: "a1b2c3d4e5f60718",
		RunID: "a1b2c3d4e5f60718-c1", Backend: "native", Model: "llem-tiny", Config: json.RawMessage(`{"model":"llem-tiny"}`)},
		Status: StatusFailed, Error: &Error{Type: "crash", Message: "m", Hint: "h"}, Warnings: []Flag{{Code: "c", Message: "m"}}}
	b, _ := json.Marshal(run)
	seeds["run-failed"] = append(b, '\n')
	bl := Baseline{Kind: KindBaseline, V: Version, ID: "b1"}
	b, _ = json.Marshal(bl)
	seeds["baseline"] = append(b, '\n')
	return seeds
}

// TestFuzzCorpus checks the committed seed corpus of FuzzRecords, and
// rewrites it with -update-corpus.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRecords")
	if *updateCorpus {
		os.MkdirAll(dir, 0o755)
		for name, b := range seedRecords(t) {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) < 10 {
		t.Fatalf("seed corpus %s: %d files, %v", dir, len(ents), err)
	}
	kindsSeen := map[string]bool{}
	for _, e := range ents {
		for k := range kinds {
			if strings.Contains(e.Name(), "-"+k+"-") || strings.HasPrefix(e.Name(), k) || strings.HasPrefix(e.Name(), "run-") && k == KindRun {
				kindsSeen[k] = true
			}
		}
	}
	for _, k := range []string{KindExperiment, KindRun, KindEnergy, KindBaseline} {
		if !kindsSeen[k] {
			t.Errorf("no seed of kind %s in %s", k, dir)
		}
	}
}

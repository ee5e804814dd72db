package record

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestReaderPositions(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"not an object", "{\"kind\":\"a\"}\n[1]\n", "f.ndjson:2:1: not a JSON object"},
		{"syntax", "\n{\"kind\":\"a\",}\n", "f.ndjson:2:13: invalid character '}'"},
		{"no kind", "{\"v\":1}\n", "f.ndjson:1:1: record has no \"kind\""},
		{"kind not a string", "{\"kind\":3}\n", "f.ndjson:1:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(c.in), "f.ndjson")
			for r.Next() {
			}
			if r.Err() == nil || !strings.HasPrefix(r.Err().Error(), c.want) {
				t.Fatalf("error %v, want prefix %q", r.Err(), c.want)
			}
			var pe *PosError
			if !errors.As(r.Err(), &pe) {
				t.Fatalf("error %T is not a *PosError", r.Err())
			}
		})
	}
}

func TestDecodeStrictNamesField(t *testing.T) {
	r := NewReader(strings.NewReader(`{"kind":"run","v":1}`+"\n"+`{"kind":"experiment","v":1,"seq":"x"}`+"\n"), "-")
	var n int
	for r.Next() {
		n++
		if n == 2 {
			var e Experiment
			err := r.Line().Decode(&e)
			if err == nil || !strings.Contains(err.Error(), "<stdin>:2:") || !strings.Contains(err.Error(), "field seq") {
				t.Fatalf("got %v", err)
			}
		}
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
}

func TestRoundTripAndPassthrough(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.Write(Experiment{Kind: KindExperiment, V: Version, RunID: "x-c1"}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRaw([]byte(`{"kind":"future","v":9,"x":[1,2]}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&buf, "s")
	var kinds []string
	var raws []string
	for r.Next() {
		kinds = append(kinds, r.Line().Kind)
		raws = append(raws, string(r.Line().Clone().Raw))
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	if strings.Join(kinds, ",") != "experiment,future" || raws[1] != `{"kind":"future","v":9,"x":[1,2]}` {
		t.Fatalf("kinds %v raws %q", kinds, raws)
	}
}

func TestLineTooLong(t *testing.T) {
	in := `{"kind":"a","x":"` + strings.Repeat("y", MaxLineBytes) + `"}`
	r := NewReader(strings.NewReader(in), "big")
	if r.Next() {
		t.Fatal("accepted an over-long line")
	}
	if r.Err() == nil || !strings.Contains(r.Err().Error(), "big:1: line longer than") {
		t.Fatalf("got %v", r.Err())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterErrorSticks(t *testing.T) {
	w := NewFlushingWriter(failWriter{})
	if err := w.Write(Experiment{}); err == nil {
		t.Fatal("no error from a failing writer")
	}
	if err := w.Flush(); err == nil {
		t.Fatal("error did not stick")
	}
}

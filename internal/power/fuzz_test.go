package power

import (
	"bytes"
	"flag"
	"github.com/llem/llem/internal/fuzzguard"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// seedStreams are sample streams as llem-sample writes them, whole and cut.
func seedStreams(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, meta)
	if err != nil {
		t.Fatal(err)
	}
	trace(t, w, 6, 3)
	if err := w.Close(Trailer{Ticks: 6, LateTicks: 1, Warnings: []string{"w"}}); err != nil {
		t.Fatal(err)
	}
	whole := append([]byte(nil), buf.Bytes()...)
	out["whole"] = whole
	out["cut-mid-batch"] = whole[:len(whole)*2/3]
	out["no-trailer"] = whole[:bytes.Index(whole, []byte(trailerMagic))]
	var b2 bytes.Buffer
	w2, _ := NewWriter(&b2, Meta{})
	w2.Close(Trailer{})
	out["empty-meta"] = append([]byte(nil), b2.Bytes()...)
	// Streams of other samplers (foreign_test.go), so that the fuzzer
	// explores their decode paths too.
	for k, v := range foreignSeeds(t) {
		out[k] = v
	}
	return out
}

// FuzzReader: any bytes give batches or an error naming the file, never a
// panic, a hang or an allocation the input does not pay for; every batch's
// columns have its row count and every device index points at a device.
func FuzzReader(f *testing.F) {
	for _, b := range seedStreams(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzguard.Start("FuzzReader")()
		r, err := NewReader(bytes.NewReader(data), "f.arrows")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.arrows: ") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		defer r.Close()
		for r.Next() {
			b := r.Batch()
			if len(b.T) != b.N || len(b.Dev) != b.N || len(b.PowerW) != b.N || len(b.EnergyJ) != b.N {
				t.Fatalf("batch of %d rows with columns t %d dev %d power %d energy %d", b.N, len(b.T), len(b.Dev), len(b.PowerW), len(b.EnergyJ))
			}
			for _, ok := range [][]bool{b.PowerOK, b.EnergyOK, b.TempOK, b.UtilOK, b.MemOK, b.ClockOK, b.ThrotOK} {
				if ok != nil && len(ok) != b.N {
					t.Fatalf("validity of %d rows in a batch of %d", len(ok), b.N)
				}
			}
			for _, d := range b.Dev {
				if d < 0 || int(d) >= len(r.Devices()) {
					t.Fatalf("device index %d of %d devices", d, len(r.Devices()))
				}
			}
		}
		if err := r.Err(); err != nil && !strings.HasPrefix(err.Error(), "f.arrows: ") {
			t.Fatalf("error without the file name: %v", err)
		}
	})
}

// TestFuzzCorpus checks the committed seed corpus of FuzzReader, and rewrites
// it with -update-corpus.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	if *updateCorpus {
		os.MkdirAll(dir, 0o755)
		for name, b := range seedStreams(t) {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) < 4 {
		t.Fatalf("seed corpus %s: %d files, %v", dir, len(ents), err)
	}
}

// TestFuzzFindings: the inputs FuzzReader found that made Arrow allocate
// what a tiny file claimed (a schema of 2^30 fields, a column buffer of
// 146 GB) are now errors that say so, read in well under a second.
func TestFuzzFindings(t *testing.T) {
	for name, want := range map[string]string{
		"oom-schema-fields": "malformed schema flatbuffer",
		"oom-batch-buffer":  "in a message body that allows",
	} {
		b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzReader", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(s, "go test fuzz v1\n[]byte("), ")\n"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(strings.NewReader(data), "f.arrows")
		if err == nil {
			for r.Next() {
			}
			err = r.Err()
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "f.arrows: ") {
			t.Errorf("%s: error %v, want one naming the file and containing %q", name, err, want)
		}
	}
}

package study

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/llem/llem/internal/fuzzguard"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/llem/llem/internal/config"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the fuzz seed corpus in testdata/fuzz")

var errEnough = errors.New("enough")

// FuzzExpand feeds any bytes to the loader: it must answer with records or
// with positioned errors, never panic or hang; every record it writes must
// carry an id that is the hash of its config, and the config must decode.
func FuzzExpand(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		// A slow input crashes the worker, so that the fuzzer keeps it.
		defer fuzzguard.Start("FuzzExpand")()
		s, err := Expand("fuzz.yaml", data, Options{MaxConfigs: 2000})
		if err != nil {
			var es config.Errors
			var e1 *config.Error
			if !errors.As(err, &es) && !errors.As(err, &e1) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		n := 0
		err = s.Each(func(r *Run) error {
			sum := sha256.Sum256(r.Canonical)
			if hex.EncodeToString(sum[:8]) != r.ID {
				t.Fatalf("id %s is not the hash of its config", r.ID)
			}
			c, err := config.Decode(r.Canonical)
			if err != nil {
				t.Fatalf("the effective config does not decode: %v\n%s", err, r.Canonical)
			}
			if b, _ := c.Canonical(); string(b) != string(r.Canonical) {
				t.Fatalf("the effective config does not re-encode to itself:\n%s\n%s", r.Canonical, b)
			}
			if n++; n > 50 {
				return errEnough
			}
			return nil
		})
		if err != nil && err != errEnough {
			t.Fatal(err)
		}
	})
}

// TestFuzzCorpus checks the committed seed corpus (and rewrites it from the
// examples and the bad studies with -update-corpus).
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzExpand")
	if *updateCorpus {
		os.MkdirAll(dir, 0o755)
		seeds := map[string][]byte{}
		for _, name := range []string{"quickstart.yaml", "reference.yaml", "common.yaml"} {
			b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
			if err != nil {
				t.Fatal(err)
			}
			seeds["example-"+name] = b
		}
		for i, c := range badStudies {
			if len(c.src) < 8<<10 {
				seeds[fmt.Sprintf("bad-%02d", i)] = []byte(c.src)
			}
		}
		for name, b := range seeds {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) < 30 {
		t.Fatalf("seed corpus %s: %d files, %v", dir, len(ents), err)
	}
}

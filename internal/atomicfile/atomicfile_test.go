package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entries lists dir's names, to find temporary files left behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.json")
	if err := WriteJSON(p, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "{\n  \"a\": 1\n}\n" {
		t.Fatalf("%q %v", b, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != Perm {
		t.Errorf("mode %v", fi.Mode())
	}
	if n := entries(t, dir); len(n) != 1 {
		t.Errorf("files left: %v", n)
	}
}

// A failure at any point leaves the previous file whole, no temporary file,
// and an error naming the path: a content error, a write that fails after
// n bytes (a full disk), and a value that cannot be encoded.
func TestFailureKeepsOld(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 20_000) // more than one buffer
	for _, c := range []struct {
		name  string
		write func(p string) error
		want  error
	}{
		{"fill error", func(p string) error {
			return Write(p, func(w io.Writer) error {
				w.Write(big)
				return io.ErrShortWrite
			})
		}, io.ErrShortWrite},
		{"write fails after 0 bytes", func(p string) error {
			defer FailAfter(0)()
			return WriteBytes(p, []byte("new"))
		}, ErrInjected},
		{"write fails mid-way", func(p string) error {
			defer FailAfter(100_000)()
			return WriteBytes(p, big)
		}, ErrInjected},
		{"unencodable", func(p string) error { return WriteJSON(p, func() {}) }, nil},
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, "f")
		os.WriteFile(p, []byte("old"), 0o644)
		err := c.write(p)
		if err == nil || !strings.Contains(err.Error(), p) || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want one naming %s and wrapping %v", c.name, err, p, c.want)
		}
		if b, _ := os.ReadFile(p); string(b) != "old" {
			t.Errorf("%s: final file holds %d bytes %.20q", c.name, len(b), b)
		}
		if n := entries(t, dir); len(n) != 1 {
			t.Errorf("%s: files left: %v", c.name, n)
		}
	}
}

// FailAfter counts bytes across writes and stops at exactly n.
func TestFailAfterCounts(t *testing.T) {
	defer FailAfter(5)()
	var buf bytes.Buffer
	w := faulty(&buf)
	if n, err := w.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := w.Write([]byte("defg")); n != 2 || !errors.Is(err, ErrInjected) {
		t.Fatal(n, err)
	}
	if buf.String() != "abcde" {
		t.Fatalf("%q", buf.String())
	}
}

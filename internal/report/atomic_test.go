package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/atomicfile"
)

// llem-report -o whose disk fills mid-way fails and leaves the previous
// report, not part of the new one, under the name.
func TestOutputNeverPartial(t *testing.T) {
	stream, err := os.ReadFile("testdata/study.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "report.md")
	os.WriteFile(p, []byte("previous"), 0o644)
	restore := atomicfile.FailAfter(100)
	_, stderr, code := runCmd(t, stream, "--format", "md", "-o", p)
	restore()
	if code == 0 || !strings.Contains(stderr, atomicfile.ErrInjected.Error()) || !strings.Contains(stderr, p) {
		t.Errorf("exit %d, stderr %q: want a failure naming %s", code, stderr, p)
	}
	if b, _ := os.ReadFile(p); string(b) != "previous" {
		t.Errorf("%s holds %d bytes %.40q", p, len(b), b)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("%d files left in the directory", len(es))
	}
	// The same report written whole.
	if _, stderr, code := runCmd(t, stream, "--format", "md", "-o", p); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(p)
	if want, err := os.ReadFile("testdata/study.md"); err != nil || string(got) != string(want) {
		t.Errorf("report written whole differs from testdata/study.md (%v)", err)
	}
}

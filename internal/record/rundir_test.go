package record

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveRunDir(t *testing.T) {
	root := t.TempDir()
	want := root + "/study-1/runs/r1"
	if err := os.MkdirAll(want, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, old := range []string{"/old/place/study-1/runs/r1", "/x/study-1/runs/r1", "study-1/runs/r1"} {
		if got := ResolveRunDir(old, root); got != want {
			t.Errorf("%s → %s, want %s", old, got, want)
		}
	}
	if got := ResolveRunDir("/nowhere/else", root); got != "/nowhere/else" {
		t.Errorf("unfound dir changed to %s", got)
	}
	if got := ResolveRunDir("/nowhere/else", ""); got != "/nowhere/else" {
		t.Errorf("no root: %s", got)
	}
}

// ScanEvents numbers lines as the file does (blank lines count, are not
// passed on) and a bad line's error names file:line:col.
func TestScanEvents(t *testing.T) {
	p := filepath.Join(t.TempDir(), "events.ndjson")
	os.WriteFile(p, []byte("{\"event\":\"phase\",\"t\":1}\n\n  \n{\"event\":\"request\",\"t\":\"x\"}\n{\"event\":\"end\"}\n"), 0o644)
	var nos []int
	err := ScanEvents(p, func(l Line) error {
		nos = append(nos, l.No)
		var ev Event
		return l.DecodeLax(&ev)
	})
	if len(nos) != 2 || nos[0] != 1 || nos[1] != 4 {
		t.Errorf("lines %v, want [1 4]", nos)
	}
	if err == nil || !strings.HasPrefix(err.Error(), p+":4:") || !strings.Contains(err.Error(), "field t") {
		t.Errorf("error %v, want one at %s:4 naming field t", err, p)
	}
	if err := ScanEvents(filepath.Join(t.TempDir(), "none"), func(Line) error { return nil }); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

package record

import (
	"os"
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

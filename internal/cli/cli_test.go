package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestReflow(t *testing.T) {
	in := "First line of a\nparagraph.\n\nSecond\nparagraph:\n  indented example\n  another\nprose after."
	want := "First line of a paragraph.\n\nSecond paragraph:\n  indented example\n  another\nprose after."
	if got := reflow(in); got != want {
		t.Fatalf("reflow:\n%q\nwant\n%q", got, want)
	}
}

// --help exits 0 with the usage, the exit codes and no ragged half-lines;
// a bad flag is a usage error (exit 2) printed as one line.
func TestParseHelpAndUsage(t *testing.T) {
	var o struct {
		N int `long:"n" description:"a number"`
	}
	var stdout bytes.Buffer
	_, err := Parse("tool", "[OPTIONS]", "Does a thing with a rather long description that\nwraps in the source.", &o, []string{"--help"}, &stdout)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	h := stdout.String()
	if !strings.Contains(h, "Exit codes: 0 ok") || !strings.Contains(h, "long description that wraps in the source.") {
		t.Fatalf("help:\n%s", h)
	}
	_, err = Parse("tool", "[OPTIONS]", "x", &o, []string{"--nope"}, &stdout)
	if Code(err) != ExitUsage {
		t.Fatalf("bad flag: code %d (%v)", Code(err), err)
	}
}

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{"": nil, " , ": nil, "a": {"a"}, " a, b ,,c ": {"a", "b", "c"}} {
		got := SplitList(in)
		if len(got) != len(want) || (want == nil) != (got == nil) {
			t.Errorf("%q: %q, want %q", in, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%q: %q, want %q", in, got, want)
			}
		}
	}
}

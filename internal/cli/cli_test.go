package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
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

// Each tool lists only its own codes, in the order given, from the one table.
func TestExitCodesHelp(t *testing.T) {
	for _, c := range []struct {
		codes []int
		want  string
	}{
		{nil, "Exit codes: 0 ok, 1 runtime failure, 2 usage or input error."},
		{[]int{ExitOK, ExitFailure, ExitUsage, ExitSomeFailed, ExitInterrupted},
			"Exit codes: 0 ok, 1 runtime failure, 2 usage or input error, 3 finished but some runs failed, 130 interrupted."},
		{[]int{ExitOK, ExitUsage}, "Exit codes: 0 ok, 2 usage or input error."},
	} {
		if got := ExitCodesHelp(c.codes...); got != c.want {
			t.Errorf("%v: %q, want %q", c.codes, got, c.want)
		}
	}
	var stdout bytes.Buffer
	var o struct{}
	if _, err := Parse("tool", "", "x", &o, []string{"--help"}, &stdout, ExitOK, ExitUsage); !errors.Is(err, ErrHelp) {
		t.Fatal(err)
	}
	if h := stdout.String(); !strings.Contains(h, "Exit codes: 0 ok, 2 usage or input error.") || strings.Contains(h, "130") {
		t.Errorf("help lists other codes:\n%s", h)
	}
	defer func() {
		if recover() == nil {
			t.Error("a code outside the table did not panic")
		}
	}()
	ExitCodesHelp(42)
}

// Codes of wrapped errors, and an error already reported (no Err) prints
// nothing more but keeps its code.
func TestCodes(t *testing.T) {
	base := errors.New("boom")
	for _, c := range []struct {
		err  error
		code int
		out  string
	}{
		{nil, ExitOK, ""},
		{base, ExitFailure, "tool: boom\n"},
		{Usage(base), ExitUsage, "tool: boom\n"},
		{Interrupted(base), ExitInterrupted, "tool: boom\n"},
		{&Error{Code: ExitSomeFailed}, ExitSomeFailed, ""},
		{fmtWrap(Interrupted(base)), ExitInterrupted, "tool: run: boom\n"},
	} {
		var stderr bytes.Buffer
		code := Run("tool", func([]string, io.Reader, io.Writer, io.Writer) error { return c.err }, nil, nil, io.Discard, &stderr)
		if code != c.code || stderr.String() != c.out {
			t.Errorf("%v: exit %d %q, want %d %q", c.err, code, stderr.String(), c.code, c.out)
		}
	}
	if s := (&Error{Code: ExitSomeFailed}).Error(); s != "exit 3" {
		t.Errorf("Error() of a reported error: %q", s)
	}
}

func fmtWrap(err error) error { return fmt.Errorf("run: %w", err) }

// WithSignals: a SIGINT to the process ends the body's context instead of
// killing the process; the body maps it to exit 130.
func TestWithSignals(t *testing.T) {
	cmd := WithSignals(func(ctx context.Context, _ []string, _ io.Reader, _, _ io.Writer) error {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			return err
		}
		<-ctx.Done()
		return Interrupted(errors.New("interrupted"))
	})
	if code := Run("tool", cmd, nil, nil, io.Discard, io.Discard); code != ExitInterrupted {
		t.Fatalf("exit %d, want %d", code, ExitInterrupted)
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

// Package cli holds what every llem command shares: exit codes, flag parsing
// with go-flags, and one-line error printing. Mains stay thin: they call Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	flags "github.com/jessevdk/go-flags"
)

// Exit codes: the one table every llem tool and both worker kinds (the
// native worker inside llem-exec, the Python workers) follow. Each tool's
// --help lists the ones it can return (Parse).
const (
	ExitOK          = 0   // success
	ExitFailure     = 1   // runtime failure
	ExitUsage       = 2   // usage or input error
	ExitSomeFailed  = 3   // the stream finished, but some runs failed
	ExitInterrupted = 130 // interrupted by SIGINT or SIGTERM (128 + SIGINT, whichever signal came)
)

// exitMeanings is what --help says of each code.
var exitMeanings = map[int]string{
	ExitOK:          "ok",
	ExitFailure:     "runtime failure",
	ExitUsage:       "usage or input error",
	ExitSomeFailed:  "finished but some runs failed",
	ExitInterrupted: "interrupted",
}

// defaultCodes are the codes of a tool that names none: any tool can succeed,
// fail, or be called wrongly.
var defaultCodes = []int{ExitOK, ExitFailure, ExitUsage}

// ExitCodesHelp is the line of --help that lists codes, e.g. "Exit codes: 0
// ok, 1 runtime failure, 2 usage or input error." A code outside the table
// panics: it is a programming error, caught by any test of --help.
func ExitCodesHelp(codes ...int) string {
	if len(codes) == 0 {
		codes = defaultCodes
	}
	parts := make([]string, len(codes))
	for i, c := range codes {
		m, ok := exitMeanings[c]
		if !ok {
			panic(fmt.Sprintf("cli: exit code %d is not in the table", c))
		}
		parts[i] = fmt.Sprintf("%d %s", c, m)
	}
	return "Exit codes: " + strings.Join(parts, ", ") + "."
}

// Error is an error with an exit code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil { // already reported to the user: only the code is left
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}
func (e *Error) Unwrap() error { return e.Err }

// Usage wraps err as a usage or input error (exit 2).
func Usage(err error) error { return &Error{Code: ExitUsage, Err: err} }

// Usagef formats a usage or input error (exit 2).
func Usagef(format string, a ...any) error { return Usage(fmt.Errorf(format, a...)) }

// Interrupted wraps err as the end of a tool stopped by SIGINT/SIGTERM (exit 130).
func Interrupted(err error) error { return &Error{Code: ExitInterrupted, Err: err} }

// Code returns the exit code for err: nil → 0, *Error → its code, else 1.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitFailure
}

// Parse parses args into opts with go-flags. --help prints the usage with the
// exit codes the tool returns (codes; none: 0, 1 and 2) to stdout and returns
// (nil, ErrHelp); callers return exit 0. Flag errors are usage errors (exit 2).
func Parse(name, usage, long string, opts any, args []string, stdout io.Writer, codes ...int) ([]string, error) {
	p := flags.NewNamedParser(name, flags.HelpFlag|flags.PassDoubleDash)
	p.Usage = usage
	p.LongDescription = reflow(strings.TrimSpace(long) + "\n\n" + ExitCodesHelp(codes...))
	if _, err := p.AddGroup("Options", "", opts); err != nil {
		return nil, err
	}
	rest, err := p.ParseArgs(args)
	if err != nil {
		var fe *flags.Error
		if errors.As(err, &fe) && fe.Type == flags.ErrHelp {
			fmt.Fprintln(stdout, fe.Message)
			return nil, ErrHelp
		}
		return nil, Usage(err)
	}
	return rest, nil
}

// reflow joins the lines of each prose paragraph into one, so that go-flags,
// which wraps the long description to the terminal's width but keeps every
// newline, does not leave ragged half-lines. Indented lines (examples, lists)
// and blank lines stay as written.
func reflow(s string) string {
	var b strings.Builder
	prose := false // the previous line was prose, so a prose line continues it
	for _, l := range strings.Split(s, "\n") {
		switch {
		case l == "":
			b.WriteString("\n\n")
			prose = false
		case l[0] == ' ' || l[0] == '\t':
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
				b.WriteString("\n")
			}
			b.WriteString(l + "\n")
			prose = false
		default:
			if prose {
				b.WriteString(" ")
			} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
				b.WriteString("\n")
			}
			b.WriteString(l)
			prose = true
		}
	}
	return strings.TrimRight(strings.ReplaceAll(b.String(), "\n\n\n", "\n\n"), "\n")
}

// ErrHelp is returned by Parse when --help was asked for.
var ErrHelp = errors.New("help requested")

// Command is the body of a tool: cmd/llem-X/main.go passes its package's
// Command to Main.
type Command func(args []string, stdin io.Reader, stdout, stderr io.Writer) error

// Main runs a command and exits with its code, printing a failure as one line
// "name: error" on stderr. No panic reaches the user: it is printed as an
// internal error with exit 1.
func Main(name string, run Command) {
	os.Exit(Run(name, run, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Run is Main without os.Exit, for tests.
func Run(name string, run Command, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "%s: internal error: %v (please report this)\n", name, r)
			code = ExitFailure
		}
	}()
	err := run(args, stdin, stdout, stderr)
	if errors.Is(err, ErrHelp) {
		return ExitOK
	}
	if err != nil {
		var e *Error
		if !(errors.As(err, &e) && e.Err == nil) {
			fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(err.Error()))
		}
	}
	return Code(err)
}

// WithSignals makes a Command of a body that stops when its context ends:
// the context ends at the first SIGINT or SIGTERM, which then no longer kill
// the process, and the body returns (mapping that to ExitInterrupted where it
// can be interrupted). The signals are handed back when the body returns.
func WithSignals(run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error) Command {
	return func(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return run(ctx, args, stdin, stdout, stderr)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

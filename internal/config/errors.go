package config

import (
	"fmt"
	"strings"

	"github.com/llem/llem/internal/record"
)

// Error is one problem in an input file: where (file:line:col), which field
// (a path such as sweep.pytorch.batch_size[1]), what is wrong and, where one
// helps, a hint (the closest valid key or value, or what to write instead).
type Error struct {
	File    string
	Line    int
	Col     int
	Path    string
	Message string
	Hint    string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Problem converts the error to the record form used in skipped records.
func (e *Error) Problem() record.Problem {
	return record.Problem{Path: e.Path, Message: e.Message, Hint: e.Hint}
}

// Errors is a list of problems; as an error it prints one per line.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Problems converts the list to the record form.
func (es Errors) Problems() []record.Problem {
	out := make([]record.Problem, len(es))
	for i, e := range es {
		out[i] = e.Problem()
	}
	return out
}

// Err returns the list as an error, or nil when it is empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

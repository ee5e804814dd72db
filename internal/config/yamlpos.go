package config

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reports a syntax error at the line of its parser's "context" mark
// when it has one, counted from 0, so the line it names is often the one
// before the construct at fault (a tab on line 4 is reported on line 3; an
// unclosed `[` on line 17 at the line before it, or at the enclosing
// mapping). The line a person has to edit is the first line with which the
// file fails the same way: the shortest failing prefix of the file.

// maxPrefixParses and maxPrefixBytes bound the work of placing one error
// (the prefixes parsed and their bytes together), so a large hostile file
// costs little more than one parse; past them the parser's own line is kept.
const (
	maxPrefixParses = 400
	maxPrefixBytes  = 32 << 20
)

// syntaxLine returns the 1-based line (and column, 1 unless known better) to
// report for the yaml.v3 error message msg ("line N: ..." or "..."), given
// the document data.
func syntaxLine(data []byte, msg string) (line, col int) {
	reported := 0
	text := msg
	if _, err := fmt.Sscanf(msg, "line %d:", &reported); err == nil {
		text = strings.TrimSpace(strings.SplitN(msg, ":", 2)[1])
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if strings.HasPrefix(text, "unknown anchor '") {
		name := strings.TrimSuffix(strings.TrimPrefix(text, "unknown anchor '"), "' referenced")
		for i, l := range lines {
			if j := bytes.Index(l, []byte("*"+name)); j >= 0 {
				return i + 1, j + 1
			}
		}
	}
	start := max(1, reported-1)
	budget := maxPrefixBytes
	for k, tries := start, 0; k <= len(lines) && tries < maxPrefixParses; k, tries = k+1, tries+1 {
		prefix := bytes.Join(lines[:k], nil)
		if budget -= len(prefix); budget < 0 {
			break
		}
		if sameFailure(prefix, text) {
			return k, tabColumn(lines[k-1], text)
		}
	}
	if reported == 0 {
		return 0, 0
	}
	return reported, 1
}

// sameFailure reports whether the prefix fails to parse with the message text.
func sameFailure(prefix []byte, text string) bool {
	var n yaml.Node
	err := yaml.Unmarshal(prefix, &n)
	if err == nil {
		return false
	}
	m := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.HasPrefix(m, "line ") {
		m = strings.TrimSpace(strings.SplitN(m, ":", 2)[1])
	}
	return m == text
}

// tabColumn is the column of the tab that breaks the indentation, else 1.
func tabColumn(l []byte, text string) int {
	if strings.Contains(text, "tab character") {
		if i := bytes.IndexByte(l, '\t'); i >= 0 {
			return i + 1
		}
	}
	return 1
}

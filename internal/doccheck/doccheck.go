// Package doccheck keeps the repository's documentation self-contained: every
// relative Markdown link (and its #anchor) and every repository path quoted in
// backticks must name something in the repository, and no document or source
// file may send the reader to material outside it. Its test runs these checks
// on the repository itself, so a renamed package or a moved document fails
// `go test ./...` instead of leaving a dangling reference.
package doccheck

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode"
)

// Problem is one bad reference: where it is and what is wrong.
type Problem struct {
	File string // relative to the repository root
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Ref is a reference found in a Markdown file.
type Ref struct {
	Line   int
	Target string // as written: a link target, or a path quoted in backticks
	Quoted bool   // from backticks, not from a link
}

var (
	// [text](target) or [text](target "title"); the text may hold one level
	// of brackets (a link around `code[0]`).
	inlineLink = regexp.MustCompile(`\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(?:<([^<>]*)>|([^()\s]*))(?:\s+"[^"]*")?\s*\)`)
	// [label]: target
	refDef = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	// `cmd/...`, `internal/...`: repository paths quoted as code.
	quotedPath = regexp.MustCompile("`((?:cmd|internal|scripts|docs|schemas|examples)/[^`\\s]*)`")
	heading    = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	fence      = regexp.MustCompile("^ {0,3}(```|~~~)")
	codeSpan   = regexp.MustCompile("`[^`]*`")
)

// Refs returns the link targets of a Markdown document, outside fenced code
// blocks and code spans, and the repository paths it quotes in code spans
// (outside fenced blocks: those hold example commands, not references).
func Refs(md []byte) []Ref {
	var refs []Ref
	inFence := false
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		for _, m := range quotedPath.FindAllStringSubmatch(line, -1) {
			refs = append(refs, Ref{Line: n, Target: m[1], Quoted: true})
		}
		plain := codeSpan.ReplaceAllString(line, "``")
		if m := refDef.FindStringSubmatch(plain); m != nil {
			refs = append(refs, Ref{Line: n, Target: m[1]})
			continue
		}
		for _, m := range inlineLink.FindAllStringSubmatch(plain, -1) {
			refs = append(refs, Ref{Line: n, Target: m[1] + m[2]})
		}
	}
	return refs
}

// Anchors returns the anchors GitHub gives the headings of a Markdown
// document: lower case, punctuation dropped, spaces as hyphens, and -1, -2, …
// after a repeated one.
func Anchors(md []byte) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inFence := false
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		m := heading.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		a := Slug(m[2])
		if k := seen[a]; k > 0 {
			out[fmt.Sprintf("%s-%d", a, k)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// Slug is the anchor of one heading's text. Link markup keeps its text.
func Slug(text string) string {
	text = inlineLink.ReplaceAllStringFunc(text, func(s string) string {
		return s[1:strings.Index(s, "](")]
	})
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// CheckRefs checks the references of the Markdown file rel (relative to
// root): a relative link must name a file or folder of the repository, and
// its #anchor a heading of the Markdown file it names; a quoted path must
// exist (a Go identifier after a package path, `internal/gpu.Select`, is
// allowed). Links with a scheme (https:, mailto:) are not followed.
func CheckRefs(root, rel string) ([]Problem, error) {
	md, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	var probs []Problem
	bad := func(line int, format string, args ...any) {
		probs = append(probs, Problem{File: rel, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	for _, r := range Refs(md) {
		if r.Quoted {
			// A pattern (`runs/<run_id>/`, `cmd/llem-*/`) names no one path.
			if !strings.ContainsAny(r.Target, "*<>{}$…") && !quotedExists(root, r.Target) {
				bad(r.Line, "`%s` names no file or folder of the repository", r.Target)
			}
			continue
		}
		t := r.Target
		if t == "" || hasScheme(t) {
			continue
		}
		path, anchor, _ := strings.Cut(t, "#")
		file := rel
		if path != "" {
			if strings.HasPrefix(path, "/") {
				bad(r.Line, "link %q is absolute; link relative to %s", t, rel)
				continue
			}
			file = filepath.ToSlash(filepath.Join(filepath.Dir(rel), path))
			if file == ".." || strings.HasPrefix(file, "../") {
				bad(r.Line, "link %q leaves the repository", t)
				continue
			}
			if _, err := os.Stat(filepath.Join(root, file)); err != nil {
				bad(r.Line, "link %q: %s is not in the repository", t, file)
				continue
			}
		}
		if anchor == "" || !strings.HasSuffix(file, ".md") {
			continue
		}
		target, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			return nil, err
		}
		if !Anchors(target)[anchor] {
			bad(r.Line, "link %q: %s has no heading with anchor #%s", t, file, anchor)
		}
	}
	return probs, nil
}

func hasScheme(t string) bool {
	i := strings.Index(t, ":")
	return i > 0 && !strings.ContainsAny(t[:i], "/#")
}

// quotedExists says whether a path quoted in a document exists, ignoring a
// trailing slash and a trailing Go identifier (`internal/power.Reader`).
func quotedExists(root, p string) bool {
	p = strings.TrimSuffix(p, "/")
	if _, err := os.Stat(filepath.Join(root, p)); err == nil {
		return true
	}
	if i := strings.LastIndexByte(p, '.'); i > strings.LastIndexByte(p, '/') {
		if fi, err := os.Stat(filepath.Join(root, p[:i])); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// Forbidden finds the patterns in the files under root's paths (files or
// folders, walked whole), line by line, the way grep would report them; each
// pattern comes with the reason given for a match.
func Forbidden(root string, paths []string, patterns map[*regexp.Regexp]string) ([]Problem, error) {
	var probs []Problem
	for _, p := range paths {
		err := filepath.WalkDir(filepath.Join(root, p), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == ".git" {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			for i, line := range bytes.Split(b, []byte("\n")) {
				for re, why := range patterns {
					if m := re.Find(line); m != nil {
						probs = append(probs, Problem{File: filepath.ToSlash(rel), Line: i + 1, Msg: fmt.Sprintf("%q: %s", m, why)})
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(probs, func(i, j int) bool {
		if probs[i].File != probs[j].File {
			return probs[i].File < probs[j].File
		}
		if probs[i].Line != probs[j].Line {
			return probs[i].Line < probs[j].Line
		}
		return probs[i].Msg < probs[j].Msg
	})
	return probs, nil
}

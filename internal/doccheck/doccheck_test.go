package doccheck

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the folder holding go.mod, above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = up
	}
}

// docs are the Markdown files a reader of the repository is sent to.
func docs(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md", "RELIABILITY.md"}
	for _, g := range []string{"docs/*.md", "schemas/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
	}
	if len(files) < 5 {
		t.Fatalf("found only %v: is the root %s right?", files, root)
	}
	return files
}

// The words are assembled so that this file does not match them itself.
var (
	outside = map[*regexp.Regexp]string{
		regexp.MustCompile(regexp.QuoteMeta("shared" + "/")):       "refers outside the repository (example cluster paths: /cluster/...)",
		regexp.MustCompile(regexp.QuoteMeta("shared" + " folder")): "refers outside the repository",
		regexp.MustCompile(regexp.QuoteMeta("DESIGN" + ".md")):     "refers outside the repository (the design is docs/design.md)",
		regexp.MustCompile(`(?i)` + regexp.QuoteMeta("spec"+"/")):  "refers to a specification outside the repository",
		regexp.MustCompile(`Behaviou?r` + ` [0-9]`):                "refers to a numbered behaviour of a specification outside the repository",
		regexp.MustCompile(regexp.QuoteMeta("\u00a7")):             "section sign: refers to a specification outside the repository",
		regexp.MustCompile(regexp.QuoteMeta("lent" + " one")):      "the docs speak of the project, not of who was lent a machine",
		regexp.MustCompile(regexp.QuoteMeta("still a" + " stub")):  "stale: no tool is a stub",
		regexp.MustCompile(`internal/` + `exec\b`):                 "stale: the run loop is internal/runloop",
	}
	// codeOutside applies to code and scripts: the section sign stays
	// allowed there (RFC 8785's sections in internal/canonjson).
	codeOutside = map[*regexp.Regexp]string{}
)

func init() {
	for re, why := range outside {
		s := re.String()
		if strings.Contains(s, "shared") || strings.Contains(s, "DESIGN") {
			codeOutside[re] = why
		}
	}
}

// TestDocsLinks checks every relative link, anchor and quoted repository
// path of the repository's documents.
func TestDocsLinks(t *testing.T) {
	root := repoRoot(t)
	n := 0
	for _, f := range docs(t, root) {
		probs, err := CheckRefs(root, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range probs {
			t.Error(p)
		}
		b, _ := os.ReadFile(filepath.Join(root, f))
		n += len(Refs(b))
	}
	if n < 20 {
		t.Errorf("only %d references found in the documents: is the parser broken?", n)
	}
}

// TestDocsStandAlone fails on a document or source file that sends the
// reader outside the repository (to a folder of notes, a design card or a
// specification the repository does not hold), and on stale words.
func TestDocsStandAlone(t *testing.T) {
	root := repoRoot(t)
	probs, err := Forbidden(root, docs(t, root), outside)
	if err != nil {
		t.Fatal(err)
	}
	code, err := Forbidden(root, []string{"internal", "cmd", "scripts", "examples", "Makefile"}, codeOutside)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(probs, code...) {
		t.Error(p)
	}
}

func TestRefs(t *testing.T) {
	md := "# Title\n" +
		"See [the design](docs/design.md#identity) and [site](https://example.org \"t\").\n" +
		"Code `[not](a-link.md)` and `internal/runloop` and `internal/gpu.Select`.\n" +
		"```\n[inside](fence.md) `internal/nothere`\n```\n" +
		"[ref]: schemas/event.schema.json\n" +
		"A [link around `x[0]`](<docs/a b.md>).\n"
	got := Refs([]byte(md))
	want := []Ref{
		{Line: 2, Target: "docs/design.md#identity"},
		{Line: 2, Target: "https://example.org"},
		{Line: 3, Target: "internal/runloop", Quoted: true},
		{Line: 3, Target: "internal/gpu.Select", Quoted: true},
		{Line: 7, Target: "schemas/event.schema.json"},
		{Line: 8, Target: "docs/a b.md"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Refs:\n got %+v\nwant %+v", got, want)
	}
}

func TestAnchors(t *testing.T) {
	md := "# llem-exec: the run loop\n## Identity\n## Identity\n```\n# not a heading\n```\n" +
		"### `run_id` and (§-free) *stuff*\n## [Linked](x.md) heading ##\n"
	got := Anchors([]byte(md))
	want := map[string]bool{
		"llem-exec-the-run-loop": true, "identity": true, "identity-1": true,
		"run_id-and--free-stuff": true, "linked-heading": true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Anchors:\n got %v\nwant %v", got, want)
	}
}

func TestCheckRefs(t *testing.T) {
	root := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("internal/gpu/gpu.go", "package gpu\n")
	write("docs/design.md", "# Design\n## Run directories\n")
	write("README.md", "[ok](docs/design.md) [anchor](docs/design.md#run-directories)\n"+
		"[bad anchor](docs/design.md#identity) [missing](docs/nothere.md) [up](../x.md)\n"+
		"[self](#design) `internal/gpu.Select` `internal/exec` [web](https://x.org/y)\n")
	write("docs/x.md", "[back](../README.md) [here](#x)\n")
	probs, err := CheckRefs(root, "README.md")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	want := []string{
		`README.md:2: link "docs/design.md#identity": docs/design.md has no heading with anchor #identity`,
		`README.md:2: link "docs/nothere.md": docs/nothere.md is not in the repository`,
		`README.md:2: link "../x.md" leaves the repository`,
		"README.md:3: `internal/exec` names no file or folder of the repository",
		`README.md:3: link "#design": README.md has no heading with anchor #design`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CheckRefs:\n got %q\nwant %q", got, want)
	}
	probs, err = CheckRefs(root, "docs/x.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || !strings.Contains(probs[0].Msg, "#x") {
		t.Errorf("docs/x.md: %v, want only the missing #x", probs)
	}
}

func TestForbidden(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "docs", ".git"), 0o755)
	os.WriteFile(filepath.Join(root, "docs", "a.md"), []byte("fine\nsee "+"DESIGN"+".md here\n"), 0o644)
	os.WriteFile(filepath.Join(root, "docs", ".git", "b.md"), []byte("DESIGN"+".md"), 0o644)
	probs, err := Forbidden(root, []string{"docs"}, codeOutside)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].File != "docs/a.md" || probs[0].Line != 2 {
		t.Errorf("Forbidden: %v, want one problem at docs/a.md:2", probs)
	}
}

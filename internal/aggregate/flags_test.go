package aggregate

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Every Flag constant of the package is listed by FlagCodes and documented
// in docs/aggregate.md and docs/design.md, so a new flag cannot go unexplained.
func TestFlagCodesListedAndDocumented(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || len(vs.Names) != 1 || !strings.HasPrefix(vs.Names[0].Name, "Flag") || len(vs.Values) != 1 {
				return true
			}
			if lit, ok := vs.Values[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				v, _ := strconv.Unquote(lit.Value)
				consts = append(consts, v)
			}
			return true
		})
	}
	if len(consts) < 30 {
		t.Fatalf("found only %d flag constants", len(consts))
	}
	codes := FlagCodes()
	for _, doc := range []string{"../../docs/aggregate.md", "../../docs/design.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range consts {
			if !slices.Contains(codes, c) {
				t.Errorf("FlagCodes lacks %q", c)
			}
			if !strings.Contains(string(b), "`"+c+"`") {
				t.Errorf("%s does not document %q", doc, c)
			}
		}
	}
}

package codecheck

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MaxFuncLines is the longest a function may be, from its func line to its
// closing brace, function literals included: short enough to read at once.
const MaxFuncLines = 80

// goFiles lists the non-test Go files under internal/ and cmd/, testdata
// left out.
func goFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, root := range []string{"../../internal", "../../cmd"} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && d.Name() == "testdata":
				return filepath.SkipDir
			case !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go"):
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 100 {
		t.Fatalf("found only %d Go files", len(files))
	}
	return files
}

func TestFunctionLength(t *testing.T) {
	fset := token.NewFileSet()
	for _, p := range goFiles(t) {
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			name := ""
			switch fn := n.(type) {
			case *ast.FuncDecl:
				name = fn.Name.Name
			case *ast.FuncLit:
				name = "a function literal"
			default:
				return true
			}
			start, end := fset.Position(n.Pos()), fset.Position(n.End())
			if lines := end.Line - start.Line + 1; lines > MaxFuncLines {
				t.Errorf("%s:%d: %s is %d lines (at most %d)", strings.TrimPrefix(start.Filename, "../../"), start.Line, name, lines, MaxFuncLines)
			}
			return true
		})
	}
}

// stdPackages is the set of standard-library package names (the last
// element of each import path), from go list std.
func stdPackages(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(filepath.Join(build.Default.GOROOT, "bin", "go"), "list", "std").Output()
	if err != nil {
		t.Fatalf("go list std: %v", err)
	}
	std := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "internal") || strings.HasPrefix(p, "vendor/") {
			continue
		}
		std[p[strings.LastIndex(p, "/")+1:]] = true
	}
	return std
}

// No package shadows a standard-library package (a reader of `exec.Run`
// must not wonder which exec), and no two share a name.
func TestPackageNames(t *testing.T) {
	std := stdPackages(t)
	if !std["exec"] || !std["json"] || std["runloop"] {
		t.Fatalf("the standard-library list is wrong: exec %v, json %v, runloop %v", std["exec"], std["json"], std["runloop"])
	}
	dirOf := map[string]string{}
	fset := token.NewFileSet()
	for _, p := range goFiles(t) {
		f, err := parser.ParseFile(fset, p, nil, parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		name, dir := f.Name.Name, filepath.Dir(p)
		if name == "main" {
			continue
		}
		if std[name] {
			t.Errorf("%s: package %s shadows the standard library's", dir, name)
		}
		if other, ok := dirOf[name]; ok && other != dir {
			t.Errorf("package %s in both %s and %s", name, other, dir)
		}
		dirOf[name] = dir
	}
}

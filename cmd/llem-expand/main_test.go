package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
)

var update = flag.Bool("update", false, "rewrite golden files")

var bin string

// TestMain builds the real binary once; the tests run it as a process.
func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "llem-expand-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "llem-expand")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runBin(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, got)
	}
}

func TestHelpListsExitCodes(t *testing.T) {
	out, _, code := runBin(t, "", "--help")
	if code != 0 || !strings.Contains(out, "Exit codes: 0 ok, 1 runtime failure, 2 usage or input error") || !strings.Contains(out, "--emit-skipped") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if _, _, code := runBin(t, ""); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
	if _, errOut, code := runBin(t, "", "--format", "xml", "x.yaml"); code != 2 || !strings.Contains(errOut, "xml") {
		t.Errorf("bad --format: exit %d %s", code, errOut)
	}
}

// The human preview of the examples, golden.
func TestTableGolden(t *testing.T) {
	for _, name := range []string{"quickstart", "reference"} {
		out, errOut, code := runBin(t, "", "--format", "table", filepath.Join("..", "..", "examples", name+".yaml"))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, errOut)
		}
		golden(t, name+".table", out)
	}
}

// Errors as people see them, golden; every line names file:line:col, the
// field and a hint, and the exit code is 2.
func TestErrorsGolden(t *testing.T) {
	cases := []struct{ name, src string }{
		{"misspelt key", "model: llem-tiny\nprecison: fp16\n"},
		{"sweep value", "model: gpt2\nbackend: pytorch\nsweep:\n  pytorch.batch_size: [1, eight]\n"},
		{"absent backend axis", "model: gpt2\nbackend: vllm\nsweep:\n  pytorch.batch_size: [1, 4]\n"},
		{"bad yaml", "model: x\nsweep: n: [1\n"},
		{"several", "model: llem-tiny\nn: -1\ndecoder: {temperature: hot}\nexecution: {cycle_order: random}\nrunners: {vlm: docker}\n"},
	}
	line := regexp.MustCompile(`^llem-expand: bad\.yaml:\d+:\d+: \S+.* \(hint: .+\)$`)
	var all strings.Builder
	for _, c := range cases {
		dir := t.TempDir()
		p := filepath.Join(dir, "bad.yaml")
		os.WriteFile(p, []byte(c.src), 0o644)
		cmd := exec.Command(bin, "bad.yaml")
		cmd.Dir = dir
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || o.Len() != 0 {
			t.Errorf("%s: want exit 2 and no output, got %v, %q", c.name, err, o.String())
		}
		for _, l := range strings.Split(strings.TrimSpace(e.String()), "\n") {
			if !line.MatchString(l) && !strings.Contains(c.name, "yaml") {
				t.Errorf("%s: line lacks file:line:col, field or hint: %q", c.name, l)
			}
		}
		all.WriteString("# " + c.name + "\n" + e.String())
	}
	golden(t, "errors.golden", all.String())
}

func TestNDJSONFromStdinWithOverrides(t *testing.T) {
	src := "model: llem-tiny\nsweep:\n  native.batch_size: [1, 4]\n  precision: [fp32, fp16]\n"
	out, errOut, code := runBin(t, src, "--set", "n=8", "--cycles", "2", "--order", "interleaved", "--emit-skipped", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "2 configs × 2 cycles = 4 runs") || !strings.Contains(errOut, "skipped 2 of 4") {
		t.Errorf("summary: %s", errOut)
	}
	r := record.NewReader(strings.NewReader(out), "stdout")
	kinds := ""
	for r.Next() {
		switch r.Line().Kind {
		case record.KindSkipped:
			var s record.Skipped
			if err := r.Line().Decode(&s); err != nil {
				t.Fatal(err)
			}
			kinds += "s"
		case record.KindExperiment:
			var e record.Experiment
			if err := r.Line().Decode(&e); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(e.Config), `"n":8`) {
				t.Error("--set n=8 not applied")
			}
			kinds += "e"
		}
	}
	if r.Err() != nil || kinds != "sseeee" {
		t.Errorf("records %q, %v", kinds, r.Err())
	}
	cnt, _, code := runBin(t, src, "--format", "count", "--cycles", "5", "-q", "-")
	if code != 0 || strings.TrimSpace(cnt) != "10" {
		t.Errorf("count: %q exit %d", cnt, code)
	}
	// All invalid: exit 2.
	if _, errOut, code := runBin(t, "model: llem-tiny\nprecision: bf16\n", "-"); code != 2 || !strings.Contains(errOut, "nothing to run") {
		t.Errorf("all invalid: exit %d %s", code, errOut)
	}
}

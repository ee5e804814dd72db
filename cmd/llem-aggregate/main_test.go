package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The real binary: --help lists the exit codes; an unknown kind passes
// through a pipe untouched; bad input exits 2 with one line naming the position.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "llem-aggregate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	help, err := exec.Command(bin, "--help").Output()
	if err != nil || !strings.Contains(string(help), "Exit codes:") || !strings.Contains(string(help), "--root") {
		t.Fatalf("--help: %v\n%s", err, help)
	}
	in := `{"kind":"note","v":1,"text":"kept as is"}` + "\n"
	cmd := exec.Command(bin)
	cmd.Stdin = strings.NewReader(in)
	out, err := cmd.Output()
	if err != nil || string(out) != in {
		t.Fatalf("passthrough: %v %q", err, out)
	}
	cmd = exec.Command(bin)
	cmd.Stdin = strings.NewReader(in + `{"kind":"run","v":1,"cycle":"x"}` + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.HasPrefix(stderr.String(), "llem-aggregate: <stdin>:2:") {
		t.Fatalf("bad input: %v %q", err, stderr.String())
	}
}

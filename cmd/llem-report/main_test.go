package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The real binary: --help documents the exit codes; a report of recorded
// records; bad input exits 2 with one line naming the position; SIGINT while
// it waits on stdin exits 130.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "llem-report")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	help, err := exec.Command(bin, "--help").Output()
	if err != nil || !strings.Contains(string(help), "Exit codes: 0 ok, 1 runtime failure, 2 usage or input error") ||
		!strings.Contains(string(help), "130 interrupted") || !strings.Contains(string(help), "--format") {
		t.Fatalf("--help: %v\n%s", err, help)
	}
	in, err := os.ReadFile("../../internal/report/testdata/quickstart/energy.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "batch_size") || !strings.Contains(string(out), "†") {
		t.Fatalf("report: %v\n%s", err, out)
	}

	cmd = exec.Command(bin, "--format", "csv")
	cmd.Stdin = strings.NewReader(string(in) + `{"kind":"energy","v":1,"id":"x","run_id":"x-c1","metrics":{"energy_j":"many"}}` + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.HasPrefix(stderr.String(), "llem-report: <stdin>:7:") ||
		!strings.Contains(stderr.String(), "field metrics.energy_j") || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("bad input: %v %q", err, stderr.String())
	}

	cmd = exec.Command(bin)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stderr.Reset()
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Write(in[:len(in)/2])
	// Once llem-report has read what was written, its handler is in place
	// (it is the first thing main does): the pipe holds nothing any more.
	fd := int(w.(*os.File).Fd())
	for {
		// TIOCINQ is FIONREAD: the bytes in the pipe.
		if n, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err != nil || n == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling the pipe, not a timing
	}
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
			t.Fatalf("SIGINT: %v %q, want exit 130", err, stderr.String())
		}
	case <-time.After(5 * time.Minute): // a hang, not a slow machine
		cmd.Process.Kill()
		t.Fatal("SIGINT did not stop llem-report")
	}
}

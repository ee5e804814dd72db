package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"

	"github.com/llem/llem/internal/power"
)

var bin string

func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "llem-sample-test")
	bin = filepath.Join(dir, "llem-sample")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// readArrow reads a stream with Arrow's own reader (independent of
// internal/power) and returns the rows and the estimate flag.
func readArrow(t *testing.T, r io.Reader) (rows int, estimate string) {
	t.Helper()
	rd, err := ipc.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	for rd.Next() {
		rec := rd.Record()
		rows += int(rec.NumRows())
		src := rec.Column(1).(*array.String)
		for i := 0; i < src.Len(); i++ {
			if src.Value(i) != "estimate" {
				t.Fatalf("source %q", src.Value(i))
			}
		}
	}
	if rd.Err() != nil {
		t.Fatal(rd.Err())
	}
	estimate, _ = rd.Schema().Metadata().GetValue("estimate")
	return rows, estimate
}

func TestHelp(t *testing.T) {
	out, err := exec.Command(bin, "--help").Output()
	if err != nil || !strings.Contains(string(out), "Exit codes:") || !strings.Contains(string(out), "--interval") {
		t.Fatalf("%v %s", err, out)
	}
}

// Wrapping a command: its exit code, a summary on stderr, a readable file.
func TestWrap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.arrows")
	cmd := exec.Command(bin, "-o", path, "--interval", "10ms", "--sources", "estimate", "--", "sh", "-c", "echo hi; exit 3")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("exit %v; stderr %s", err, stderr.String())
	}
	if stdout.String() != "hi\n" || !strings.Contains(stderr.String(), "cpu-estimate (estimate)") || !strings.Contains(stderr.String(), "counter_j") {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	f, _ := os.Open(path)
	defer f.Close()
	// However quickly the command ends: the first tick is read at the start.
	rows, est := readArrow(t, f)
	if rows < 1 || est != "true" {
		t.Fatalf("rows %d estimate %q", rows, est)
	}
}

// Sampling to stdout until stdin closes (at once here): a whole stream with
// the first tick.
func TestStdinCloseStops(t *testing.T) {
	cmd := exec.Command(bin, "--interval", "5ms", "--sources", "estimate", "-q")
	pw, _ := cmd.StdinPipe()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v %s", err, stderr.String())
	}
	if rows, _ := readArrow(t, &stdout); rows < 1 {
		t.Fatalf("rows %d", rows)
	}
}

// SIGTERM once sampling runs (the stream's header is in the file: the
// handler is in place by then) ends it with a whole stream.
func TestSIGTERMStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.arrows")
	cmd := exec.Command(bin, "-o", path, "--interval", "5ms", "--sources", "estimate", "--ignore-stdin")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling for the header, not a timing
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v %s", err, stderr.String())
	}
	f, _ := os.Open(path)
	defer f.Close()
	if rows, _ := readArrow(t, f); rows < 1 {
		t.Fatalf("rows %d", rows)
	}
}

// The reader of stdout goes away: a clear message, exit 1, no SIGPIPE death.
func TestClosedStdoutPipe(t *testing.T) {
	cmd := exec.Command(bin, "--interval", "2ms", "--sources", "estimate", "--ignore-stdin")
	rp, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Start()
	buf := make([]byte, 100)
	io.ReadFull(rp, buf)
	rp.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "output closed by its reader (broken pipe)") {
			t.Fatalf("%v %q", err, stderr.String())
		}
	case <-time.After(5 * time.Minute): // a hang, not a slow machine
		cmd.Process.Kill()
		t.Fatal("did not stop on a closed pipe")
	}
}

func TestFullDisk(t *testing.T) {
	cmd := exec.Command(bin, "-o", "/dev/full", "--sources", "estimate", "--ignore-stdin")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "no space left on device") {
		t.Fatalf("%v %q", err, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--interval", "10us"}, {"--sources", "ipmi"}, {"--", "/no/such/command"}, {"--bogus"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || strings.Count(string(out), "\n") != 1 {
			t.Fatalf("%v: %v %q", args, err, out)
		}
	}
}

// The tool's stream read by a reader outside Go (testdata/read_arrows.py,
// written from the Arrow format spec with Python's standard library) agrees
// with internal/power's reader row for row.
func TestPythonReader(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	path := filepath.Join(t.TempDir(), "p.arrows")
	if out, err := exec.Command(bin, "-o", path, "--interval", "5ms", "--sources", "estimate", "-q", "--", "sleep", "0.3").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	out, err := exec.Command("python3", "testdata/read_arrows.py", path).Output()
	if err != nil {
		t.Fatalf("python reader: %v", err)
	}
	var py struct {
		Meta    map[string]string
		Devices map[string]struct {
			Rows       int     `json:"rows"`
			PowerSum   float64 `json:"power_sum"`
			EnergyLast float64 `json:"energy_last"`
		}
	}
	if err := json.Unmarshal(out, &py); err != nil {
		t.Fatal(err)
	}
	r, err := power.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, sum, last := 0, 0.0, 0.0
	for r.Next() {
		b := r.Batch()
		for i := 0; i < b.N; i++ {
			rows++
			if b.PowerOK == nil || b.PowerOK[i] {
				sum += b.PowerW[i]
			}
			last = b.EnergyJ[i]
		}
	}
	d := py.Devices["cpu-estimate"]
	if len(py.Devices) != 1 || d.Rows != rows || rows < 30 || math.Abs(d.PowerSum-sum) > 1e-9 || d.EnergyLast != last {
		t.Fatalf("python %+v, go rows %d sum %v last %v", py.Devices, rows, sum, last)
	}
	if py.Meta["estimate"] != "true" || py.Meta["interval_ns"] != "5000000" || py.Meta["sources"] != "estimate" {
		t.Fatalf("meta %v", py.Meta)
	}
}

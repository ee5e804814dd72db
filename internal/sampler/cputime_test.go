package sampler

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/llem/llem/internal/power"
)

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupCPU(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cpu.stat"), "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
	c := CgroupCPU(dir)
	defer c.Close()
	if s, err := c.CPUSeconds(); err != nil || s != 2.5 {
		t.Fatalf("CPUSeconds = %v, %v; want 2.5", s, err)
	}
	if c.Method() != "cgroup:"+dir {
		t.Errorf("method %q", c.Method())
	}
	if _, err := CgroupCPU(t.TempDir()).CPUSeconds(); err == nil {
		t.Error("a cgroup without cpu.stat read")
	}
}

// procStat writes /proc/<pid>/stat with a comm holding spaces and a ')'.
func procStat(t *testing.T, proc string, pid, ppid, utime, stime, cutime, cstime int) {
	line := strconv.Itoa(pid) + " (odd) name) S " + strconv.Itoa(ppid) + " 1 1 0 -1 4194304 0 0 0 0 " +
		strconv.Itoa(utime) + " " + strconv.Itoa(stime) + " " + strconv.Itoa(cutime) + " " + strconv.Itoa(cstime) + " 20 0 1 0 100\n"
	writeFile(t, filepath.Join(proc, strconv.Itoa(pid), "stat"), line)
}

// The tree under pid 10 is 10 → 11 → 12; 20 is a sibling outside it. Its
// CPU time is 10's, 11's and 12's (reaped children included), not 20's;
// once 10 has gone, the last sum holds.
func TestTreeCPU(t *testing.T) {
	proc := t.TempDir()
	procStat(t, proc, 1, 0, 0, 0, 0, 0)
	procStat(t, proc, 10, 1, 100, 20, 30, 0)
	procStat(t, proc, 11, 10, 50, 0, 0, 0)
	procStat(t, proc, 12, 11, 0, 0, 0, 50)
	procStat(t, proc, 20, 1, 10000, 0, 0, 0)
	writeFile(t, filepath.Join(proc, "self", "cgroup"), "0::/\n") // not a pid: skipped
	root := 0
	c := TreeCPU(proc, func() int { return root })
	if s, err := c.CPUSeconds(); err != nil || s != 0 {
		t.Fatalf("before the run's process: %v, %v", s, err)
	}
	root = 10
	if s, err := c.CPUSeconds(); err != nil || s != 2.5 {
		t.Fatalf("tree: %v, %v; want 2.5 s (250 ticks)", s, err)
	}
	os.RemoveAll(filepath.Join(proc, "10"))
	if s, err := c.CPUSeconds(); err != nil || s != 2.5 {
		t.Fatalf("after the root exited: %v, %v; want the last sum", s, err)
	}
}

func TestParseStatMalformed(t *testing.T) {
	for _, s := range []string{"", "1 (x) S", "1 (x) S notanumber 1 1 0 -1 0 0 0 0 0 1 2 3 4", "1 x S 1 1 1 0 -1 0 0 0 0 0 1 2 3 4"} {
		if _, _, err := parseStat([]byte(s)); err == nil {
			t.Errorf("parseStat(%q) took it", s)
		}
	}
}

func TestWattsPerCore(t *testing.T) {
	for _, c := range []struct {
		conf  float64
		model string
		want  float64
		from  string
	}{
		{7, "AMD EPYC 7763 64-Core Processor", 7, WPCConfigured},
		{0, "AMD EPYC 7763 64-Core Processor", 280.0 / 128, WPCTDPTable},
		{0, "Intel(R) Xeon(R) Platinum 8480+", 350.0 / 112, WPCTDPTable},
		{0, "AMD EPYC", DefaultWattsPerCore, WPCDefault},
		{0, "", DefaultWattsPerCore, WPCDefault},
	} {
		w, from := WattsPerCore(c.conf, c.model)
		if w != c.want || from != c.from {
			t.Errorf("WattsPerCore(%v, %q) = %v %s, want %v %s", c.conf, c.model, w, from, c.want, c.from)
		}
	}
}

// fakeRun is a run whose CPU time grows by step each read.
type fakeRun struct{ s, step float64 }

func (f *fakeRun) CPUSeconds() (float64, error) { f.s += f.step; return f.s, nil }
func (f *fakeRun) Method() string               { return "cgroup:/fake" }
func (f *fakeRun) Close() error                 { return nil }

// With Options.Run, every estimate row carries the run's and the machine's
// CPU time, the stream names the method, and the estimate device says
// where its per-core figure came from.
func TestSessionCPUTime(t *testing.T) {
	proc := t.TempDir()
	writeFile(t, filepath.Join(proc, "stat"), "cpu  300 0 100 9000 50 0 0 0 0 0\n")
	clk := newFakeClock()
	var buf bytes.Buffer
	start := clk.Now()
	s, err := Start(Options{Interval: 10 * time.Millisecond, Sources: []string{"estimate"}, ProcRoot: proc,
		Run: &fakeRun{step: 0.5}, clock: clk}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	clk.drive(start, 50*time.Millisecond, func(int) time.Duration { return 0 })
	if _, err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	r, err := power.NewReader(bytes.NewReader(buf.Bytes()), "mem")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Meta().Attribution != "cgroup:/fake" {
		t.Errorf("attribution %q", r.Meta().Attribution)
	}
	if d := r.Devices()[0]; d.WattsPerCoreSource != WPCDefault || d.WattsPerCore != DefaultWattsPerCore {
		t.Errorf("estimate device %+v", d)
	}
	rows := 0
	for r.Next() {
		b := r.Batch()
		for i := 0; i < b.N; i++ {
			rows++
			runOK := b.RunCPUOK == nil || b.RunCPUOK[i]
			machOK := b.MachineOK == nil || b.MachineOK[i]
			if !runOK || !machOK || b.MachineCPU[i] != 4 || b.RunCPU[i] != 0.5*float64(rows) {
				t.Errorf("row %d: run %v machine %v", rows, b.RunCPU[i], b.MachineCPU[i])
			}
		}
	}
	if rows < 5 {
		t.Errorf("%d rows", rows)
	}
}

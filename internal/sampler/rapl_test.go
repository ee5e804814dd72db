package sampler

import (
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llem/llem/internal/power"
)

// fakeRAPL builds a powercap tree: package 0 with core and dram subzones,
// package 1, and a psys zone that is not reported.
func fakeRAPL(t testing.TB, maxUJ uint64) string {
	root := t.TempDir()
	mk := func(zone, name string, uj uint64) {
		d := filepath.Join(root, "class", "powercap", zone)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "name"), []byte(name+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "energy_uj"), []byte(fmt.Sprintf("%-20d\n", uj)), 0o644)
		os.WriteFile(filepath.Join(d, "max_energy_range_uj"), []byte(strconv.FormatUint(maxUJ, 10)+"\n"), 0o644)
	}
	mk("intel-rapl:0", "package-0", maxUJ-1_000_000) // 1 J below the wrap
	mk("intel-rapl:0:0", "core", 5)
	mk("intel-rapl:0:1", "dram", 7)
	mk("intel-rapl:1", "package-1", 0)
	mk("intel-rapl:2", "psys", 0)
	return root
}

// setUJ rewrites a counter in place with one fixed-width write (no
// truncation), so that a concurrent read never sees an empty file.
func setUJ(t *testing.T, root, zone string, uj uint64) {
	if err := writeUJ(root, zone, uj); err != nil {
		t.Fatal(err)
	}
}

// writeUJ rewrites a fake energy_uj in place (the sampler keeps it open).
func writeUJ(root, zone string, uj uint64) error {
	f, err := os.OpenFile(filepath.Join(root, "class", "powercap", zone, "energy_uj"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt([]byte(fmt.Sprintf("%-20d\n", uj)), 0)
	return err
}

func TestRAPLWrap(t *testing.T) {
	const maxUJ = 262143328850
	root := fakeRAPL(t, maxUJ)
	r, err := newRAPL(root, func(m string) { t.Errorf("warning %s", m) })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range r.Devices() {
		names = append(names, d.Device+":"+d.Scope)
	}
	if got := strings.Join(names, " "); got != "package-0:cpu_package core-0:cpu_core dram-0:dram package-1:cpu_package" {
		t.Fatalf("devices %s", got)
	}
	s0 := r.Read(nil)
	if len(s0) != 4 || s0[0].Has&power.HasPower != 0 || s0[0].EnergyJ != 0 {
		t.Fatalf("first read %+v", s0)
	}
	// package-0 wraps: from max−1 J to 2.5 J = 3.5 J + 1 µJ (the range is 0..max inclusive).
	setUJ(t, root, "intel-rapl:0", 2_500_000)
	setUJ(t, root, "intel-rapl:1", 4_000_000)
	// Not a wait for anything: only time for the clock to move, so that
	// power has an interval (the check uses the measured one).
	time.Sleep(20 * time.Millisecond)
	s1 := r.Read(nil)
	if math.Abs(s1[0].EnergyJ-3.500001) > 1e-9 || s1[3].EnergyJ != 4 {
		t.Fatalf("energy after wrap %v, package-1 %v", s1[0].EnergyJ, s1[3].EnergyJ)
	}
	dt := float64(s1[0].T-s0[0].T) / 1e9
	if s1[0].Has&power.HasPower == 0 || math.Abs(s1[0].PowerW-3.500001/dt) > 1e-6 {
		t.Fatalf("power %v want %v", s1[0].PowerW, 3.5/dt)
	}
	// A domain whose reads start failing is dropped once; the others go on.
	os.WriteFile(filepath.Join(root, "class", "powercap", "intel-rapl:0:1", "energy_uj"), []byte("gone\n"), 0o644)
	var warned []string
	r.warn = func(m string) { warned = append(warned, m) }
	s2 := r.Read(nil)
	s3 := r.Read(nil)
	if len(s2) != 3 || len(s3) != 3 || len(warned) != 1 || !strings.Contains(warned[0], "dram-0 no longer sampled") {
		t.Fatalf("%d %d %q", len(s2), len(s3), warned)
	}
}

// energy_uj is root-only since Linux 5.10: the open fails with EACCES. One
// warning; under auto the session goes on without RAPL (here: the estimate).
func TestRAPLNoPermission(t *testing.T) {
	root := fakeRAPL(t, 1000)
	old := openFile
	openFile = func(p string) (*os.File, error) {
		return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
	}
	defer func() { openFile = old }()
	withNoGPU(t)
	var warned []string
	var mu sync.Mutex
	devs, _, err := Probe(Options{SysfsRoot: root, Warn: func(m string) { mu.Lock(); warned = append(warned, m); mu.Unlock() }})
	if err != nil || len(warned) != 1 || !strings.Contains(warned[0], "rapl: no permission to read") || len(devs) != 1 || !devs[0].Estimate {
		t.Fatalf("err %v warnings %q devs %+v", err, warned, devs)
	}
	if _, _, err := Probe(Options{SysfsRoot: root, Sources: []string{"rapl"}}); err == nil {
		t.Fatal("rapl named explicitly without permission: no error")
	}
}

// A session over the fake tree, read back: energy_j is cumulative and wrap-corrected.
func TestRAPLSession(t *testing.T) {
	root := fakeRAPL(t, 262143328850)
	var buf bytes.Buffer
	tc := newTickCounter()
	s, err := Start(Options{Interval: 5 * time.Millisecond, Sources: []string{"rapl"}, SysfsRoot: root, Custom: []Source{tc}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	// Wrapped: +2 J. Written inside tick 3, so ticks 4 to 6 read it whole
	// (written beside a running read, a read could see half of it).
	written := make(chan error, 1)
	tc.at(3, func() { written <- writeUJ(root, "intel-rapl:0", 1_000_000) })
	tc.wait(6)
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	st, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if st.Summary[0].CounterJ == nil || math.Abs(*st.Summary[0].CounterJ-2.000001) > 1e-9 {
		t.Fatalf("package-0 energy %+v", st.Summary[0])
	}
	r, _ := power.NewReader(&buf, "b")
	last := map[string]float64{}
	for r.Next() {
		b := r.Batch()
		for i := 0; i < b.N; i++ {
			last[r.Devices()[b.Dev[i]].Device] = b.EnergyJ[i]
		}
	}
	if math.Abs(last["package-0"]-2.000001) > 1e-9 || last["core-0"] != 0 || r.Meta().Sources[0] != "rapl" {
		t.Fatalf("%v %+v", last, r.Meta())
	}
}

func TestEstimate(t *testing.T) {
	proc := t.TempDir()
	stat := func(user, sys, idle int) {
		os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu  "+strconv.Itoa(user)+" 0 "+strconv.Itoa(sys)+" "+strconv.Itoa(idle)+" 50 0 0 0 0 0\ncpu0 1 2 3 4\n"), 0o644)
	}
	stat(1000, 500, 9000)
	e, err := newEstimate(proc, nil, 10, "", func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	s0 := e.Read(nil)
	stat(1100, 600, 9000) // 200 ticks = 2 CPU-seconds busy → 20 J at 10 W/core
	s1 := e.Read(nil)
	if s0[0].EnergyJ != 0 || s1[0].EnergyJ != 20 || s1[0].Source != "estimate" || !e.Devices()[0].Estimate {
		t.Fatalf("%+v %+v", s0, s1)
	}
	// A process tree: utime+stime+cutime+cstime of each pid; comm with spaces.
	os.MkdirAll(filepath.Join(proc, "42"), 0o755)
	os.WriteFile(filepath.Join(proc, "42", "stat"), []byte("42 (my worker) R 1 42 42 0 -1 4194304 100 0 0 0 300 100 10 0 20 0 1 0 100 0 0\n"), 0o644)
	pe, err := newEstimate(proc, func() []int { return []int{42, 999} }, 5, "", func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if sec, _ := pe.cpuSeconds(); sec != 4.1 {
		t.Fatalf("process tree CPU seconds %v, want 4.1", sec)
	}
}

// The estimate on this machine's real /proc, through a whole session.
func TestEstimateRealProc(t *testing.T) {
	var buf bytes.Buffer
	tc := newTickCounter()
	s, err := Start(Options{Interval: 10 * time.Millisecond, Sources: []string{"estimate"}, Custom: []Source{tc}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	tc.wait(15)
	st, err := s.Stop()
	if err != nil || st.Rows < 15 {
		t.Fatalf("rows %d err %v", st.Rows, err)
	}
	r, _ := power.NewReader(&buf, "b")
	if !r.Meta().Estimate || !r.Meta().Devices[0].Estimate || r.Meta().HostInfo == nil || r.Meta().HostInfo.CPUs == 0 {
		t.Fatalf("meta %+v", r.Meta())
	}
}

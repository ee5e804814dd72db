package cpuattr

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeProc is a /proc whose mountinfo names mnt as the cgroup v2 mount
// (with opts) and whose process 42 is in cgroup own.
func fakeProc(t *testing.T, mnt, opts, own string) string {
	proc := t.TempDir()
	write(t, filepath.Join(proc, "self", "mountinfo"),
		"25 1 0:23 / /sys rw,nosuid - sysfs sysfs rw\n"+
			"30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"+
			"40 30 0:37 / "+mnt+" "+opts+" - cgroup2 cgroup2 rw\n")
	write(t, filepath.Join(proc, "42", "cgroup"), "4:memory:/x\n0::"+own+"\n")
	return proc
}

// A hybrid system's unified mount and the process's own cgroup make the
// run's cgroup's path; the process moved there is written to cgroup.procs
// and read back from cpu.stat.
func TestNewMakesGroup(t *testing.T) {
	mnt := t.TempDir()
	dir := filepath.Join(mnt, "user.slice", "llem-r1")
	// A real cgroup fills a new directory with cpu.stat; this one is made
	// in advance, as the kernel would.
	write(t, filepath.Join(dir, "cpu.stat"), "usage_usec 1500000\n")
	tg := New(Paths{Proc: fakeProc(t, mnt, "rw,relatime", "/user.slice"), Self: 42}, "llem-r1")
	if tg.CgroupDir() != dir || tg.NoGroup != "" {
		t.Fatalf("cgroup %q (no group: %s), want %s", tg.CgroupDir(), tg.NoGroup, dir)
	}
	if err := tg.Add(7); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); string(b) != "7" {
		t.Errorf("cgroup.procs = %q", b)
	}
	rc := tg.RunCPU()
	if s, err := rc.CPUSeconds(); err != nil || s != 1.5 || rc.Method() != "cgroup:"+dir {
		t.Errorf("run CPU %v, %v via %s", s, err, rc.Method())
	}
}

// Without a writable cgroup v2 the target is the process tree, and says why.
func TestNewFallsBack(t *testing.T) {
	for name, proc := range map[string]string{
		"read-only": fakeProc(t, t.TempDir(), "ro,relatime", "/"),
		"no cgroup2": func() string {
			p := t.TempDir()
			write(t, filepath.Join(p, "self", "mountinfo"), "25 1 0:23 / /sys rw - sysfs sysfs rw\n")
			return p
		}(),
		"no cpu.stat": fakeProc(t, t.TempDir(), "rw", "/"),
	} {
		tg := New(Paths{Proc: proc, Self: 42}, "llem-r1")
		if tg.CgroupDir() != "" || tg.NoGroup == "" || tg.RunCPU().Method() != "process-tree" {
			t.Errorf("%s: cgroup %q, no group %q", name, tg.CgroupDir(), tg.NoGroup)
		}
	}
}

// cpuSeconds is a process's utime+stime+cutime+cstime in seconds.
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var s float64
	for _, v := range f[11:15] {
		n, _ := strconv.Atoi(v)
		s += float64(n) / 100
	}
	return s
}

const busyLoop = "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done"

// A real run: a process doing a fixed amount of work inside the target,
// while a busy sibling outside it runs beside. The run's CPU time is its
// own process's (rusage), not the sibling's, in a cgroup where cgroup v2
// is writable and in the process-tree fallback alike. No clock is waited
// on: the run's end and the sibling's CPU time are the events.
func TestRealProcessNotSibling(t *testing.T) {
	if testing.Short() {
		t.Skip("runs busy loops")
	}
	sib := exec.Command("sh", "-c", "while :; do :; done")
	if err := sib.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sib.Process.Kill(); sib.Wait() }()
	targets := map[string]*Target{"tree": ProcessTree(Paths{}, "test")}
	if g := New(Paths{}, "llem-test-"+strconv.Itoa(os.Getpid())); g.CgroupDir() != "" {
		targets["cgroup"] = g
	} else {
		t.Logf("no cgroup (%s): the process tree only", g.NoGroup)
	}
	for name, tg := range targets {
		rc := tg.RunCPU()
		before, _ := rc.CPUSeconds()
		sib0 := cpuSeconds(t, sib.Process.Pid)
		run := exec.Command("sh", "-c", busyLoop+"; sh -c '"+busyLoop+"'")
		if tg.CgroupDir() != "" {
			d, err := os.Open(tg.CgroupDir())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			run.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(d.Fd())}
		}
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		tg.Add(run.Process.Pid)
		// Read once the run has exited but is not yet waited for (a
		// zombie keeps its times); after the wait its time is this
		// test's, outside the tree. A cgroup keeps it either way.
		for st := state(run.Process.Pid); st != "Z" && st != ""; st = state(run.Process.Pid) {
			if _, err := rc.CPUSeconds(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // a poll, not a timing assumption
		}
		after, err := rc.CPUSeconds()
		if err != nil {
			t.Fatal(err)
		}
		run.Wait()
		own := (run.ProcessState.UserTime() + run.ProcessState.SystemTime()).Seconds()
		sibUsed := cpuSeconds(t, sib.Process.Pid) - sib0
		got := after - before
		t.Logf("%s: run %.2f s, its own rusage %.2f s, sibling %.2f s", name, got, own, sibUsed)
		// Generous bounds: the clocks differ (ticks vs µs), but the
		// sibling's time (about as much as the run's) must not be in.
		if got < own*0.8-0.05 || got > own*1.2+0.05 {
			t.Errorf("%s: run CPU %.2f s for a process that used %.2f s beside a sibling that used %.2f s", name, got, own, sibUsed)
		}
		if err := tg.Close(); err != nil {
			t.Error(err)
		}
	}
}

// Close removes the cgroup once empty; a target without one has nothing
// to remove.
func TestCloseEmpty(t *testing.T) {
	if err := ProcessTree(Paths{}, "test").Close(); err != nil {
		t.Error(err)
	}
}

// state is a process's state letter ("" when it is gone).
func state(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return f[0]
}

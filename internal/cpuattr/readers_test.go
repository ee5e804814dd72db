package cpuattr

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestCgroupCPU(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cpu.stat"), "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
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
	write(t, filepath.Join(proc, strconv.Itoa(pid), "stat"), line)
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
	write(t, filepath.Join(proc, "self", "cgroup"), "0::/\n") // not a pid: skipped
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
		if _, _, err := ParseStat([]byte(s)); err == nil {
			t.Errorf("ParseStat(%q) took it", s)
		}
	}
}

// Where the kernel has children files, the tree is what they say: a
// process whose stat names the root as parent but that no children file
// lists is not walked to, and the rest of /proc is not read.
func TestTreeCPUChildrenFiles(t *testing.T) {
	proc := t.TempDir()
	procStat(t, proc, 10, 1, 100, 0, 0, 0)
	procStat(t, proc, 11, 10, 50, 0, 0, 0)
	procStat(t, proc, 12, 11, 25, 0, 0, 0)
	procStat(t, proc, 30, 10, 1000, 0, 0, 0) // not in any children file
	write(t, filepath.Join(proc, "10", "task", "10", "children"), "11 ")
	write(t, filepath.Join(proc, "10", "task", "13", "children"), "")
	write(t, filepath.Join(proc, "11", "task", "11", "children"), "12 ")
	write(t, filepath.Join(proc, "12", "task", "12", "children"), "")
	c := TreeCPU(proc, func() int { return 10 })
	if s, err := c.CPUSeconds(); err != nil || s != 1.75 {
		t.Fatalf("walk: %v, %v; want 1.75 s (10, 11, 12)", s, err)
	}
}

// Without children files the tree is rescanned every rescanEvery reads;
// in between its known members are read: a child started in between is
// counted from the next scan on.
func TestTreeCPURescan(t *testing.T) {
	proc := t.TempDir()
	procStat(t, proc, 10, 1, 100, 0, 0, 0)
	c := TreeCPU(proc, func() int { return 10 })
	if s, _ := c.CPUSeconds(); s != 1 {
		t.Fatalf("first read %v", s)
	}
	procStat(t, proc, 11, 10, 50, 0, 0, 0)
	procStat(t, proc, 10, 1, 200, 0, 0, 0)
	if s, _ := c.CPUSeconds(); s != 2 {
		t.Fatalf("between scans: %v, want the known member's 2 s", s)
	}
	for i := 2; i < rescanEvery; i++ {
		c.CPUSeconds()
	}
	if s, _ := c.CPUSeconds(); s != 2.5 {
		t.Fatalf("after a rescan: %v, want 2.5 s with the new child", s)
	}
}

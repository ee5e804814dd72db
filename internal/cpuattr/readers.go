package cpuattr

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// userHZ is the kernel's clock tick for /proc times (USER_HZ, 100 on Linux).
const userHZ = 100

// Reader reads a run's cumulative busy CPU time (it is a sampler.RunCPU).
type Reader interface {
	CPUSeconds() (float64, error)
	Method() string
	Close() error
}

// CgroupCPU reads usage_usec from a cgroup v2 directory's cpu.stat, which
// counts every process that ever ran in the cgroup or below it, exited ones
// included, to the microsecond. cpu.stat exists in every v2 cgroup, with or
// without the cpu controller.
func CgroupCPU(dir string) Reader { return &cgroupCPU{dir: dir} }

type cgroupCPU struct {
	dir string
	f   *os.File
	buf []byte
}

var usageKey = []byte("usage_usec ")

func (c *cgroupCPU) Method() string { return "cgroup:" + c.dir }

func (c *cgroupCPU) CPUSeconds() (float64, error) {
	if c.f == nil {
		f, err := os.Open(filepath.Join(c.dir, "cpu.stat"))
		if err != nil {
			return 0, err
		}
		c.f, c.buf = f, make([]byte, 1024)
	}
	n, err := c.f.ReadAt(c.buf, 0)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("%s/cpu.stat: %w", c.dir, err)
	}
	for _, line := range bytes.Split(c.buf[:n], []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, usageKey); ok {
			us, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s/cpu.stat: usage_usec: %w", c.dir, err)
			}
			return float64(us) / 1e6, nil
		}
	}
	return 0, fmt.Errorf("%s/cpu.stat has no usage_usec", c.dir)
}

func (c *cgroupCPU) Close() error {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
	return nil
}

// TreeCPU sums utime+stime+cutime+cstime (children the tree has waited
// for are in cutime/cstime) over the live process tree under root(),
// found by a walk of every /proc/<pid>/stat's parent pid: the fallback
// where no cgroup can be made. root() is 0 until the run's first process
// exists; the tree has used no CPU then. Once root has exited, the sum
// holds at its last value. A process that leaves the tree
// (an orphan adopted by init) takes its time with it, so the sum can dip:
// readers take a step back as no CPU used.
func TreeCPU(procRoot string, root func() int) Reader {
	return &treeCPU{proc: procRoot, root: root, buf: make([]byte, 1024)}
}

type treeCPU struct {
	last     float64 // the sum at the last read, kept once the root has exited
	proc     string
	root     func() int
	buf      []byte
	parent   map[int]int
	ticks    map[int]uint64
	children map[int][]int
}

func (t *treeCPU) Method() string { return "process-tree" }
func (t *treeCPU) Close() error   { return nil }

func (t *treeCPU) CPUSeconds() (float64, error) {
	root := t.root()
	if root <= 0 {
		return 0, nil
	}
	ents, err := os.ReadDir(t.proc)
	if err != nil {
		return 0, err
	}
	if t.ticks == nil {
		t.parent, t.ticks, t.children = map[int]int{}, map[int]uint64{}, map[int][]int{}
	}
	clear(t.parent)
	clear(t.ticks)
	clear(t.children)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, ticks, err := t.stat(pid)
		if err != nil {
			continue // exited between listing and reading
		}
		t.parent[pid], t.ticks[pid] = ppid, ticks
		t.children[ppid] = append(t.children[ppid], pid)
	}
	if _, ok := t.ticks[root]; !ok {
		return t.last, nil // the run's process has exited: its time stops growing
	}
	var sum uint64
	stack := []int{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		sum += t.ticks[p]
		stack = append(stack, t.children[p]...)
	}
	t.last = float64(sum) / userHZ
	return t.last, nil
}

// stat reads a process's parent pid and utime+stime+cutime+cstime.
func (t *treeCPU) stat(pid int) (ppid int, ticks uint64, err error) {
	f, err := os.Open(filepath.Join(t.proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	n, err := f.Read(t.buf)
	f.Close()
	if err != nil {
		return 0, 0, err
	}
	return ParseStat(t.buf[:n])
}

var errStat = errors.New("malformed stat line")

// ParseStat takes the parent pid (field 4) and utime, stime, cutime,
// cstime (fields 14-17) from a /proc/<pid>/stat line. comm (field 2) may
// hold spaces and parentheses: fields are counted after the last ')'.
func ParseStat(b []byte) (ppid int, ticks uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errStat
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state): field k is f[k-3].
	if len(f) < 15 {
		return 0, 0, errStat
	}
	if ppid, err = strconv.Atoi(string(f[1])); err != nil {
		return 0, 0, errStat
	}
	for _, v := range f[11:15] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, 0, errStat
		}
		ticks += n
	}
	return ppid, ticks, nil
}

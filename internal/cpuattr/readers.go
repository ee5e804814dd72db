package cpuattr

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
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
// found through /proc/<pid>/task/<tid>/children, or where the kernel has
// no such files by the parent pid of every /proc/<pid>/stat: the fallback
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
	scan     bool  // the kernel has no children files: scan all of /proc
	reads    int   // reads while scanning
	members  []int // the tree at the last scan
	stack    []int
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
	if _, _, err := t.stat(root); err != nil {
		return t.last, nil // the run's process has exited: its time stops growing
	}
	if !t.scan {
		if sum, ok := t.walk(root); ok {
			t.last = sum
			return sum, nil
		}
		t.scan = true // no children files in this kernel: scan /proc from now on
	}
	// A scan of all of /proc costs a read per process on the machine: the
	// tree's membership is refreshed every rescanEvery reads, and in
	// between only its known members are read. A process started in
	// between is counted from the next scan on, with all its time so far.
	t.reads++
	if t.reads%rescanEvery == 1 || len(t.members) == 0 {
		return t.scanAll(root)
	}
	var sum uint64
	for _, p := range t.members {
		if _, ticks, err := t.stat(p); err == nil {
			sum += ticks
		}
	}
	t.last = float64(sum) / userHZ
	return t.last, nil
}

// rescanEvery is how often (in reads) the process-tree fallback scans all
// of /proc for the tree's members.
const rescanEvery = 10

// walk sums the tree found through /proc/<pid>/task/<tid>/children
// (CONFIG_PROC_CHILDREN): only the tree's own files are read. false when
// the root has no such files.
func (t *treeCPU) walk(root int) (float64, bool) {
	var sum uint64
	t.stack = append(t.stack[:0], root)
	for len(t.stack) > 0 {
		p := t.stack[len(t.stack)-1]
		t.stack = t.stack[:len(t.stack)-1]
		_, ticks, err := t.stat(p)
		if err != nil {
			continue // exited meanwhile
		}
		sum += ticks
		dir := filepath.Join(t.proc, strconv.Itoa(p), "task")
		tasks, err := os.ReadDir(dir)
		if err != nil && p == root {
			return 0, false
		}
		for _, tk := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, tk.Name(), "children"))
			if err != nil {
				if p == root && errors.Is(err, fs.ErrNotExist) {
					return 0, false
				}
				continue
			}
			for _, f := range bytes.Fields(b) {
				if c, err := strconv.Atoi(string(f)); err == nil {
					t.stack = append(t.stack, c)
				}
			}
		}
	}
	return float64(sum) / userHZ, true
}

// scanAll reads every /proc/<pid>/stat and sums the tree under root by
// parent pid: the way where the kernel has no children files.
func (t *treeCPU) scanAll(root int) (float64, error) {
	ents, err := os.ReadDir(t.proc)
	if err != nil {
		return 0, err
	}
	if t.ticks == nil {
		t.ticks, t.children = map[int]uint64{}, map[int][]int{}
	}
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
		t.ticks[pid] = ticks
		t.children[ppid] = append(t.children[ppid], pid)
	}
	if _, ok := t.ticks[root]; !ok {
		return t.last, nil
	}
	var sum uint64
	t.members = t.members[:0]
	t.stack = append(t.stack[:0], root)
	for len(t.stack) > 0 {
		p := t.stack[len(t.stack)-1]
		t.stack = t.stack[:len(t.stack)-1]
		sum += t.ticks[p]
		t.members = append(t.members, p)
		t.stack = append(t.stack, t.children[p]...)
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

// Package cpuattr gives one run's processes a place where their CPU time
// can be read, so that CPU energy can be attributed to the run rather than
// to the whole machine: a cgroup v2 of their own where the unified
// hierarchy is mounted and writable (cpu.stat counts every process that
// ran in it, exited ones included), else the process tree under the run's
// first process, summed from /proc.
//
//	t := cpuattr.New(cpuattr.Paths{}, "llem-"+runID)
//	defer t.Close()
//	// start the worker in t.CgroupDir() (or move it there: t.Add(pid))
//	opts.Run = t.RunCPU() // the sampler's run_cpu_s column
package cpuattr

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Paths are the filesystem roots; tests point them at synthetic trees.
type Paths struct {
	Proc string // default /proc
	Self int    // the process whose cgroup the run's goes under; default this one
}

// Target is where one run's CPU time is read.
type Target struct {
	proc    string
	dir     string // the run's cgroup; "" in the process-tree fallback
	root    atomic.Int64
	unmoved atomic.Bool // the first process could not be moved into dir: read its tree
	NoGroup string      // why there is no cgroup ("" when there is one)
}

// New makes the run's cgroup, named name, under the cgroup v2
// of the calling process, when the unified hierarchy is mounted and
// writable; otherwise the target is the process tree of the first pid
// given to Add, and NoGroup says why.
func New(p Paths, name string) *Target {
	if p.Proc == "" {
		p.Proc = "/proc"
	}
	if p.Self == 0 {
		p.Self = os.Getpid()
	}
	t := &Target{proc: p.Proc}
	dir, err := makeGroup(p, name)
	if err != nil {
		t.NoGroup = err.Error()
		return t
	}
	t.dir = dir
	return t
}

// ProcessTree is a target without a cgroup: the process tree of the pid
// given to Add (a container's first process, seen from the host).
func ProcessTree(p Paths, why string) *Target {
	if p.Proc == "" {
		p.Proc = "/proc"
	}
	return &Target{proc: p.Proc, NoGroup: why}
}

// makeGroup creates <unified mount>/<the cgroup of p.Self>/<name>.
func makeGroup(p Paths, name string) (string, error) {
	mnt, err := unifiedMount(filepath.Join(p.Proc, "self", "mountinfo"))
	if err != nil {
		return "", err
	}
	own, err := ownGroup(filepath.Join(p.Proc, strconv.Itoa(p.Self), "cgroup"))
	if err != nil {
		return "", err
	}
	dir := filepath.Join(mnt, own, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("cannot make cgroup %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cpu.stat")); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("cgroup %s has no cpu.stat: %w", dir, err)
	}
	return dir, nil
}

// unifiedMount finds where the cgroup v2 hierarchy is mounted, from
// mountinfo: /sys/fs/cgroup on a unified system, /sys/fs/cgroup/unified on
// a hybrid one.
func unifiedMount(mountinfo string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(right, "cgroup2 ") {
			continue
		}
		f := strings.Fields(left)
		if len(f) < 6 {
			continue
		}
		if strings.HasPrefix(f[5], "ro") && (len(f[5]) == 2 || f[5][2] == ',') {
			return "", fmt.Errorf("the cgroup v2 hierarchy at %s is mounted read-only", f[4])
		}
		return f[4], nil
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}

// ownGroup is the process's cgroup v2 path, from the "0::" line of
// /proc/<pid>/cgroup.
func ownGroup(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s has no cgroup v2 line", path)
}

// CgroupDir is the run's cgroup, "" in the process-tree fallback.
func (t *Target) CgroupDir() string { return t.dir }

// Add names the run's first process (nothing on a nil Target): it is moved into the run's cgroup
// (unless it was started there), or becomes the root of the process tree.
func (t *Target) Add(pid int) error {
	if t == nil {
		return nil
	}
	t.root.CompareAndSwap(0, int64(pid))
	if t.dir == "" {
		return nil
	}
	if err := os.WriteFile(filepath.Join(t.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.unmoved.Store(true)
		return fmt.Errorf("moving process %d into %s: %w; its process tree is read instead", pid, t.dir, err)
	}
	return nil
}

// RunCPU reads the target's CPU time for the sampler.
func (t *Target) RunCPU() Reader {
	tree := TreeCPU(t.proc, func() int { return int(t.root.Load()) })
	if t.dir == "" {
		return tree
	}
	return &groupOrTree{t: t, group: CgroupCPU(t.dir), tree: tree}
}

// groupOrTree reads the cgroup, or the process tree once the first
// process could not be moved into it.
type groupOrTree struct {
	t           *Target
	group, tree Reader
}

func (g *groupOrTree) Method() string { return g.group.Method() }
func (g *groupOrTree) Close() error   { g.tree.Close(); return g.group.Close() }
func (g *groupOrTree) CPUSeconds() (float64, error) {
	if g.t.unmoved.Load() {
		return g.tree.CPUSeconds()
	}
	return g.group.CPUSeconds()
}

// Close removes the run's cgroup once its last process has gone (a killed
// process takes a moment to leave it); a cgroup still busy after a few
// seconds is left, and the error says so.
func (t *Target) Close() error {
	if t == nil || t.dir == "" {
		return nil
	}
	var err error
	for i := 0; i < 200; i++ {
		if err = os.Remove(t.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		// Not an event one can wait on: cgroup.events' "populated 0" is
		// written before the cgroup can be removed, so poll briefly.
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", t.dir, err)
}

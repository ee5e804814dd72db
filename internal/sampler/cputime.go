package sampler

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// RunCPU reads the busy CPU time of one run's processes, for the
// run_cpu_s column: llem-aggregate attributes CPU energy to the run by its
// share of the machine's busy CPU time (machine_cpu_s) in each interval.
type RunCPU interface {
	// CPUSeconds is the run's cumulative busy CPU time in seconds.
	CPUSeconds() (float64, error)
	// Method says how it is read: "cgroup:<dir>" or "process-tree".
	Method() string
	Close() error
}

// internal/cpuattr provides the readers: a cgroup v2's cpu.stat, or a
// process tree summed from /proc.

// machineCPU reads the machine's busy CPU time from the first line of
// /proc/stat: user nice system irq softirq steal, all but idle and iowait.
type machineCPU struct {
	path string
	f    *os.File // kept open: one pread a tick
	buf  []byte
}

func newMachineCPU(procRoot string) *machineCPU {
	return &machineCPU{path: filepath.Join(procRoot, "stat"), buf: make([]byte, 4096)}
}

func (m *machineCPU) seconds() (float64, error) {
	if m.f == nil {
		f, err := os.Open(m.path)
		if err != nil {
			return 0, err
		}
		m.f = f
	}
	n, err := m.f.ReadAt(m.buf, 0)
	if err != nil && n == 0 {
		return 0, err
	}
	line := m.buf[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, fmt.Errorf("%s: first line is not the cpu total", m.path)
	}
	var busy uint64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: field %d: %w", m.path, i+2, err)
		}
		busy += n
	}
	return float64(busy) / userHZ, nil
}

func (m *machineCPU) close() {
	if m.f != nil {
		m.f.Close()
		m.f = nil
	}
}

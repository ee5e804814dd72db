package sampler

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

// DefaultWattsPerCore is the estimate's power per fully busy core. A rough
// figure (a server core under load draws 5-15 W): the estimate exists so the
// pipeline runs everywhere, and every row says it is an estimate.
const DefaultWattsPerCore = 10.0

// userHZ is the kernel's clock tick for /proc times (USER_HZ, 100 on Linux).
const userHZ = 100

// estimate models CPU power as busy cores × watts per core, from /proc/stat
// (the machine) or /proc/<pid>/stat (a process tree).
type estimate struct {
	proc  string
	pids  func() []int
	wpc   float64
	c     counter
	buf   []byte
	warn  func(string)
	dead  bool
	label string
	stat  *os.File // /proc/stat kept open (machine mode): one pread a tick
}

func newEstimate(procRoot string, pids func() []int, wattsPerCore float64, warn func(string)) (*estimate, error) {
	if wattsPerCore <= 0 {
		wattsPerCore = DefaultWattsPerCore
	}
	e := &estimate{proc: procRoot, pids: pids, wpc: wattsPerCore, warn: warn, label: "cpu-estimate"}
	if _, err := e.cpuSeconds(); err != nil {
		return nil, fmt.Errorf("estimate: %w", err)
	}
	return e, nil
}

func (e *estimate) Name() string { return "estimate" }
func (e *estimate) Close() error {
	if e.stat != nil {
		e.stat.Close()
		e.stat = nil
	}
	return nil
}
func (e *estimate) Devices() []DeviceInfo {
	return []DeviceInfo{{Device: e.label, Source: "estimate", Scope: record.ScopeCPUEst, Estimate: true}}
}

func (e *estimate) Read(out []power.Sample) []power.Sample {
	if e.dead {
		return out
	}
	t := time.Now().UnixNano()
	s, err := e.cpuSeconds()
	if err != nil {
		e.warn(fmt.Sprintf("estimate: %v; estimate stopped", err))
		e.dead = true
		return out
	}
	en, p, ok := e.c.add(t, s*e.wpc)
	smp := power.Sample{T: t, Source: "estimate", Device: e.label, EnergyJ: en, PowerW: p, Has: power.HasEnergy}
	if ok {
		smp.Has |= power.HasPower
	}
	return append(out, smp)
}

// cpuSeconds is busy CPU time in seconds: of the machine, or summed over
// the process tree (utime+stime+cutime+cstime of each live process).
func (e *estimate) cpuSeconds() (float64, error) {
	if e.pids == nil {
		if e.stat == nil {
			f, err := os.Open(filepath.Join(e.proc, "stat"))
			if err != nil {
				return 0, err
			}
			e.stat = f
		}
		if e.buf == nil {
			e.buf = make([]byte, 4096)
		}
		n, err := e.stat.ReadAt(e.buf, 0)
		if err != nil && n == 0 {
			return 0, err
		}
		b := e.buf[:n]
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line = b[:i]
		}
		f := bytes.Fields(line)
		if len(f) < 8 || string(f[0]) != "cpu" {
			return 0, fmt.Errorf("%s/stat: first line is not the cpu total", e.proc)
		}
		var busy uint64
		// user nice system idle iowait irq softirq steal: all but idle and iowait.
		for i, v := range f[1:9] {
			if i == 3 || i == 4 {
				continue
			}
			n, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s/stat: field %d: %w", e.proc, i+2, err)
			}
			busy += n
		}
		return float64(busy) / userHZ, nil
	}
	var ticks uint64
	for _, pid := range e.pids() {
		b, err := e.read(filepath.Join(e.proc, strconv.Itoa(pid), "stat"))
		if err != nil {
			continue // exited between listing and reading
		}
		// comm may hold spaces: fields start after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		// After ')': state(3) ... utime is field 14, so index 11 here.
		if len(f) < 15 {
			continue
		}
		for _, v := range f[11:15] {
			n, _ := strconv.ParseUint(string(v), 10, 64)
			ticks += n
		}
	}
	return float64(ticks) / userHZ, nil
}

func (e *estimate) read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if e.buf == nil {
		e.buf = make([]byte, 4096)
	}
	n, err := f.Read(e.buf)
	if err != nil {
		return nil, err
	}
	return e.buf[:n], nil
}

package sampler

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/llem/llem/internal/cpuattr"
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
	from  string // where wpc came from: configured | tdp_table | default
	model string // the CPU model wpc was looked up for
	c     counter
	buf   []byte
	warn  func(string)
	dead  bool
	label string
	stat  *machineCPU // machine mode
}

func newEstimate(procRoot string, pids func() []int, wattsPerCore float64, cpuModel string, warn func(string)) (*estimate, error) {
	wpc, from := WattsPerCore(wattsPerCore, cpuModel)
	e := &estimate{proc: procRoot, pids: pids, wpc: wpc, from: from, model: cpuModel, warn: warn, label: "cpu-estimate"}
	if _, err := e.cpuSeconds(); err != nil {
		return nil, fmt.Errorf("estimate: %w", err)
	}
	return e, nil
}

func (e *estimate) Name() string { return "estimate" }
func (e *estimate) Close() error {
	if e.stat != nil {
		e.stat.close()
	}
	return nil
}
func (e *estimate) Devices() []DeviceInfo {
	return []DeviceInfo{{Device: e.label, Source: "estimate", Scope: record.ScopeCPUEst, Estimate: true,
		WattsPerCore: e.wpc, WattsPerCoreSource: e.from, CPUModel: e.model}}
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
			e.stat = newMachineCPU(e.proc)
		}
		return e.stat.seconds()
	}
	var ticks uint64
	for _, pid := range e.pids() {
		b, err := e.read(filepath.Join(e.proc, strconv.Itoa(pid), "stat"))
		if err != nil {
			continue // exited between listing and reading
		}
		if _, t, err := cpuattr.ParseStat(b); err == nil {
			ticks += t
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

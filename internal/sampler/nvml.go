package sampler

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/llem/llem/internal/gpu"
	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

// ErrNoNVML means this machine (or this build) has no NVML: not a failure.
var ErrNoNVML = gpu.ErrNoNVML

// UsageError is an error in the options (a --gpus entry naming no GPU).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// openGPU opens NVML; tests replace it with a scripted fake.
var openGPU = gpu.Open

// nvmlSource samples the selected GPUs.
type nvmlSource struct {
	lib  gpu.Lib
	devs []*gpuDev
	warn func(string)
	rd   gpu.Reading
}

type gpuDev struct {
	d    gpu.Device
	info DeviceInfo
	c    counter
	dead bool
	had  power.Has // readings the device has given: one that stops is warned about
}

func openNVML(o *Options, w *warner, host *record.Host) (Source, string, error) {
	lib, err := openGPU()
	if err != nil {
		return nil, "", err
	}
	host.DriverVersion, host.CUDAVersion, host.NVMLVersion = lib.Versions()
	devs, infos, err := listGPUs(lib)
	var picked []pickedGPU
	if err == nil {
		picked, err = pickGPUs(lib, infos, o.GPUs)
	}
	if err != nil {
		lib.Close()
		return nil, "", err
	}
	s, pf := newNVMLSource(lib, devs, infos, picked, w)
	return s, pf, nil
}

// listGPUs opens every GPU NVML lists, with its identity.
func listGPUs(lib gpu.Lib) ([]gpu.Device, []record.GPU, error) {
	n, err := lib.Count()
	if err != nil {
		return nil, nil, err
	}
	devs := make([]gpu.Device, n)
	infos := make([]record.GPU, n)
	for i := 0; i < n; i++ {
		if devs[i], err = lib.Device(i); err != nil {
			return nil, nil, err
		}
		if infos[i], err = devs[i].Info(); err != nil {
			return nil, nil, err
		}
	}
	return devs, infos, nil
}

// pickedGPU is one physical GPU to sample, with the MIG instances on it that
// were asked for (none: the GPU is used whole).
type pickedGPU struct {
	index int
	mig   []string
}

// pickGPUs selects the GPUs to sample from CUDA_VISIBLE_DEVICES and want. A
// MIG instance named there is resolved to its parent GPU, which is sampled
// (once, however many of its instances are named).
func pickGPUs(lib gpu.Lib, infos []record.GPU, want []string) ([]pickedGPU, error) {
	uuids := make([]string, len(infos))
	for i, g := range infos {
		uuids[i] = g.UUID
	}
	cvd := gpu.CUDAVisibleDevices()
	parentOf := map[int]int{}
	for _, m := range gpu.MIGNames(cvd, want) {
		p, err := lib.MIGParent(m)
		if err != nil {
			return nil, fmt.Errorf("MIG instance %s: %w", m, err)
		}
		parentOf[len(uuids)] = p
		uuids = append(uuids, m)
	}
	sel, err := gpu.Select(uuids, cvd, want)
	if err != nil {
		return nil, &UsageError{err}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("%w: no GPU visible (CUDA_VISIBLE_DEVICES)", ErrNoNVML)
	}
	var out []pickedGPU
	at := map[int]int{} // parent index → position in out
	for _, i := range sel {
		p, isMIG := parentOf[i]
		if !isMIG {
			p = i
		}
		k, ok := at[p]
		if !ok {
			k, at[p] = len(out), len(out)
			out = append(out, pickedGPU{index: p})
		}
		if isMIG {
			out[k].mig = append(out[k].mig, uuids[i])
		}
	}
	return out, nil
}

// newNVMLSource samples the picked GPUs; the string is the power field(s)
// their power_w comes from.
func newNVMLSource(lib gpu.Lib, devs []gpu.Device, infos []record.GPU, picked []pickedGPU, w *warner) (*nvmlSource, string) {
	s := &nvmlSource{lib: lib, warn: w.warn}
	fields := map[string]bool{}
	for _, p := range picked {
		g := infos[p.index]
		if len(p.mig) > 0 {
			g.MIG, g.SharedEnergy = p.mig, true
			w.warn(fmt.Sprintf("nvml: %s is measured through its GPU %s: NVML reads power and energy for the whole GPU, shared with every other MIG instance on it",
				strings.Join(p.mig, ", "), g.UUID))
		}
		s.devs = append(s.devs, &gpuDev{d: devs[p.index], info: DeviceInfo{Device: g.UUID, Source: "nvml", Scope: record.ScopeGPU, GPU: &g}})
		fields[devs[p.index].PowerField()] = true
	}
	var pf []string
	for _, f := range []string{gpu.PowerInstant, gpu.PowerAverage} {
		if fields[f] {
			pf = append(pf, f)
		}
	}
	return s, strings.Join(pf, ",")
}

func (s *nvmlSource) Name() string { return "nvml" }
func (s *nvmlSource) Close() error { return s.lib.Close() }
func (s *nvmlSource) Devices() []DeviceInfo {
	out := make([]DeviceInfo, len(s.devs))
	for i, d := range s.devs {
		out[i] = d.info
	}
	return out
}

func (s *nvmlSource) Read(out []power.Sample) []power.Sample {
	r := &s.rd
	for _, d := range s.devs {
		if d.dead {
			continue
		}
		err := d.d.Read(r)
		t := time.Now().UnixNano()
		if err != nil {
			msg := "read failed"
			if errors.Is(err, gpu.ErrGPULost) {
				msg = "GPU is lost"
			}
			s.warn(fmt.Sprintf("nvml: %s: %s (%v); no longer sampled, other devices go on", d.info.Device, msg, err))
			d.dead = true
			continue
		}
		for _, fe := range r.Errs {
			s.warn(fmt.Sprintf("nvml: %s: %s: %v; written as null", d.info.Device, fe.Field, fe.Err))
		}
		smp := power.Sample{T: t, Source: "nvml", Device: d.info.Device}
		if r.PowerOK {
			smp.PowerW, smp.Has = r.PowerW, smp.Has|power.HasPower
		}
		if r.EnergyOK {
			e, _, _ := d.c.add(t, float64(r.EnergyMJ)/1000)
			smp.EnergyJ, smp.Has = e, smp.Has|power.HasEnergy
		}
		if r.TempOK {
			smp.TempC, smp.Has = r.TempC, smp.Has|power.HasTemp
		}
		if r.UtilOK {
			smp.UtilPct, smp.Has = r.UtilPct, smp.Has|power.HasUtil
		}
		if r.MemOK {
			smp.MemUsedBytes, smp.Has = r.MemUsed, smp.Has|power.HasMem
		}
		if r.ClockOK {
			smp.SMClockMHz, smp.Has = r.SMClockMHz, smp.Has|power.HasClock
		}
		if r.ThrottleOK {
			smp.Throttle, smp.Has = r.Throttle, smp.Has|power.HasThrottle
		}
		if gone := d.had &^ smp.Has; gone != 0 {
			for _, f := range hasNames {
				if gone&f.h != 0 {
					s.warn(fmt.Sprintf("nvml: %s: %s stopped being available; written as null from now on", d.info.Device, f.name))
				}
			}
		}
		d.had |= smp.Has
		out = append(out, smp)
	}
	return out
}

var hasNames = []struct {
	h    power.Has
	name string
}{{power.HasPower, "power_w"}, {power.HasEnergy, "energy_j"}, {power.HasTemp, "temp_c"}, {power.HasUtil, "util_pct"},
	{power.HasMem, "mem_used_bytes"}, {power.HasClock, "sm_clock_mhz"}, {power.HasThrottle, "throttle"}}

// GPUProcesses lists the processes on each sampled GPU by UUID (llem-exec
// flags a run that shares its GPU). Without NVML it returns ErrNoNVML.
func GPUProcesses(opts Options) (map[string][]gpu.Process, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	w := &warner{fn: opts.Warn}
	src, _, err := openNVML(&opts, w, &record.Host{})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	out := map[string][]gpu.Process{}
	for _, d := range src.(*nvmlSource).devs {
		ps, err := d.d.Processes()
		if err != nil && !errors.Is(err, gpu.ErrNotSupported) {
			return nil, fmt.Errorf("%s: processes: %w", d.info.Device, err)
		}
		out[d.info.Device] = ps
	}
	return out, nil
}

//go:build cgo

package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/llem/llem/internal/record"
)

// Open initialises the machine's NVML. Without an NVIDIA driver it returns
// an error wrapping ErrNoNVML.
func Open() (Lib, error) {
	return FromNVML(nvml.New())
}

// FromNVML initialises n (the real library, or a go-nvml mock server).
func FromNVML(n nvml.Interface) (Lib, error) {
	if ret := n.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND || ret == nvml.ERROR_DRIVER_NOT_LOADED {
			return nil, fmt.Errorf("%w: %s", ErrNoNVML, ret.Error())
		}
		return nil, fmt.Errorf("nvml init: %w", toErr(ret))
	}
	return &lib{n: n, syms: lookupSymbols(n)}, nil
}

// Optional NVML functions: drivers older than the one go-nvml was generated
// against lack some. go-nvml binds symbols lazily, so calling a missing one
// kills the process ("symbol lookup error"); each is looked up once here,
// when NVML opens, and a missing one is a fallback or a null reading.
const (
	symClocksEventReasons    = "nvmlDeviceGetCurrentClocksEventReasons"    // R535 and later
	symClocksThrottleReasons = "nvmlDeviceGetCurrentClocksThrottleReasons" // its older name (deprecated, still exported)
	symMIGParent             = "nvmlDeviceGetDeviceHandleFromMigDeviceHandle"
)

// symbols records which optional functions this driver's NVML has.
type symbols struct {
	eventReasons, throttleReasons, migParent bool
}

func lookupSymbols(n nvml.Interface) symbols {
	ext := n.Extensions()
	has := func(name string) bool { return ext != nil && ext.LookupSymbol(name) == nil }
	return symbols{
		eventReasons:    has(symClocksEventReasons),
		throttleReasons: has(symClocksThrottleReasons),
		migParent:       has(symMIGParent),
	}
}

// toErr turns an NVML return code into an error, once, here.
func toErr(ret nvml.Return) error {
	switch ret {
	case nvml.SUCCESS:
		return nil
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
		return ErrNotSupported
	case nvml.ERROR_GPU_IS_LOST:
		return ErrGPULost
	}
	return fmt.Errorf("nvml: %s (code %d)", nvml.ErrorString(ret), int32(ret))
}

type lib struct {
	n    nvml.Interface
	syms symbols
}

func (l *lib) Versions() (driver, cuda, nv string) {
	if v, ret := l.n.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		driver = v
	}
	if v, ret := l.n.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS {
		cuda = strconv.Itoa(v/1000) + "." + strconv.Itoa(v%1000/10)
	}
	if v, ret := l.n.SystemGetNVMLVersion(); ret == nvml.SUCCESS {
		nv = v
	}
	return
}

func (l *lib) Count() (int, error) {
	c, ret := l.n.DeviceGetCount()
	return c, toErr(ret)
}

func (l *lib) Close() error { return toErr(l.n.Shutdown()) }

func (l *lib) Device(i int) (Device, error) {
	h, ret := l.n.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("GPU %d: %w", i, toErr(ret))
	}
	d := &device{h: h, index: i, field: PowerAverage, syms: l.syms}
	// The instant power field exists on recent drivers; probe it once.
	fv := []nvml.FieldValue{{FieldId: nvml.FI_DEV_POWER_INSTANT}}
	if ret := h.GetFieldValues(fv); ret == nvml.SUCCESS && nvml.Return(fv[0].NvmlReturn) == nvml.SUCCESS {
		d.field = PowerInstant
	}
	return d, nil
}

type device struct {
	h     nvml.Device
	index int
	field string
	syms  symbols
}

func (l *lib) MIGParent(uuid string) (int, error) {
	if !l.syms.migParent {
		return -1, fmt.Errorf("%s: this driver's NVML lacks %s (no MIG support): %w", uuid, symMIGParent, ErrNotSupported)
	}
	h, ret := l.n.DeviceGetHandleByUUID(uuid)
	if ret != nvml.SUCCESS {
		return -1, fmt.Errorf("%s: %w", uuid, toErr(ret))
	}
	p, ret := h.GetDeviceHandleFromMigDeviceHandle()
	if ret != nvml.SUCCESS {
		return -1, fmt.Errorf("%s: parent GPU: %w", uuid, toErr(ret))
	}
	i, ret := p.GetIndex()
	if ret != nvml.SUCCESS {
		return -1, fmt.Errorf("%s: parent GPU index: %w", uuid, toErr(ret))
	}
	return i, nil
}

// throttle reads the clock event (throttle) reasons through whichever
// function the driver has; ok is false when it has neither.
func (d *device) throttle() (reasons uint64, ret nvml.Return, ok bool) {
	switch {
	case d.syms.eventReasons:
		reasons, ret = d.h.GetCurrentClocksEventReasons()
	case d.syms.throttleReasons:
		reasons, ret = d.h.GetCurrentClocksThrottleReasons()
	default:
		return 0, nvml.ERROR_FUNCTION_NOT_FOUND, false
	}
	return reasons, ret, true
}

func (d *device) PowerField() string { return d.field }

func (d *device) Info() (record.GPU, error) {
	g := record.GPU{Index: d.index}
	uuid, ret := d.h.GetUUID()
	if ret != nvml.SUCCESS {
		return g, fmt.Errorf("GPU %d: uuid: %w", d.index, toErr(ret))
	}
	g.UUID = uuid
	if n, ret := d.h.GetName(); ret == nvml.SUCCESS {
		g.Name = n
	}
	if m, ret := d.h.GetMemoryInfo(); ret == nvml.SUCCESS {
		v := int64(m.Total)
		g.MemoryTotalBytes = &v
	}
	if mw, ret := d.h.GetEnforcedPowerLimit(); ret == nvml.SUCCESS {
		v := float64(mw) / 1000
		g.PowerLimitW = &v
	}
	if p, ret := d.h.GetPersistenceMode(); ret == nvml.SUCCESS {
		v := p == nvml.FEATURE_ENABLED
		g.PersistenceMode = &v
	}
	return g, nil
}

func fieldFloat(f nvml.FieldValue) float64 {
	b := f.Value[:]
	switch nvml.ValueType(f.ValueType) {
	case nvml.VALUE_TYPE_DOUBLE:
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return float64(binary.LittleEndian.Uint32(b))
	case nvml.VALUE_TYPE_SIGNED_INT:
		return float64(int32(binary.LittleEndian.Uint32(b)))
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		return float64(int64(binary.LittleEndian.Uint64(b)))
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return float64(binary.LittleEndian.Uint16(b))
	}
	return float64(binary.LittleEndian.Uint64(b))
}

// Read reads every value; the device is lost when any call says so.
func (d *device) Read(r *Reading) error {
	*r = Reading{Errs: r.Errs[:0]}
	lost := false
	check := func(field string, ret nvml.Return) bool {
		if ret == nvml.SUCCESS {
			return true
		}
		err := toErr(ret)
		switch {
		case errors.Is(err, ErrGPULost):
			lost = true
		case errors.Is(err, ErrNotSupported):
		default:
			r.Errs = append(r.Errs, FieldError{Field: field, Err: err})
		}
		return false
	}
	if d.field == PowerInstant {
		fv := []nvml.FieldValue{{FieldId: nvml.FI_DEV_POWER_INSTANT}}
		if check("power_w", d.h.GetFieldValues(fv)) && check("power_w", nvml.Return(fv[0].NvmlReturn)) {
			r.PowerW, r.PowerOK = fieldFloat(fv[0])/1000, true
		}
	} else if mw, ret := d.h.GetPowerUsage(); check("power_w", ret) {
		r.PowerW, r.PowerOK = float64(mw)/1000, true
	}
	if lost {
		return fmt.Errorf("GPU %d: %w", d.index, ErrGPULost)
	}
	if mj, ret := d.h.GetTotalEnergyConsumption(); check("energy_j", ret) {
		r.EnergyMJ, r.EnergyOK = mj, true
	}
	if c, ret := d.h.GetTemperature(nvml.TEMPERATURE_GPU); check("temp_c", ret) {
		r.TempC, r.TempOK = float64(c), true
	}
	if u, ret := d.h.GetUtilizationRates(); check("util_pct", ret) {
		r.UtilPct, r.UtilOK = float64(u.Gpu), true
	}
	if m, ret := d.h.GetMemoryInfo(); check("mem_used_bytes", ret) {
		r.MemUsed, r.MemOK = int64(m.Used), true
	}
	if c, ret := d.h.GetClockInfo(nvml.CLOCK_SM); check("sm_clock_mhz", ret) {
		r.SMClockMHz, r.ClockOK = c, true
	}
	if t, ret, ok := d.throttle(); ok && check("throttle", ret) {
		r.Throttle, r.ThrottleOK = t, true
	}
	if lost {
		return fmt.Errorf("GPU %d: %w", d.index, ErrGPULost)
	}
	return nil
}

func (d *device) Processes() ([]Process, error) {
	var out []Process
	for _, get := range []func() ([]nvml.ProcessInfo, nvml.Return){d.h.GetComputeRunningProcesses, d.h.GetGraphicsRunningProcesses} {
		ps, ret := get()
		if ret != nvml.SUCCESS {
			return nil, toErr(ret)
		}
		for _, p := range ps {
			pr := Process{PID: int(p.Pid)}
			// NVML reports "not available" (e.g. without permission) as all ones.
			if p.UsedGpuMemory != math.MaxUint64 {
				v := int64(p.UsedGpuMemory)
				pr.UsedBytes = &v
			}
			out = append(out, pr)
		}
	}
	return out, nil
}

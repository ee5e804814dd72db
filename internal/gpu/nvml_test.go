//go:build cgo

package gpu

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// h100 is go-nvml's mock DGX H100 with the calls it leaves unset scripted:
// instant power 350.5 W (field), average 340 W, an energy counter that
// advances 100 J a read, temperature, utilisation, SM clock, throttle bits,
// power limit, persistence.
func h100(t *testing.T) (*server.Server, *server.Device) {
	s := dgxh100.New()
	d := s.Devices[0].(*server.Device)
	var mj uint64 = 5_000_000
	d.GetFieldValuesFunc = func(fv []nvml.FieldValue) nvml.Return {
		for i := range fv {
			if fv[i].FieldId != nvml.FI_DEV_POWER_INSTANT {
				fv[i].NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
				continue
			}
			fv[i].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
			binary.LittleEndian.PutUint32(fv[i].Value[:], 350500)
			fv[i].NvmlReturn = uint32(nvml.SUCCESS)
		}
		return nvml.SUCCESS
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 340000, nvml.SUCCESS }
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { mj += 100_000; return mj, nvml.SUCCESS }
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 41, nvml.SUCCESS }
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 97}, nvml.SUCCESS }
	d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) { return 1980, nvml.SUCCESS }
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return 0x4, nvml.SUCCESS }
	d.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 700000, nvml.SUCCESS }
	d.GetPersistenceModeFunc = func() (nvml.EnableState, nvml.Return) { return nvml.FEATURE_ENABLED, nvml.SUCCESS }
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 4242, UsedGpuMemory: 1 << 30}}, nvml.SUCCESS
	}
	d.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	return s, d
}

func TestMockH100(t *testing.T) {
	s, d := h100(t)
	lib, err := FromNVML(s)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	if n, _ := lib.Count(); n != 8 {
		t.Fatalf("count %d", n)
	}
	drv, cuda, nv := lib.Versions()
	if drv == "" || cuda == "" || nv == "" {
		t.Fatalf("versions %q %q %q", drv, cuda, nv)
	}
	dev, err := lib.Device(0)
	if err != nil {
		t.Fatal(err)
	}
	if dev.PowerField() != PowerInstant {
		t.Fatalf("power field %s", dev.PowerField())
	}
	g, err := dev.Info()
	if err != nil || g.UUID != d.UUID || g.Name != "NVIDIA H100 80GB HBM3" || *g.PowerLimitW != 700 || !*g.PersistenceMode || *g.MemoryTotalBytes == 0 {
		t.Fatalf("info %+v %v", g, err)
	}
	var r Reading
	if err := dev.Read(&r); err != nil {
		t.Fatal(err)
	}
	if !r.PowerOK || r.PowerW != 350.5 || r.EnergyMJ != 5_100_000 || r.TempC != 41 || r.UtilPct != 97 || r.SMClockMHz != 1980 || r.Throttle != 4 || !r.MemOK || len(r.Errs) != 0 {
		t.Fatalf("reading %+v", r)
	}
	ps, err := dev.Processes()
	if err != nil || len(ps) != 1 || ps[0].PID != 4242 || *ps[0].UsedBytes != 1<<30 {
		t.Fatalf("processes %+v %v", ps, err)
	}

	// A sensor that stops being supported leaves its reading invalid, not 0.
	d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	d.GetClockInfoFunc = func(c nvml.ClockType) (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	if err := dev.Read(&r); err != nil {
		t.Fatal(err)
	}
	if r.TempOK || r.ClockOK || !r.PowerOK || len(r.Errs) != 1 || r.Errs[0].Field != "sm_clock_mhz" {
		t.Fatalf("reading %+v", r)
	}
	// Lost: the device is gone.
	d.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_GPU_IS_LOST }
	if err := dev.Read(&r); !errors.Is(err, ErrGPULost) {
		t.Fatalf("lost: %v", err)
	}
}

// Without the instant field the average reading is used and named.
func TestMockAveragePower(t *testing.T) {
	s, d := h100(t)
	d.GetFieldValuesFunc = func(fv []nvml.FieldValue) nvml.Return { return nvml.ERROR_NOT_SUPPORTED }
	lib, _ := FromNVML(s)
	dev, _ := lib.Device(0)
	var r Reading
	if err := dev.Read(&r); err != nil || dev.PowerField() != PowerAverage || r.PowerW != 340 {
		t.Fatalf("%s %+v %v", dev.PowerField(), r, err)
	}
}

func TestNoDriver(t *testing.T) {
	s := dgxh100.New()
	s.InitFunc = func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }
	if _, err := FromNVML(s); !errors.Is(err, ErrNoNVML) {
		t.Fatalf("%v", err)
	}
	// This machine: no driver (or a GPU machine, where Open works).
	if lib, err := Open(); err == nil {
		lib.Close()
	} else if !errors.Is(err, ErrNoNVML) {
		t.Fatalf("Open: %v", err)
	}
}

// A driver older than R535 has no nvmlDeviceGetCurrentClocksEventReasons.
// go-nvml binds lazily: calling it there is a "symbol lookup error" that kills
// the process (the stand-in panics instead). The symbol is looked up at open
// and the older nvmlDeviceGetCurrentClocksThrottleReasons used; a driver with
// neither gives a null throttle reading, no error, no crash.
func TestOldDriverOptionalSymbols(t *testing.T) {
	for _, c := range []struct {
		name    string
		missing map[string]bool
		wantOK  bool
	}{
		{"R470 (throttle reasons only)", map[string]bool{symClocksEventReasons: true}, true},
		{"neither", map[string]bool{symClocksEventReasons: true, symClocksThrottleReasons: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, d := h100(t)
			var looked []string
			s.LookupSymbolFunc = func(name string) error {
				looked = append(looked, name)
				if c.missing[name] {
					return errors.New("undefined symbol: " + name)
				}
				return nil
			}
			d.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) {
				panic("symbol lookup error: undefined symbol nvmlDeviceGetCurrentClocksEventReasons (the real driver kills the process here)")
			}
			d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) { return 0x8, nvml.SUCCESS }
			lib, err := FromNVML(s)
			if err != nil {
				t.Fatal(err)
			}
			defer lib.Close()
			dev, _ := lib.Device(0)
			var r Reading
			if err := dev.Read(&r); err != nil {
				t.Fatal(err)
			}
			if r.ThrottleOK != c.wantOK || (c.wantOK && r.Throttle != 0x8) || len(r.Errs) != 0 || !r.PowerOK || !r.EnergyOK {
				t.Fatalf("reading %+v", r)
			}
			if len(looked) == 0 || looked[0] != symClocksEventReasons {
				t.Fatalf("optional symbols not looked up at open: %v", looked)
			}
		})
	}
}

// A MIG instance's UUID resolves to its parent GPU's index; a driver without
// the MIG functions says so instead of crashing.
func TestMIGParent(t *testing.T) {
	s, _ := h100(t)
	const mig = "MIG-4e3a8e1c-2b1f-5a4d-9c1e-7f0a1b2c3d4e"
	parent := s.Devices[3]
	byUUID := s.DeviceGetHandleByUUIDFunc
	s.DeviceGetHandleByUUIDFunc = func(uuid string) (nvml.Device, nvml.Return) {
		if uuid == mig {
			return &mock.Device{GetDeviceHandleFromMigDeviceHandleFunc: func() (nvml.Device, nvml.Return) { return parent, nvml.SUCCESS }}, nvml.SUCCESS
		}
		return byUUID(uuid)
	}
	lib, err := FromNVML(s)
	if err != nil {
		t.Fatal(err)
	}
	if i, err := lib.MIGParent(mig); err != nil || i != 3 {
		t.Fatalf("parent %d %v", i, err)
	}
	if _, err := lib.MIGParent("MIG-00000000-0000-0000-0000-000000000000"); err == nil {
		t.Fatal("an unknown MIG UUID resolved")
	}
	s.LookupSymbolFunc = func(name string) error {
		if name == symMIGParent {
			return errors.New("undefined symbol")
		}
		return nil
	}
	lib2, _ := FromNVML(s)
	if _, err := lib2.MIGParent(mig); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("no MIG support: %v", err)
	}
	if !IsMIG(mig) || IsMIG("GPU-1234") {
		t.Fatal("IsMIG")
	}
}

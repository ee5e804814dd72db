// Package gpu is a narrow interface over NVML: the only package that imports
// github.com/NVIDIA/go-nvml (in nvml.go, built with cgo). NVML return codes
// become Go errors here, once: ErrNotSupported for a reading the device does
// not have (the sampler writes null, never 0), ErrGPULost for a device that
// fell off the bus, ErrNoNVML where there is no driver or the build has no
// cgo. Tests use a fake Lib, or go-nvml's mock servers through FromNVML.
package gpu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/record"
)

var (
	// ErrNoNVML: no NVIDIA driver here, or a build without cgo. Not a failure.
	ErrNoNVML = errors.New("no NVML")
	// ErrNotSupported: the device or driver does not provide this reading.
	ErrNotSupported = errors.New("not supported")
	// ErrGPULost: the device is gone (fell off the bus, driver reset).
	ErrGPULost = errors.New("GPU is lost")
)

// Power fields: which NVML reading feeds power_w.
const (
	PowerInstant = "instant" // field NVML_FI_DEV_POWER_INSTANT
	PowerAverage = "average" // nvmlDeviceGetPowerUsage (a 1 s average on Ampere non-GA100 and newer)
)

// Lib is an initialised NVML.
type Lib interface {
	Versions() (driver, cuda, nvml string)
	Count() (int, error)
	Device(index int) (Device, error)
	// MIGParent is the NVML index of the GPU a MIG instance (UUID "MIG-…")
	// lives on. NVML reads power and energy per physical GPU only, so a MIG
	// instance is measured through its parent.
	MIGParent(migUUID string) (int, error)
	Close() error
}

// Device is one GPU.
type Device interface {
	Info() (record.GPU, error) // index, UUID, name, memory, power limit, persistence mode
	// PowerField tells which reading Read puts in PowerW: PowerInstant where
	// the driver has the field, else PowerAverage.
	PowerField() string
	// Read fills r. Readings the device lacks are left invalid (OK false);
	// Errs lists other per-reading errors. The error is ErrGPULost (or
	// another error) when the device could not be read at all.
	Read(r *Reading) error
	Processes() ([]Process, error)
}

// Reading is one read of a device; each value has its OK flag.
type Reading struct {
	PowerW     float64
	PowerOK    bool
	EnergyMJ   uint64 // total energy counter, mJ since driver load
	EnergyOK   bool
	TempC      float64
	TempOK     bool
	UtilPct    float64
	UtilOK     bool
	MemUsed    int64
	MemOK      bool
	SMClockMHz uint32
	ClockOK    bool
	Throttle   uint64
	ThrottleOK bool
	Errs       []FieldError
}

// FieldError is a failed reading other than "not supported".
type FieldError struct {
	Field string
	Err   error
}

// Process is a process using a GPU.
type Process struct {
	PID       int
	UsedBytes *int64
}

// Select returns the NVML indices to sample, in order: the devices visible
// under CUDA_VISIBLE_DEVICES (cvd; nil = unset, all devices), then those of
// want (indices into the visible list, as cuda:N, or UUIDs or UUID
// prefixes); empty want = all visible. uuids lists every device's UUID by
// NVML index.
func Select(uuids []string, cvd *string, want []string) ([]int, error) {
	visible := make([]int, 0, len(uuids))
	if cvd == nil {
		for i := range uuids {
			visible = append(visible, i)
		}
	} else {
		// Like CUDA: the list ends at the first entry that names no device.
		for _, e := range strings.Split(*cvd, ",") {
			i := find(uuids, strings.TrimSpace(e))
			if i < 0 {
				break
			}
			visible = append(visible, i)
		}
	}
	if len(want) == 0 {
		return visible, nil
	}
	var out []int
	seen := map[int]bool{}
	for _, w := range want {
		var idx = -1
		if n, err := strconv.Atoi(w); err == nil {
			if n >= 0 && n < len(visible) {
				idx = visible[n]
			}
		} else if i := find(uuids, w); i >= 0 {
			for _, v := range visible {
				if v == i {
					idx = i
				}
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("--gpus: %q names no visible GPU (%d visible%s)", w, len(visible), cvdNote(cvd))
		}
		if !seen[idx] {
			seen[idx] = true
			out = append(out, idx)
		}
	}
	return out, nil
}

func cvdNote(cvd *string) string {
	if cvd == nil {
		return ""
	}
	return ", CUDA_VISIBLE_DEVICES=" + *cvd
}

// find returns the index named by e: a number, a UUID, or a UUID prefix of
// at least "GPU-" plus 4 characters matching exactly one device. A MIG
// instance's UUID ("MIG-…") is taken as it is: CUDA accepts it in
// CUDA_VISIBLE_DEVICES, and prefixing it with "GPU-" would name nothing.
func find(uuids []string, e string) int {
	if n, err := strconv.Atoi(e); err == nil {
		if n >= 0 && n < len(uuids) {
			return n
		}
		return -1
	}
	if !strings.HasPrefix(e, "GPU-") && !IsMIG(e) {
		e = "GPU-" + e
	}
	hit := -1
	for i, u := range uuids {
		if u == e {
			return i
		}
		if len(e) >= 8 && strings.HasPrefix(u, e) {
			if hit >= 0 {
				return -1
			}
			hit = i
		}
	}
	return hit
}

// CUDAVisibleDevices returns CUDA_VISIBLE_DEVICES, nil when unset.
func CUDAVisibleDevices() *string {
	v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES")
	if !ok {
		return nil
	}
	return &v
}

// IsMIG reports whether a device name is a MIG instance's UUID: "MIG-<uuid>"
// (drivers from R470) or the older "MIG-GPU-<uuid>/<gi>/<ci>".
func IsMIG(name string) bool { return strings.HasPrefix(strings.TrimSpace(name), "MIG-") }

// MIGNames lists the MIG instances named in CUDA_VISIBLE_DEVICES (cvd, nil =
// unset) and in want, each once, in order.
func MIGNames(cvd *string, want []string) []string {
	var all []string
	if cvd != nil {
		all = strings.Split(*cvd, ",")
	}
	all = append(all, want...)
	var out []string
	seen := map[string]bool{}
	for _, e := range all {
		e = strings.TrimSpace(e)
		if IsMIG(e) && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

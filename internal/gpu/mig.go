//go:build cgo

package gpu

import (
	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// MIGMode reports whether MIG mode is enabled on the device (llem-doctor's
// report). It is not part of Device: callers probe for it, so fakes need not
// implement it. ErrNotSupported on a GPU without MIG.
func (d *device) MIGMode() (bool, error) {
	cur, _, ret := d.h.GetMigMode()
	if ret != nvml.SUCCESS {
		return false, toErr(ret)
	}
	return cur == nvml.DEVICE_MIG_ENABLE, nil
}

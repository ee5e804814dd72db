//go:build !cgo

package gpu

import "fmt"

// Open reports that a build without cgo has no NVML.
func Open() (Lib, error) {
	return nil, fmt.Errorf("%w: this build has no cgo, so no NVML support", ErrNoNVML)
}

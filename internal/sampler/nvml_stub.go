package sampler

import (
	"errors"

	"github.com/llem/llem/internal/record"
)

// ErrNoNVML means this machine (or this build) has no NVML: not a failure.
var ErrNoNVML = errors.New("no NVML on this machine")

// openNVML is replaced by the NVML source where the build has it.
var openNVML = func(o *Options, w *warner, host *record.Host) (Source, string, error) {
	return nil, "", ErrNoNVML
}

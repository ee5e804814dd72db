// Package doctor checks what a machine offers llem before a study runs: the
// GPUs (NVML), the energy source llem-sample's auto mode will use (NVML,
// RAPL, or the CPU-time estimate), the Docker engine and its NVIDIA runtime,
// the images a study names, the Python backends the local runner's
// interpreter can import, and cgroup v2. Every check says what to do when
// something is missing. Nothing here fails: a missing piece is a finding.
package doctor

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/llem/llem/internal/gpu"
)

// Status of one check.
const (
	OK      = "ok"
	Missing = "missing"
	Warn    = "warn"
	Info    = "info"
)

// Check is one finding.
type Check struct {
	Area   string `json:"area"` // gpu, energy, docker, image, python, cgroup
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"` // what to do; empty when nothing is needed
}

// Report is every check, plus the energy source `auto` will choose.
type Report struct {
	EnergySource string  `json:"energy_source"` // nvml, rapl or estimate
	Checks       []Check `json:"checks"`
}

// Engine is the Docker engine, as far as the checks need it.
type Engine interface {
	// Info returns the engine version, its registered runtimes and the default one.
	Info(ctx context.Context) (version string, runtimes []string, defaultRuntime string, err error)
	// HasImage reports whether the image is present locally.
	HasImage(ctx context.Context, ref string) (bool, error)
}

// Env is the machine: roots of the file trees read and the probes, so that
// tests run on fake trees with no NVML, no engine and no Python.
type Env struct {
	SysRoot  string // /sys
	ProcRoot string // /proc
	OpenGPU  func() (gpu.Lib, error)
	// Engine returns the Docker engine or why there is none.
	Engine func() (Engine, error)
	// Python is the interpreter of the local Python workers ("" = none
	// found, PythonErr says why); Imports runs it to import the modules,
	// returning each module's version, or nil where it does not import.
	Python    string
	PythonErr error
	Imports   func(ctx context.Context, python string, modules []string) (map[string]*string, error)
	Study     *StudyNeeds // nil without a study argument
}

// StudyNeeds is what a study asks of the machine.
type StudyNeeds struct {
	File          string
	LocalBackends []string // backends the study runs with the local runner
	Images        []string // docker images, in order of first use
}

// Run performs every check.
func Run(ctx context.Context, env Env) Report {
	var r Report
	gpus := checkGPUs(env)
	r.Checks = append(r.Checks, gpus...)
	energy, src := checkEnergy(env, hasGPU(gpus))
	r.EnergySource = src
	r.Checks = append(r.Checks, energy...)
	r.Checks = append(r.Checks, checkDocker(ctx, env)...)
	r.Checks = append(r.Checks, checkPython(ctx, env)...)
	r.Checks = append(r.Checks, checkCgroup(env))
	return r
}

func hasGPU(cs []Check) bool {
	for _, c := range cs {
		if c.Area == "gpu" && c.Status == OK && strings.HasPrefix(c.Name, "GPU ") {
			return true
		}
	}
	return false
}

// WriteText writes one line per check: status, area and name, what was
// found and, after "->", what to do.
func WriteText(w io.Writer, r Report) error {
	for _, c := range r.Checks {
		line := fmt.Sprintf("%-10s%-7s %s: %s", "["+c.Status+"]", c.Area, c.Name, c.Detail)
		if c.Fix != "" {
			line += " -> " + c.Fix
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "energy source llem-sample --sources auto will use: %s\n", r.EnergySource)
	return err
}

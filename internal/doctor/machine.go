package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/llem/llem/internal/gpu"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/sampler"
)

const gib = 1 << 30

// checkGPUs lists the GPUs NVML sees, with memory, driver, persistence mode
// and MIG mode.
func checkGPUs(env Env) []Check {
	lib, err := env.OpenGPU()
	if err != nil {
		fix := "for GPU runs: install the NVIDIA driver (nvidia-smi must work); CPU studies (native backend) need none"
		if !errors.Is(err, gpu.ErrNoNVML) {
			fix = "check the driver with nvidia-smi; a driver/library version mismatch needs a reboot"
		}
		return []Check{{Area: "gpu", Name: "NVML", Status: Missing, Detail: err.Error(), Fix: fix}}
	}
	defer lib.Close()
	driver, cuda, _ := lib.Versions()
	out := []Check{{Area: "gpu", Name: "NVML", Status: OK, Detail: fmt.Sprintf("driver %s, CUDA %s", orUnknown(driver), orUnknown(cuda))}}
	n, err := lib.Count()
	if err != nil || n == 0 {
		return append(out, Check{Area: "gpu", Name: "GPUs", Status: Missing, Detail: fmt.Sprintf("NVML lists no GPU (%v)", err),
			Fix: "check nvidia-smi -L and CUDA_VISIBLE_DEVICES"})
	}
	for i := 0; i < n; i++ {
		out = append(out, gpuCheck(lib, i))
	}
	return out
}

func gpuCheck(lib gpu.Lib, i int) Check {
	c := Check{Area: "gpu", Name: fmt.Sprintf("GPU %d", i), Status: OK}
	d, err := lib.Device(i)
	if err != nil {
		c.Status, c.Detail, c.Fix = Missing, err.Error(), "check nvidia-smi; a lost GPU needs a reset or reboot"
		return c
	}
	g, err := d.Info()
	if err != nil {
		c.Status, c.Detail, c.Fix = Warn, err.Error(), "check nvidia-smi"
		return c
	}
	mem := "memory unknown"
	if g.MemoryTotalBytes != nil {
		mem = fmt.Sprintf("%.1f GiB", float64(*g.MemoryTotalBytes)/gib)
	}
	parts := []string{g.Name, mem, "power field " + d.PowerField()}
	switch {
	case g.PersistenceMode == nil:
		parts = append(parts, "persistence mode unknown")
	case *g.PersistenceMode:
		parts = append(parts, "persistence mode on")
	default:
		parts = append(parts, "persistence mode off")
		c.Status = Warn
		c.Fix = "sudo nvidia-smi -pm 1 (without it the driver unloads between runs and the first readings of each run are slow)"
	}
	if m, ok := d.(interface{ MIGMode() (bool, error) }); ok {
		switch on, err := m.MIGMode(); {
		case err != nil:
			parts = append(parts, "MIG not supported")
		case on:
			parts = append(parts, "MIG on (energy is measured per physical GPU, shared by its instances)")
		default:
			parts = append(parts, "MIG off")
		}
	}
	c.Detail = strings.Join(parts, ", ")
	return c
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// checkEnergy checks RAPL's domains and the estimate, and returns the source
// auto mode picks: NVML where there is a GPU, RAPL where readable (both when
// both), else the estimate.
func checkEnergy(env Env, gpus bool) ([]Check, string) {
	rapl, readable := checkRAPL(env.SysRoot)
	est := checkEstimate(env.ProcRoot)
	src := "estimate"
	switch {
	case gpus && readable:
		src = "nvml+rapl"
	case gpus:
		src = "nvml"
	case readable:
		src = "rapl"
	}
	if src != "estimate" {
		est.Status = Info
		est.Detail = "not used (a measured source exists); " + est.Detail
		est.Fix = ""
	}
	return append(rapl, est), src
}

// checkRAPL reports each powercap zone and whether its energy_uj reads.
func checkRAPL(sysRoot string) ([]Check, bool) {
	base := filepath.Join(sysRoot, "class", "powercap")
	zones, _ := filepath.Glob(filepath.Join(base, "intel-rapl:*"))
	sort.Strings(zones)
	if len(zones) == 0 {
		why := "no " + base
		if _, err := os.Stat(base); err == nil {
			why = "no intel-rapl zones under " + base
		}
		return []Check{{Area: "energy", Name: "RAPL", Status: Missing, Detail: why + " (a VM, a container without /sys, or no powercap driver)",
			Fix: "on bare metal: sudo modprobe intel_rapl_common (Intel and AMD Zen); in a container, mount /sys/class/powercap; else CPU energy is estimated"}}, false
	}
	var out []Check
	readable := false
	for _, z := range zones {
		name, _ := os.ReadFile(filepath.Join(z, "name"))
		c := Check{Area: "energy", Name: "RAPL " + filepath.Base(z), Status: OK,
			Detail: strings.TrimSpace(string(name)) + ", energy_uj readable"}
		p := filepath.Join(z, "energy_uj")
		if f, err := os.Open(p); err != nil {
			c.Status, c.Detail = Missing, fmt.Sprintf("%s, %s not readable: %v", strings.TrimSpace(string(name)), p, err)
			c.Fix = "check that the file exists"
			if errors.Is(err, fs.ErrPermission) {
				c.Fix = "energy_uj is root-only since Linux 5.10: run llem as root, or sudo chmod a+r " + filepath.Join(base, "intel-rapl:*", "energy_uj") + " (again after each boot)"
			}
		} else {
			f.Close()
			readable = true
		}
		out = append(out, c)
	}
	return out, readable
}

// checkEstimate reports the CPU-time estimate: /proc/stat readable, and its
// figure per busy core.
func checkEstimate(procRoot string) Check {
	c := Check{Area: "energy", Name: "estimate", Status: OK}
	b, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		c.Status, c.Detail, c.Fix = Missing, err.Error(), "mount /proc; without it no energy figure at all"
		return c
	}
	cores := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
			cores++
		}
	}
	model := record.HostFacts(procRoot).CPUModel
	wpc, from := sampler.WattsPerCore(0, model)
	c.Detail = fmt.Sprintf("CPU time × %.3g W per busy core (%d cores, up to %.0f W), labelled an estimate in every record",
		wpc, cores, wpc*float64(cores))
	if from == sampler.WPCTDPTable {
		c.Detail += fmt.Sprintf("; the figure is the %s's TDP / hardware threads", model)
	}
	c.Status = Warn
	c.Fix = "a model, not a measurement: compare runs on this machine only, or give llem RAPL or a GPU; llem-sample --watts-per-core sets the figure"
	return c
}

// checkCgroup reports cgroup v2 (the unified hierarchy) and its controllers.
func checkCgroup(env Env) Check {
	c := Check{Area: "cgroup", Name: "cgroup v2", Status: OK}
	p := filepath.Join(env.SysRoot, "fs", "cgroup", "cgroup.controllers")
	b, err := os.ReadFile(p)
	if err != nil {
		c.Status = Missing
		c.Detail = "no " + p + " (cgroup v1 or hybrid hierarchy, or /sys/fs/cgroup not mounted)"
		c.Fix = "boot with systemd.unified_cgroup_hierarchy=1 (the default on current distributions); Docker's per-container limits and accounting work best on v2"
		return c
	}
	c.Detail = "controllers: " + strings.Join(strings.Fields(string(b)), " ")
	return c
}

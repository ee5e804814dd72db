package runloop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/cpuattr"
	"github.com/llem/llem/internal/record"
)

// GPUSampler is a Sampler that can record one run's GPUs only: a run is
// measured on the GPUs it was given (none: only the CPU-side sources), so
// runs side by side (--parallel) never count each other's GPUs. A Sampler
// without it records everything it records for every run.
type GPUSampler interface {
	StartGPUs(path string, gpus []string) (SamplerSession, error)
}

// StartGPUs samples only gpus (UUIDs); none means no GPU at all.
func (is *InternalSampler) StartGPUs(path string, gpus []string) (SamplerSession, error) {
	s := *is
	s.Opts.GPUs = append([]string(nil), gpus...)
	s.Opts.NoGPUs = len(gpus) == 0
	return s.Start(path)
}

// RunSampler is a Sampler that can also record one run's CPU time beside
// the machine's, so that CPU energy can be attributed to the run.
type RunSampler interface {
	StartRun(path string, gpus []string, t *cpuattr.Target) (SamplerSession, error)
}

// StartRun samples gpus (as StartGPUs) and the CPU time of t's processes.
func (is *InternalSampler) StartRun(path string, gpus []string, t *cpuattr.Target) (SamplerSession, error) {
	s := *is
	s.Opts.GPUs = append([]string(nil), gpus...)
	s.Opts.NoGPUs = len(gpus) == 0
	s.Opts.Run = t.RunCPU()
	return s.Start(path)
}

// StartRun is StartGPUs with "{cgroup}" in Cmd replaced by the run's
// cgroup directory (empty where it has none), for a sampler such as
// llem-sample --run-cgroup.
func (cs *CmdSampler) StartRun(path string, gpus []string, t *cpuattr.Target) (SamplerSession, error) {
	c := *cs
	c.Cmd = strings.ReplaceAll(c.Cmd, "{cgroup}", shellQuote(t.CgroupDir()))
	return c.StartGPUs(path, gpus)
}

// startSampler starts the run's recording, restricted to its GPUs where the
// sampler can be.
func startSampler(o Options, path string, t *cpuattr.Target) (SamplerSession, error) {
	if rs, ok := o.Sampler.(RunSampler); ok && t != nil {
		return rs.StartRun(path, o.GPUs, t)
	}
	if gs, ok := o.Sampler.(GPUSampler); ok {
		return gs.StartGPUs(path, o.GPUs)
	}
	return o.Sampler.Start(path)
}

// gpuPool hands disjoint sets of the node's GPUs (UUIDs, in the order
// llem-exec found them) to the runs in flight, lowest first.
type gpuPool struct {
	all  []string
	used []bool
}

func newGPUPool(gpus []string) *gpuPool {
	return &gpuPool{all: gpus, used: make([]bool, len(gpus))}
}

func (p *gpuPool) free() int {
	n := 0
	for _, u := range p.used {
		if !u {
			n++
		}
	}
	return n
}

// fits reports whether a run needing n GPUs can start now. A run needing more
// than the node has always fits: it fails at once (refusedRun).
func (p *gpuPool) fits(n int) bool { return n > len(p.all) || n <= p.free() }

// take reserves n free GPUs; nil when n is 0 or more than the node has.
func (p *gpuPool) take(n int) []string {
	if n == 0 || n > len(p.all) {
		return nil
	}
	var out []string
	for i, u := range p.used {
		if !u && len(out) < n {
			p.used[i] = true
			out = append(out, p.all[i])
		}
	}
	return out
}

func (p *gpuPool) give(gpus []string) {
	for _, g := range gpus {
		for i, a := range p.all {
			if a == g {
				p.used[i] = false
			}
		}
	}
}

// gpusNeeded is how many GPUs the run's config needs (0 for CPU backends).
func gpusNeeded(e record.Experiment) int { return config.GPUsNeeded(e.Config) }

// notEnoughGPUs is the error of a run needing more GPUs than the node has; nil
// when it has enough.
func notEnoughGPUs(e record.Experiment, need int, have []string) *record.Error {
	if need <= len(have) {
		return nil
	}
	what := "from its config"
	switch e.Backend {
	case "vllm":
		what = "vllm.engine tensor_parallel_size × pipeline_parallel_size"
	case "tensorrt":
		what = "tensorrt tp_size × pp_size"
	case "sglang":
		what = "sglang tp_size × dp_size"
	case "pytorch":
		what = "pytorch on GPUs: max_memory's GPU keys, else 1"
	}
	seen := "none"
	if len(have) > 0 {
		seen = strings.Join(have, ", ")
	}
	return &record.Error{Type: record.ErrNotEnoughGPUs,
		Message: fmt.Sprintf("run needs %d GPU(s) (%s); llem-exec may use %d on this node (%s)", need, what, len(have), seen),
		Hint:    "lower the parallel sizes, run it on a node with more GPUs, or widen --gpus / CUDA_VISIBLE_DEVICES (a pytorch run on the CPU: pytorch.device_map: cpu)"}
}

// refusedRun is the record of a run that cannot start (record.ErrNotEnoughGPUs:
// its config needs more GPUs, config.GPUsNeeded, than llem-exec may use on this
// node; the run fails at once, without a worker, and the next run goes on);
// run.json is written like any run's.
func refusedRun(o Options, e record.Experiment, runDir string, attempt int, baselineID string, rerr *record.Error) (record.Run, error) {
	r := baseRun(o, e, runDir, attempt, baselineID)
	r.Devices = nil
	r.Status, r.Error = record.StatusFailed, rerr
	r.StartNS = time.Now().UnixNano()
	r.EndNS = r.StartNS
	if err := os.RemoveAll(runDir); err != nil {
		return r, err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return r, err
	}
	return r, writeJSONAtomic(filepath.Join(runDir, "run.json"), r)
}

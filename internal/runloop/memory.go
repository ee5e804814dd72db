package runloop

import (
	"fmt"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/memest"
	"github.com/llem/llem/internal/record"
)

// vllmDefaultUtilization is vLLM's gpu_memory_utilization default: the share
// of each GPU's memory it takes for weights and KV cache.
const vllmDefaultUtilization = 0.9

// memoryEstimate is the dry run's memory estimate of a planned run (see
// internal/memest), against the GPUs the run would get: the first ones
// llem-exec may use, as the pool hands them out when nothing else runs.
func memoryEstimate(e record.Experiment, gpus []string, host record.Host) *record.MemoryEstimate {
	m := &record.MemoryEstimate{}
	c, err := config.Decode(e.Config)
	if err != nil {
		m.Note = "no estimate: " + err.Error()
		return m
	}
	est, err := memest.ForConfig(c)
	if err != nil {
		m.Note = "no estimate: " + err.Error()
	} else {
		m.Params, m.WeightsBytes, m.KVCacheBytes = &est.Params, &est.WeightsBytes, &est.KVCacheBytes
		m.OverheadBytes, m.TotalBytes, m.Source = &est.OverheadBytes, &est.TotalBytes, est.Source
	}
	need := config.GPUsNeeded(e.Config)
	if need == 0 || need > len(gpus) {
		if m.Note == "" {
			m.Note = fmt.Sprintf("the run needs %d GPU(s) and may get %d: nothing to compare with", need, len(gpus))
		}
		return m
	}
	var total int64
	for _, uuid := range gpus[:need] {
		mem := gpuMemory(host, uuid)
		if mem == nil {
			return m // a MIG instance or a GPU NVML did not describe
		}
		total += *mem
	}
	m.GPUMemoryBytes = &total
	if m.TotalBytes != nil {
		usable := float64(total)
		if c.Backend == config.BackendVLLM {
			u := vllmDefaultUtilization
			if c.VLLM != nil && c.VLLM.Engine != nil && c.VLLM.Engine.GPUMemoryUtilization != nil {
				u = *c.VLLM.Engine.GPUMemoryUtilization
			}
			usable *= u
		}
		fits := float64(*m.TotalBytes) <= usable
		m.Fits = &fits
	}
	return m
}

func gpuMemory(host record.Host, uuid string) *int64 {
	for _, g := range host.GPUs {
		if g.UUID == uuid {
			return g.MemoryTotalBytes
		}
	}
	return nil
}

// plannedWithEstimate is a dry run's planned run record with its memory
// estimate; warn is told of a run that will not fit.
func plannedWithEstimate(e record.Experiment, runDir string, o Options, warn func(string)) record.Run {
	r := plannedRun(e, record.StatusPlanned, runDir, o.Host)
	m := memoryEstimate(e, o.GPUs, o.Host)
	r.MemoryEstimate = m
	if m.Fits != nil && !*m.Fits {
		warn(fmt.Sprintf("run %s (%s, %s) needs about %.1f GiB, its GPUs have %.1f GiB: it will not fit (lower the batch size or the context, quantize, or use more GPUs)",
			e.RunID, e.Backend, e.Model, float64(*m.TotalBytes)/(1<<30), float64(*m.GPUMemoryBytes)/(1<<30)))
	}
	return r
}

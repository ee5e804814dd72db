package config

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// RunFacts is what llem-exec reads of an experiment's effective config before
// a worker runs it: the GPUs to give it, the idle baseline to measure, the
// timeout. It is the one place besides Decode that reads config fields, and
// it reads them leniently: llem-exec schedules hand-written records too, and
// a record Decode would refuse must still be scheduled (its worker then
// reports what is wrong with the config). A field that is missing or of the
// wrong type reads as absent and gets the schema's default.
type RunFacts struct {
	Backend string `json:"backend"`
	// N is the prompt count (n).
	N        *int `json:"n"`
	Baseline *struct {
		Enabled         *bool    `json:"enabled"`
		DurationSeconds *float64 `json:"duration_seconds"`
	} `json:"baseline"`
	PyTorch *struct {
		DeviceMap json.RawMessage            `json:"device_map"`
		MaxMemory map[string]json.RawMessage `json:"max_memory"`
	} `json:"pytorch"`
	VLLM *struct {
		Engine *struct {
			TP *int `json:"tensor_parallel_size"`
			PP *int `json:"pipeline_parallel_size"`
		} `json:"engine"`
	} `json:"vllm"`
	TensorRT *struct {
		TP *int `json:"tp_size"`
		PP *int `json:"pp_size"`
	} `json:"tensorrt"`

	unreadable bool
}

// ReadRunFacts reads the facts of one effective config (an experiment
// record's config).
func ReadRunFacts(cfg json.RawMessage) RunFacts {
	var f RunFacts
	if err := json.Unmarshal(cfg, &f); err != nil {
		return RunFacts{unreadable: true}
	}
	return f
}

// GPUsNeeded is ReadRunFacts(cfg).GPUsNeeded().
func GPUsNeeded(cfg json.RawMessage) int { return ReadRunFacts(cfg).GPUsNeeded() }

// GPUsNeeded is how many GPUs a run of this config needs:
//   - vllm: engine.tensor_parallel_size × engine.pipeline_parallel_size (each default 1);
//   - tensorrt: tp_size × pp_size (each default 1);
//   - pytorch: 0 with device_map "cpu"; the number of GPU keys in
//     pytorch.max_memory when it names more than one (device_map "auto" then
//     spreads the model over them), else 1;
//   - any other backend (native): 0 — it needs no GPU.
//
// llem-exec's --parallel gives each concurrent run a disjoint set of this many
// GPUs. An unreadable config counts as 1, as for a Python backend.
func (f RunFacts) GPUsNeeded() int {
	if f.unreadable {
		return 1
	}
	switch f.Backend {
	case "vllm":
		if f.VLLM == nil || f.VLLM.Engine == nil {
			return 1
		}
		return atLeast1(f.VLLM.Engine.TP) * atLeast1(f.VLLM.Engine.PP)
	case "tensorrt":
		if f.TensorRT == nil {
			return 1
		}
		return atLeast1(f.TensorRT.TP) * atLeast1(f.TensorRT.PP)
	case "pytorch", "":
		return f.pytorchGPUs()
	}
	return 0
}

func (f RunFacts) pytorchGPUs() int {
	if f.PyTorch != nil && string(f.PyTorch.DeviceMap) == `"cpu"` {
		return 0
	}
	n := 0
	if f.PyTorch != nil {
		for k := range f.PyTorch.MaxMemory {
			if _, err := strconv.Atoi(k); err == nil {
				n++
			}
		}
	}
	return max(n, 1)
}

func atLeast1(p *int) int {
	if p == nil || *p < 1 {
		return 1
	}
	return *p
}

// BaselineDuration is the idle measurement the config asks for:
// baseline.duration_seconds, or 0 when baseline.enabled is false. A config
// without the section gets the schema's default, 30 s.
func (f RunFacts) BaselineDuration() time.Duration {
	def := time.Duration(Default().Baseline.DurationSeconds * float64(time.Second))
	switch b := f.Baseline; {
	case b == nil:
		return def
	case b.Enabled != nil && !*b.Enabled:
		return 0
	case b.DurationSeconds == nil:
		return def
	default:
		return time.Duration(*b.DurationSeconds * float64(time.Second))
	}
}

// Timeout is a run's default time limit: max(600 s, 2 s × n).
func (f RunFacts) Timeout() time.Duration {
	t := 600 * time.Second
	if f.N != nil {
		t = time.Duration(math.Max(600, 2*float64(*f.N))) * time.Second
	}
	return t
}

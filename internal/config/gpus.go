package config

import (
	"encoding/json"
	"strconv"
)

// GPUsNeeded is how many GPUs a run of this effective config needs:
//   - vllm: engine.tensor_parallel_size × engine.pipeline_parallel_size (each default 1);
//   - tensorrt: tp_size × pp_size (each default 1);
//   - pytorch: 0 with device_map "cpu"; the number of GPU keys in
//     pytorch.max_memory when it names more than one (device_map "auto" then
//     spreads the model over them), else 1;
//   - any other backend (native): 0 — it needs no GPU.
//
// llem-exec's --parallel gives each concurrent run a disjoint set of this many
// GPUs. An unreadable config counts as 1 for a Python backend.
//
// It reads the few fields it needs leniently rather than through Decode:
// llem-exec asks it of every experiment it schedules, hand-written records
// included, and a record Decode would refuse must still get its GPUs (the
// worker then reports what is wrong with its config).
func GPUsNeeded(cfg json.RawMessage) int {
	var c struct {
		Backend string `json:"backend"`
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
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return 1
	}
	pos := func(p *int) int {
		if p == nil || *p < 1 {
			return 1
		}
		return *p
	}
	switch c.Backend {
	case "vllm":
		if c.VLLM == nil || c.VLLM.Engine == nil {
			return 1
		}
		return pos(c.VLLM.Engine.TP) * pos(c.VLLM.Engine.PP)
	case "tensorrt":
		if c.TensorRT == nil {
			return 1
		}
		return pos(c.TensorRT.TP) * pos(c.TensorRT.PP)
	case "pytorch", "":
		if c.PyTorch != nil && string(c.PyTorch.DeviceMap) == `"cpu"` {
			return 0
		}
		n := 0
		if c.PyTorch != nil {
			for k := range c.PyTorch.MaxMemory {
				if _, err := strconv.Atoi(k); err == nil {
					n++
				}
			}
		}
		if n > 1 {
			return n
		}
		return 1
	}
	return 0
}

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
	SGLang *struct {
		TP *int `json:"tp_size"`
		DP *int `json:"dp_size"`
	} `json:"sglang"`
	// Serving is the serving section; nil for a batch run.
	Serving *ServingFacts `json:"serving"`

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
//   - sglang: tp_size × dp_size (each default 1): each data-parallel
//     replica holds a tensor-parallel copy of the model;
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
	case "sglang":
		if f.SGLang == nil {
			return 1
		}
		return atLeast1(f.SGLang.TP) * atLeast1(f.SGLang.DP)
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

// Timeout is a run's default time limit: max(600 s, 2 s × n) for a batch
// run; for a serving run, ServingFacts.Timeout.
func (f RunFacts) Timeout() time.Duration {
	if f.Serving != nil {
		return f.Serving.Timeout()
	}
	t := 600 * time.Second
	if f.N != nil {
		t = time.Duration(math.Max(600, 2*float64(*f.N))) * time.Second
	}
	return t
}

// ServingFacts are the fields of a serving section a run's time limit
// depends on, read leniently like the rest of RunFacts: a missing or
// mistyped field reads as absent and gets the section's default.
type ServingFacts struct {
	Endpoint        *string  `json:"endpoint"`
	Rate            *float64 `json:"rate"`
	Concurrency     *int     `json:"concurrency"`
	MaxInFlight     *int     `json:"max_in_flight"`
	DurationS       *float64 `json:"duration_s"`
	Requests        *int     `json:"requests"`
	IdleS           *float64 `json:"idle_s"`
	WarmupS         *float64 `json:"warmup_s"`
	CooldownS       *float64 `json:"cooldown_s"`
	StartupTimeoutS *float64 `json:"startup_timeout_s"`
	RequestTimeoutS *float64 `json:"request_timeout_s"`
}

// ServingMarginS is what a serving run's time limit adds to its phases: the
// server's shutdown and the writing of the records.
const ServingMarginS = 60

// Timeout is a serving run's default time limit, the sum of its phases:
// startup_timeout_s (no startup with an endpoint) + idle_s + warmup_s +
// the measured window + cooldown_s + ServingMarginS. The window is
// duration_s plus request_timeout_s (requests still in flight at its end
// run to completion); with requests instead, it is requests / rate +
// request_timeout_s in an open loop, ⌈requests / concurrency⌉ ×
// request_timeout_s in a closed loop (each of the concurrency slots sends
// its requests one after the other, each ending within request_timeout_s),
// and for a trace, whose offsets are in its file, the batch rule's
// max(600 s, 2 s × requests) + request_timeout_s. An open loop capped by
// max_in_flight takes at least ⌈requests / max_in_flight⌉ ×
// request_timeout_s, as requests wait for a slot when the server falls
// behind.
func (s ServingFacts) Timeout() time.Duration {
	d := defaultServing()
	orDefault := func(p *float64, def float64) float64 {
		if p == nil || *p < 0 || math.IsNaN(*p) {
			return def
		}
		return *p
	}
	reqTimeout := orDefault(s.RequestTimeoutS, d.RequestTimeoutS)
	total := orDefault(s.IdleS, d.IdleS) + orDefault(s.WarmupS, d.WarmupS) + orDefault(s.CooldownS, d.CooldownS) +
		s.windowS(reqTimeout) + ServingMarginS
	if s.Endpoint == nil {
		total += orDefault(s.StartupTimeoutS, d.StartupTimeoutS)
	}
	if total > math.MaxInt64/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(total * float64(time.Second))
}

// windowS bounds the measured window in seconds (see Timeout).
func (s ServingFacts) windowS(reqTimeout float64) float64 {
	switch {
	case s.DurationS != nil && *s.DurationS > 0:
		return *s.DurationS + reqTimeout
	case s.Requests == nil || *s.Requests < 1:
		return 600 + reqTimeout // no window: a malformed section; its run reports why
	}
	n := float64(*s.Requests)
	slots := func(p *int) float64 { return math.Ceil(n/float64(*p)) * reqTimeout }
	if s.Concurrency != nil && *s.Concurrency > 0 {
		return slots(s.Concurrency)
	}
	w := math.Max(600, 2*n) + reqTimeout // a trace
	if s.Rate != nil && *s.Rate > 0 {
		w = n/(*s.Rate) + reqTimeout
	}
	if s.MaxInFlight != nil && *s.MaxInFlight > 0 {
		w = math.Max(w, slots(s.MaxInFlight)) // sends held back by the cap
	}
	return w
}

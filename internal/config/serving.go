package config

import (
	"net/url"
	"strings"
)

// Defaults of a serving section, filled when the section is present
// (docs/expand.md, "The serving section"):
//   - idle_s 5: the loaded server with no traffic, about 100 power samples at
//     the sampler's 50 ms interval: the server's idle power beside the
//     machine baseline;
//   - warmup_s 5: traffic before the window, so that the batch has filled and
//     the first requests' queueing is not measured; raise it where requests
//     last longer than a few seconds;
//   - cooldown_s 2: after the window, so that its last samples are not cut;
//   - startup_timeout_s 600: downloading and loading a model, compiling CUDA
//     graphs (vLLM, SGLang) or a TensorRT engine take minutes;
//   - request_timeout_s 300: one request, from send to its last token.
func defaultServing() Serving {
	return Serving{API: "completions", Arrival: "poisson", IdleS: 5, WarmupS: 5, CooldownS: 2,
		StartupTimeoutS: 600, RequestTimeoutS: 300}
}

// ArrivalSeed is the seed of the arrival schedule: serving.seed, else
// random_seed. Zero without a serving section.
func (c *Config) ArrivalSeed() int64 {
	switch {
	case c.Serving == nil:
		return 0
	case c.Serving.Seed != nil:
		return *c.Serving.Seed
	}
	return c.RandomSeed
}

// finalizeServing fills the gamma shape: arrival gamma without burstiness
// is shape 1 (Poisson arrivals). Copy on write: sections may be shared.
func (c *Config) finalizeServing() {
	if s := c.Serving; s != nil && s.Arrival == "gamma" && s.Burstiness == nil {
		n := *s
		n.Burstiness = ptr(1.0)
		c.Serving = &n
	}
}

// validateServing checks the serving rules: the backend has a server (and
// sglang has nothing else), one traffic source, one window, and the fields
// that belong to one traffic kind only.
func (c *Config) validateServing(add func(path, hint, format string, a ...any)) {
	s := c.Serving
	if s == nil {
		if c.Backend == BackendSGLang {
			add("backend", "add e.g. serving: {rate: 4, duration_s: 60}, or use another backend",
				"sglang runs only as a server: add a serving section")
		}
		return
	}
	if !contains(ServingBackends, c.Backend) {
		add("serving", "use backend "+strings.Join(ServingBackends, ", ")+" for a serving run, or remove the serving section",
			"backend %s has no server, so it cannot run a serving experiment", c.Backend)
	}
	s.validateTraffic(add)
	if (s.DurationS == nil) == (s.Requests == nil) {
		add("serving.duration_s", "set exactly one of serving.duration_s (seconds) and serving.requests (a count)",
			"the measured window needs exactly one of duration_s and requests")
	}
	if s.Endpoint != nil {
		if u, err := url.Parse(*s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("serving.endpoint", "write the server's base URL, e.g. http://127.0.0.1:8000/v1",
				"endpoint %q is not an http(s) URL", clip(*s.Endpoint))
		}
	}
	if s.Trace != nil && *s.Trace == "" {
		add("serving.trace", "name a JSONL or Azure CSV trace file", "trace must not be empty")
	}
	if n := c.Native; n != nil && c.Backend == BackendNative && n.BatchSize != 1 {
		add("native.batch_size", "remove native.batch_size: llem-serve batches continuously (docs/serve.md)",
			"native.batch_size %d has no effect on a serving run", n.BatchSize)
	}
}

// validateTraffic checks that exactly one of rate, concurrency and trace
// drives the traffic, and that arrival, burstiness and max_in_flight go
// with it: arrival and burstiness shape a rate (a trace replays its own
// offsets, a closed loop sends when a request ends), and max_in_flight caps
// an open loop (a closed loop's concurrency is its cap already).
func (s *Serving) validateTraffic(add func(path, hint, format string, a ...any)) {
	kinds := 0
	for _, set := range []bool{s.Rate != nil, s.Concurrency != nil, s.Trace != nil} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		add("serving", "set serving.rate (requests/s, open loop), serving.concurrency (closed loop) or serving.trace (replay)",
			"a serving section needs exactly one of rate, concurrency and trace")
	case s.Trace != nil && s.Rate != nil:
		add("serving.rate", "remove serving.rate: the trace's offsets set the arrivals",
			"trace replays the file's arrival offsets, so rate must be absent")
	case kinds > 1:
		add("serving.concurrency", "keep one of serving.rate (open loop), serving.concurrency (closed loop) and serving.trace",
			"rate, concurrency and trace exclude each other")
	}
	if s.Rate == nil && s.Arrival != "poisson" {
		add("serving.arrival", "remove serving.arrival, or set serving.rate",
			"arrival %s shapes a rate, but this serving section has none", s.Arrival)
	}
	if s.Burstiness != nil && s.Arrival != "gamma" {
		add("serving.burstiness", "set serving.arrival: gamma, or remove serving.burstiness",
			"burstiness is the gamma shape: it needs arrival gamma, got %s", s.Arrival)
	}
	if s.Concurrency != nil && s.Requests != nil {
		add("serving.requests", "set serving.duration_s: a closed loop's window is a time",
			"a closed loop (concurrency) has no send schedule to place a window of requests on")
	}
	if s.MaxInFlight != nil && s.Concurrency != nil {
		add("serving.max_in_flight", "remove serving.max_in_flight: concurrency already bounds a closed loop",
			"max_in_flight caps an open loop (rate or trace), not concurrency")
	}
}

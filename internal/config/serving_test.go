package config

import (
	"strings"
	"testing"
)

// A present serving section gets its defaults; the seed stays null and
// reads as random_seed.
func TestServingDefaults(t *testing.T) {
	c := mustParse(t, "model: llem-tiny\nrandom_seed: 7\nserving: {rate: 2, duration_s: 30}\n")
	s := c.Serving
	if s.API != "completions" || s.Arrival != "poisson" || s.IdleS != 5 || s.WarmupS != 5 || s.CooldownS != 2 ||
		s.StartupTimeoutS != 600 || s.RequestTimeoutS != 300 || s.Seed != nil || s.Burstiness != nil || s.Endpoint != nil {
		t.Errorf("serving defaults: %+v", *s)
	}
	if c.ArrivalSeed() != 7 {
		t.Errorf("arrival seed %d, want random_seed 7", c.ArrivalSeed())
	}
	if c := mustParse(t, "model: llem-tiny\nserving: {rate: 2, duration_s: 30, seed: 3}\n"); c.ArrivalSeed() != 3 {
		t.Errorf("arrival seed %d, want serving.seed 3", c.ArrivalSeed())
	}
	// gamma without burstiness is shape 1: Poisson arrivals, written out.
	g := mustParse(t, "model: llem-tiny\nserving: {rate: 2, arrival: gamma, requests: 10}\n")
	if g.Serving.Burstiness == nil || *g.Serving.Burstiness != 1 {
		t.Errorf("gamma burstiness default: %v", g.Serving.Burstiness)
	}
	a, _ := g.ID()
	b, _ := mustParse(t, "model: llem-tiny\nserving: {rate: 2, arrival: gamma, burstiness: 1, requests: 10}\n").ID()
	if a != b {
		t.Error("burstiness 1 written out changes the id")
	}
	// The section changes the id; its absence leaves batch ids alone.
	batch, _ := mustParse(t, "model: llem-tiny\n").ID()
	serving, _ := mustParse(t, "model: llem-tiny\nserving: {rate: 2, duration_s: 30}\n").ID()
	if batch == serving {
		t.Error("a serving config has its batch twin's id")
	}
	canon, _ := mustParse(t, "model: llem-tiny\n").Canonical()
	if strings.Contains(string(canon), "serving") || strings.Contains(string(canon), "sglang") {
		t.Errorf("a batch config's canonical form names serving or sglang: %s", canon)
	}
}

// sglang: server only, its section with tp/dp 1, the precision table.
func TestSGLangBackend(t *testing.T) {
	c := mustParse(t, "model: org/m\nbackend: sglang\nserving: {concurrency: 8, duration_s: 100}\n")
	if c.SGLang == nil || c.SGLang.TPSize != 1 || c.SGLang.DPSize != 1 || c.Precision != "bf16" || c.Dataset.Name != DatasetAIEnergyScore {
		t.Errorf("sglang defaults: %+v %+v", c, c.SGLang)
	}
	es := parseErr(t, "model: org/m\nbackend: sglang\n")
	if es[0].Error() != "t.yaml:2:1: backend: sglang runs only as a server: add a serving section (hint: add e.g. serving: {rate: 4, duration_s: 60}, or use another backend)" {
		t.Errorf("batch sglang: %v", es)
	}
	x := mustParse(t, "model: org/m\nbackend: sglang\nserving: {rate: 1, requests: 5}\nsglang: {tp_size: 2, enable_mixed_chunk: true, schedule_policy: fcfs}\n")
	if x.SGLang.Extra["enable_mixed_chunk"] != true || *x.SGLang.SchedulePolicy != "fcfs" || x.SGLang.TPSize != 2 {
		t.Errorf("sglang section: %+v", x.SGLang)
	}
	if es := parseErr(t, "model: org/m\nbackend: sglang\nserving: {rate: 1, requests: 5}\nsglang: {schedule_policy: lmp}\n"); !strings.Contains(es[0].Error(), `did you mean "lpm"?`) {
		t.Errorf("schedule_policy typo: %v", es)
	}
}

// Every serving rule, with its path, a hint and a line.
func TestServingRules(t *testing.T) {
	const m = "model: llem-tiny\n"
	cases := []struct{ src, path, msg string }{
		{"model: gpt2\nbackend: pytorch\nserving: {rate: 1, requests: 5}\n", "serving", "backend pytorch has no server"},
		{m + "serving: {requests: 5}\n", "serving", "exactly one of rate, concurrency and trace"},
		{m + "serving: {rate: 1, concurrency: 2, requests: 5}\n", "serving.concurrency", "exclude each other"},
		{m + "serving: {concurrency: 2, trace: t.jsonl, requests: 5}\n", "serving.concurrency", "exclude each other"},
		{m + "serving: {rate: 1, trace: t.jsonl, requests: 5}\n", "serving.rate", "rate must be absent"},
		{m + "serving: {rate: 1}\n", "serving.duration_s", "exactly one of duration_s and requests"},
		{m + "serving: {rate: 1, requests: 5, duration_s: 10}\n", "serving.duration_s", "exactly one of duration_s and requests"},
		{m + "serving: {rate: 1, requests: 5, burstiness: 0.5}\n", "serving.burstiness", "needs arrival gamma"},
		{m + "serving: {concurrency: 4, requests: 5, arrival: gamma}\n", "serving.arrival", "shapes a rate"},
		{m + "serving: {trace: t.jsonl, requests: 5, arrival: constant}\n", "serving.arrival", "shapes a rate"},
		{m + "serving: {concurrency: 4, requests: 5, max_in_flight: 8}\n", "serving.max_in_flight", "caps an open loop"},
		{m + "serving: {concurrency: 4, requests: 5}\n", "serving.requests", "no send schedule"},
		{m + "serving: {rate: 1, requests: 5, endpoint: localhost:8000}\n", "serving.endpoint", "not an http(s) URL"},
		{m + "serving: {rate: 1, requests: 5, endpoint: 'ftp://h/v1'}\n", "serving.endpoint", "not an http(s) URL"},
		{m + "serving: {rate: 1, requests: 5, endpoint: 'http://'}\n", "serving.endpoint", "not an http(s) URL"},
		{m + "serving: {trace: '', requests: 5}\n", "serving.trace", "must not be empty"},
		{m + "native: {batch_size: 4}\nserving: {rate: 1, requests: 5}\n", "native.batch_size", "no effect on a serving run"},
		{"model: m\nbackend: vllm\nsglang: {tp_size: 2}\nserving: {rate: 1, requests: 5}\n", "sglang", "needs backend sglang"},
		{"model: m\nbackend: sglang\nprecision: fp32\nserving: {rate: 1, requests: 5}\n", "precision", "does not support"},
	}
	for _, c := range cases {
		wantRuleError(t, c.src, c.path, c.msg)
	}
	// Range rules of the fields themselves, found while decoding.
	for src, want := range map[string]string{
		m + "serving: {rate: 0, requests: 5}\n":                     "serving.rate: expected a number > 0",
		m + "serving: {rate: 1, requests: 0}\n":                     "serving.requests: expected an integer ≥ 1",
		m + "serving: {rate: 1, requests: 5, api: chats}\n":         `serving.api: expected one of completions, chat, got "chats"`,
		m + "serving: {rate: 1, requests: 5, slo: {ttft_ms: 0}}\n":  "serving.slo.ttft_ms: expected a number > 0",
		m + "serving: {rate: 1, requests: 5, slo: {tpot_ms: -1}}\n": "serving.slo.tpot_ms: expected a number > 0",
		m + "serving: {rate: 1, requests: 5, slo: {e2e_ms: 0}}\n":   "serving.slo.e2e_ms: expected a number > 0",
		m + "serving: {rate: 1, requests: 5, idle_s: -1}\n":         "serving.idle_s: expected a number ≥ 0",
		m + "serving: {rate: 1, requests: 5, ratee: 2}\n":           `serving.ratee: unknown field "ratee" (hint: did you mean "rate"?)`,
	} {
		if es := parseErr(t, src); !strings.Contains(es[0].Error(), want) {
			t.Errorf("%q: got %v, want %s", src, es, want)
		}
	}
	// The valid forms: open loop, closed loop, trace replay, remote endpoint.
	for _, src := range []string{
		m + "serving: {rate: 4, duration_s: 60, max_in_flight: 64, slo: {ttft_ms: 500, tpot_ms: 50}}\n",
		m + "serving: {rate: 4, arrival: gamma, burstiness: 0.5, requests: 200}\n",
		m + "serving: {rate: 4, arrival: constant, requests: 200}\n",
		m + "serving: {concurrency: 16, duration_s: 200, api: chat}\n",
		m + "serving: {trace: azure.csv, duration_s: 300, max_in_flight: 32}\n",
		"model: m\nbackend: vllm\nserving: {rate: 2, duration_s: 60, endpoint: 'https://gpu7.example:8443/v1'}\n",
		"model: m\nbackend: tensorrt\nserving: {rate: 2, duration_s: 60}\n",
	} {
		mustParse(t, src)
	}
}

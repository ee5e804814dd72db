package config

import (
	"encoding/json"
	"testing"
	"time"
)

// A serving run's time limit is the sum of its phases (ServingFacts.Timeout).
func TestServingTimeout(t *testing.T) {
	const fixed = 600 + 5 + 5 + 2 + ServingMarginS // startup, idle, warmup, cooldown, margin
	for _, c := range []struct {
		cfg  string
		want float64
	}{
		{`{"serving":{"rate":4,"duration_s":60}}`, fixed + 60 + 300},
		{`{"serving":{"rate":4,"requests":400}}`, fixed + 100 + 300},
		{`{"serving":{"rate":4,"requests":400,"max_in_flight":100}}`, fixed + 4*300},
		{`{"serving":{"rate":4,"requests":400,"max_in_flight":1000}}`, fixed + 100 + 300},
		{`{"serving":{"concurrency":8,"requests":20,"request_timeout_s":10}}`, fixed + 3*10}, // ⌈20/8⌉ slots of 10 s
		{`{"serving":{"trace":"t.jsonl","requests":1000}}`, fixed + 2000 + 300},
		{`{"serving":{"trace":"t.jsonl","requests":10}}`, fixed + 600 + 300},
		{`{"serving":{"rate":1,"duration_s":30,"endpoint":"http://h/v1"}}`, fixed - 600 + 30 + 300},
		{`{"serving":{"rate":1,"duration_s":30,"startup_timeout_s":1200,"idle_s":0,"warmup_s":20,"cooldown_s":1,"request_timeout_s":60}}`,
			1200 + 0 + 20 + 1 + ServingMarginS + 30 + 60},
		{`{"serving":{"rate":"fast","duration_s":30}}`, 600}, // unreadable: the batch default
		{`{"serving":{"rate":1,"idle_s":-3}}`, fixed + 600 + 300},
		{`{"serving":null,"n":1000}`, 2000},
	} {
		got := ReadRunFacts(json.RawMessage(c.cfg)).Timeout()
		if want := time.Duration(c.want * float64(time.Second)); got != want {
			t.Errorf("%s: timeout %s, want %s", c.cfg, got, want)
		}
	}
	// The timeout of a parsed serving config covers its phases.
	cfg := mustParse(t, "model: llem-tiny\nserving: {rate: 2, duration_s: 120}\n")
	raw, _ := cfg.Canonical()
	if got := ReadRunFacts(raw).Timeout(); got != time.Duration(fixed+120+300)*time.Second {
		t.Errorf("parsed serving config: timeout %s", got)
	}
}

func TestServingGPUs(t *testing.T) {
	for cfg, want := range map[string]int{
		`{"backend":"sglang"}`:                                       1,
		`{"backend":"sglang","sglang":{"tp_size":2}}`:                2,
		`{"backend":"sglang","sglang":{"tp_size":2,"dp_size":2}}`:    4,
		`{"backend":"sglang","sglang":{"tp_size":null,"dp_size":3}}`: 3,
		`{"backend":"native","serving":{"rate":1}}`:                  0,
	} {
		if got := GPUsNeeded(json.RawMessage(cfg)); got != want {
			t.Errorf("GPUsNeeded(%s) = %d, want %d", cfg, got, want)
		}
	}
}

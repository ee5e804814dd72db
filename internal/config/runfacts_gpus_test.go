package config

import (
	"encoding/json"
	"testing"
)

func TestGPUsNeeded(t *testing.T) {
	for cfg, want := range map[string]int{
		`{"backend":"native"}`:                                  0,
		`{"backend":"pytorch"}`:                                 1,
		`{"backend":"pytorch","pytorch":{"device_map":"cpu"}}`:  0,
		`{"backend":"pytorch","pytorch":{"device_map":"auto"}}`: 1,
		`{"backend":"pytorch","pytorch":{"max_memory":{"0":"40GiB","1":"40GiB","cpu":"100GiB"}}}`: 2,
		`{"backend":"vllm","vllm":null}`: 1,
		`{"backend":"vllm","vllm":{"engine":{"tensor_parallel_size":4,"pipeline_parallel_size":2}}}`: 8,
		`{"backend":"vllm","vllm":{"engine":{"tensor_parallel_size":null}}}`:                         1,
		`{"backend":"tensorrt","tensorrt":{"tp_size":2}}`:                                            2,
		`not json`: 1,
	} {
		if got := GPUsNeeded(json.RawMessage(cfg)); got != want {
			t.Errorf("GPUsNeeded(%s) = %d, want %d", cfg, got, want)
		}
	}
}

package config

import (
	"encoding/json"
	"testing"
	"time"
)

// The timeout and the baseline llem-exec takes from a config, read leniently:
// a missing section or a field of the wrong type gets the schema's default.
func TestRunFactsTimeoutAndBaseline(t *testing.T) {
	for _, c := range []struct {
		cfg               string
		timeout, baseline time.Duration
	}{
		{`{}`, 600 * time.Second, 30 * time.Second},
		{`{"model":"m"}`, 600 * time.Second, 30 * time.Second},
		{`{"n":100}`, 600 * time.Second, 30 * time.Second},
		{`{"n":1000}`, 2000 * time.Second, 30 * time.Second},
		{`{"baseline":{"duration_seconds":5}}`, 600 * time.Second, 5 * time.Second},
		{`{"baseline":{"enabled":false,"duration_seconds":5}}`, 600 * time.Second, 0},
		{`{"baseline":{"enabled":true}}`, 600 * time.Second, 30 * time.Second},
		{`not json`, 600 * time.Second, 30 * time.Second},
	} {
		f := ReadRunFacts(json.RawMessage(c.cfg))
		if got := f.Timeout(); got != c.timeout {
			t.Errorf("%s: timeout %s, want %s", c.cfg, got, c.timeout)
		}
		if got := f.BaselineDuration(); got != c.baseline {
			t.Errorf("%s: baseline %s, want %s", c.cfg, got, c.baseline)
		}
	}
}

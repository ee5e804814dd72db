package study

import (
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
)

// Every serving field is a universal axis at its dotted path, into a section
// no shared field created; sglang's fields are scoped to sglang.
func TestServingAxes(t *testing.T) {
	s := expand(t, `model: llem-tiny
serving: {duration_s: 60}
sweep:
  serving.rate: [1, 2, 4, 8]
  serving.slo.ttft_ms: [200, 500]
`)
	cs := configs(t, s)
	if len(cs) != 8 || s.Skipped != 0 {
		t.Fatalf("want 8 configs, got %d (skipped %d)", len(cs), s.Skipped)
	}
	var got []string
	for _, c := range cs {
		if c.Serving == nil || *c.Serving.DurationS != 60 || c.Serving.IdleS != 5 {
			t.Fatalf("serving section: %+v", c.Serving)
		}
		got = append(got, itoa(int(*c.Serving.Rate))+"/"+itoa(int(*c.Serving.SLO.TTFTMs)))
	}
	if strings.Join(got, " ") != "1/200 1/500 2/200 2/500 4/200 4/500 8/200 8/500" {
		t.Errorf("product: %v", got)
	}

	// No serving: key outside the sweep: the axis creates the section with its defaults.
	cs = configs(t, expand(t, "model: llem-tiny\nsweep:\n  serving.concurrency: [1, 16]\n  serving.duration_s: [30]\n"))
	if len(cs) != 2 || *cs[1].Serving.Concurrency != 16 || cs[1].Serving.API != "completions" {
		t.Errorf("serving section from the axis alone: %+v", cs)
	}

	// --set reaches into the section too.
	cs = configs(t, expand(t, "model: llem-tiny\nserving: {rate: 1, requests: 10}\n", Options{Sets: []string{"serving.rate=4", "serving.slo.e2e_ms=900"}}))
	if *cs[0].Serving.Rate != 4 || *cs[0].Serving.SLO.E2EMs != 900 || *cs[0].Serving.Requests != 10 {
		t.Errorf("--set serving.*: %+v", cs[0].Serving)
	}

	// A backend axis across the serving backends, a scoped sglang axis.
	s = expand(t, `model: org/m
serving: {rate: 2, requests: 50}
sweep:
  backend: [vllm, sglang]
  sglang.schedule_policy: [lpm, fcfs]
`)
	cs = configs(t, s)
	if len(cs) != 3 || cs[0].Backend != "vllm" || cs[2].Backend != "sglang" || *cs[2].SGLang.SchedulePolicy != "fcfs" {
		t.Errorf("backend × sglang axis: %d configs", len(cs))
	}
}

// An invalid serving combination is skipped with its reason: pytorch has no
// server, sglang runs only as one.
func TestServingSkips(t *testing.T) {
	s := expand(t, `model: org/m
sweep:
  backend: [pytorch, vllm, sglang]
experiments:
  - {backend: vllm, serving: {rate: 1, requests: 10}}
  - {backend: pytorch, serving: {rate: 1, requests: 10}}
`)
	var reasons []string
	s.EachSkipped(func(r *record.Skipped) error {
		reasons = append(reasons, r.Reasons[0].Path+": "+r.Reasons[0].Message)
		return nil
	})
	want := []string{"backend: sglang runs only as a server: add a serving section",
		"serving: backend pytorch has no server, so it cannot run a serving experiment"}
	if strings.Join(reasons, "|") != strings.Join(want, "|") || s.Unique != 3 {
		t.Errorf("skips %q (unique %d), want %q", reasons, s.Unique, want)
	}
}

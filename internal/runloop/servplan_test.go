package runloop

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/load"
	"github.com/llem/llem/internal/record"
)

func servingConfig(t *testing.T, serving string) *config.Config {
	t.Helper()
	cfg, err := config.Decode([]byte(`{"model":"llem-tiny","backend":"native","n":4,"max_output_tokens":4,"dataset":{"input_len":16,"output_len":4},"serving":` + serving + `}`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const msNS = int64(time.Millisecond)

// A request-count window at a constant rate of 10/s: requests 0-2 are
// scheduled before the 0.25 s warmup ends, 3-7 are measured, the window
// ends at request 8's send time, and the cooldown's 0.3 s hold requests 8-10.
func TestServingPlanRequests(t *testing.T) {
	p, err := newServingPlan(servingConfig(t, `{"arrival":"constant","rate":10,"requests":5,"warmup_s":0.25,"cooldown_s":0.3}`), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if p.measureStart != 300*msNS || p.measureEnd != 800*msNS || p.cooldownEnd != 1100*msNS {
		t.Errorf("edges %d %d %d", p.measureStart, p.measureEnd, p.cooldownEnd)
	}
	want := []int64{0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}
	for i := range want {
		want[i] *= msNS
	}
	if !slices.Equal(p.plan.Offsets, want) {
		t.Errorf("offsets %v, want %v", p.plan.Offsets, want)
	}
	if p.closed || p.offered == nil || *p.offered < 9.99 || *p.offered > 10.01 {
		t.Errorf("closed %v, offered %v", p.closed, p.offered)
	}
	if s := p.work.Spec(3); s.Prompt != "b" || s.MaxTokens != 4 {
		t.Errorf("request 3: %+v; want the dataset's prompts in turn, max_output_tokens", s)
	}
}

// Without a cooldown the schedule ends with the last measured request; a
// Poisson schedule's window is a prefix of the same seeded schedule.
func TestServingPlanPoissonPrefix(t *testing.T) {
	p, err := newServingPlan(servingConfig(t, `{"rate":50,"requests":20,"warmup_s":0.5,"cooldown_s":0,"seed":7}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	full, err := load.Offsets(load.ArrivalPoisson, 50, 1, 200, 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	for full[k] < 500*msNS {
		k++
	}
	if n := len(p.plan.Offsets); n != k+20 || !slices.Equal(p.plan.Offsets, full[:n]) {
		t.Fatalf("%d offsets, want the first %d of the seeded schedule", n, k+20)
	}
	if p.measureStart != full[k] || p.measureEnd != full[k+20] || p.cooldownEnd != p.measureEnd {
		t.Errorf("window [%d, %d) cooldown end %d; want [%d, %d)", p.measureStart, p.measureEnd, p.cooldownEnd, full[k], full[k+20])
	}
}

func TestServingPlanDuration(t *testing.T) {
	p, err := newServingPlan(servingConfig(t, `{"arrival":"constant","rate":10,"duration_s":0.5,"warmup_s":0.2,"cooldown_s":0.1}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.plan.Offsets) != 8 || p.measureStart != 200*msNS || p.measureEnd != 700*msNS || p.cooldownEnd != 800*msNS {
		t.Errorf("%d offsets, edges %d %d %d", len(p.plan.Offsets), p.measureStart, p.measureEnd, p.cooldownEnd)
	}
	c, err := newServingPlan(servingConfig(t, `{"concurrency":3,"duration_s":2,"warmup_s":1,"cooldown_s":0.5}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.closed || c.plan.Concurrency != 3 || c.plan.Duration != 3500*time.Millisecond || c.plan.Offsets != nil || c.measureEnd != 3000*msNS {
		t.Errorf("closed loop %+v", c)
	}
	if c.api != "completions" || c.startup != 600*time.Second || c.requestTimeout != 300*time.Second {
		t.Errorf("defaults: api %q startup %s request %s", c.api, c.startup, c.requestTimeout)
	}
}

func TestServingPlanErrors(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "t.jsonl")
	var b strings.Builder
	for i := range 5 {
		fmt.Fprintf(&b, `{"offset_s":%d,"input_tokens":8,"output_tokens":3}`+"\n", i)
	}
	if err := os.WriteFile(trace, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// The config rules refuse a section that makes no plan; a trace too short
	// for its window only shows here.
	if _, err := newServingPlan(servingConfig(t, `{"trace":"`+trace+`","requests":5}`), nil); err == nil || !strings.Contains(err.Error(), "the trace has 5 requests") {
		t.Errorf("a window longer than the trace: %v", err)
	}
	p, err := newServingPlan(servingConfig(t, `{"trace":"`+trace+`","requests":2,"warmup_s":1,"cooldown_s":0}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.plan.Offsets, []int64{0, 1e9, 2e9}) || p.measureStart != 1e9 || p.measureEnd != 3e9 {
		t.Errorf("trace window: offsets %v, [%d, %d)", p.plan.Offsets, p.measureStart, p.measureEnd)
	}
}

// The totals count the ok requests scheduled in the measure window.
func TestRequestTally(t *testing.T) {
	p := &servingPlan{plan: load.Plan{Offsets: []int64{0, 10, 20, 30, 40}}, measureStart: 10, measureEnd: 40}
	var tl requestTally
	t0 := int64(1000)
	for i, st := range []string{"ok", "ok", "http_error", "ok", "ok"} {
		in := "5"
		if i == 3 {
			in = "null" // no usage from the server
		}
		fmt.Fprintf(&tl, `{"kind":"request","id":%d,"t_scheduled":%d,"t_start":%d,"status":%q,"input_tokens":%s,"output_tokens":%d}`+"\n",
			i, t0+p.plan.Offsets[i], t0+p.plan.Offsets[i]+3, st, in, 10+i)
	}
	if err := tl.err(); err != nil {
		t.Fatal(err)
	}
	if got := tl.start(p, 0); got != t0 {
		t.Errorf("start %d, want %d", got, t0)
	}
	tot, sent, failed := tl.totals(p, t0)
	if tot != (record.Totals{Requests: 2, InputTokens: 5, OutputTokens: 11 + 13}) || sent != 3 || failed != "http_error 1" {
		t.Errorf("totals %+v, sent %d, failed %q", tot, sent, failed)
	}
	if n := tl.inputUnknown(p, t0); n != 1 {
		t.Errorf("%d measured requests without input tokens, want 1", n)
	}
}

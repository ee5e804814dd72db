package report

import (
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
)

// The legend names each attribution the runs' records carry, and the
// estimate's per-core figure with its source; records naming neither add
// no line.
func TestAttributionLegend(t *testing.T) {
	rp := &Report{Runs: []*Run{
		{E: &record.Energy{Attribution: "process", Estimate: true, EstimateModel: &record.EstimateModel{WattsPerCore: 2.1875, Source: "tdp_table", CPUModel: "AMD EPYC 7763 64-Core Processor"}}},
		{E: &record.Energy{Attribution: "machine"}},
		{E: &record.Energy{}},
	}}
	got := strings.Join(rp.attributionLegend(), "\n")
	for _, want := range []string{"CPU energy of 1 run(s) is attributed to the run (process attribution)", "CPU energy of 1 run(s) is the whole machine's"} {
		if !strings.Contains(got, want) {
			t.Errorf("legend lacks %q:\n%s", want, got)
		}
	}
	if m := rp.estimateModels(); m != "; here 2.19 W per busy core (the TDP of the AMD EPYC 7763 64-Core Processor / its hardware threads)" {
		t.Errorf("estimate models %q", m)
	}
	old := &Report{Runs: []*Run{{E: &record.Energy{Estimate: true}}}}
	if l := old.attributionLegend(); len(l) != 0 || old.estimateModels() != "" {
		t.Errorf("records without attribution: %v %q", l, old.estimateModels())
	}
}

package power

import (
	"bytes"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
)

// The CPU-time columns round-trip on the rows that have them and read as
// missing on the others; the attribution method travels in the metadata.
func TestCPUTimeColumns(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Meta{Host: "h", IntervalNS: 50e6, Attribution: "cgroup:/sys/fs/cgroup/llem-run",
		Devices: []Device{{Device: "cpu-estimate", Source: "estimate", Scope: "cpu_estimate", Estimate: true,
			WattsPerCore: 7.5, WattsPerCoreSource: "tdp_table", CPUModel: "Some CPU"}}})
	if err != nil {
		t.Fatal(err)
	}
	w.Append(Sample{T: 1, Source: "estimate", Device: "cpu-estimate", EnergyJ: 1, RunCPUS: 0.25, MachineCPUS: 1.5, Has: HasEnergy | HasCPUTime})
	w.Append(Sample{T: 2, Source: "nvml", Device: "GPU-x", PowerW: 100, Has: HasPower})
	if err := w.Close(Trailer{}); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()), "mem")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := r.Meta().Attribution; got != "cgroup:/sys/fs/cgroup/llem-run" {
		t.Errorf("attribution = %q", got)
	}
	if d := r.Devices()[0]; d.WattsPerCore != 7.5 || d.WattsPerCoreSource != "tdp_table" || d.CPUModel != "Some CPU" {
		t.Errorf("estimate provenance lost: %+v", d)
	}
	if !r.Next() {
		t.Fatal(r.Err())
	}
	b := r.Batch()
	if b.RunCPU[0] != 0.25 || b.MachineCPU[0] != 1.5 || !b.RunCPUOK[0] || !b.MachineOK[0] {
		t.Errorf("row 0: run %v machine %v ok %v %v", b.RunCPU[0], b.MachineCPU[0], b.RunCPUOK[0], b.MachineOK[0])
	}
	if b.RunCPUOK[1] || b.MachineOK[1] {
		t.Error("a GPU row has CPU time")
	}
}

// A stream written before the CPU-time columns existed reads with every
// row's CPU time missing.
func TestCPUTimeColumnsAbsent(t *testing.T) {
	r, err := NewReader(bytes.NewReader(foreignStream(t, arrow.FixedWidthTypes.Timestamp_ms, MetaIntervalNS, "50000000")), "old")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Next() {
		t.Fatal(r.Err())
	}
	b := r.Batch()
	if b.RunCPU != nil || b.MachineCPU != nil || len(b.RunCPUOK) != b.N {
		t.Fatalf("old stream: run %v machine %v ok %v", b.RunCPU, b.MachineCPU, b.RunCPUOK)
	}
	for i, ok := range b.RunCPUOK {
		if ok || b.MachineOK[i] {
			t.Errorf("row %d has CPU time", i)
		}
	}
	if r.Meta().Attribution != "" {
		t.Error("old stream names an attribution")
	}
}

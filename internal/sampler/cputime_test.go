package sampler

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llem/llem/internal/power"
)

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWattsPerCore(t *testing.T) {
	for _, c := range []struct {
		conf  float64
		model string
		want  float64
		from  string
	}{
		{7, "AMD EPYC 7763 64-Core Processor", 7, WPCConfigured},
		{0, "AMD EPYC 7763 64-Core Processor", 280.0 / 128, WPCTDPTable},
		{0, "Intel(R) Xeon(R) Platinum 8480+", 350.0 / 112, WPCTDPTable},
		{0, "AMD EPYC", DefaultWattsPerCore, WPCDefault},
		{0, "", DefaultWattsPerCore, WPCDefault},
	} {
		w, from := WattsPerCore(c.conf, c.model)
		if w != c.want || from != c.from {
			t.Errorf("WattsPerCore(%v, %q) = %v %s, want %v %s", c.conf, c.model, w, from, c.want, c.from)
		}
	}
}

// fakeRun is a run whose CPU time grows by step each read.
type fakeRun struct{ s, step float64 }

func (f *fakeRun) CPUSeconds() (float64, error) { f.s += f.step; return f.s, nil }
func (f *fakeRun) Method() string               { return "cgroup:/fake" }
func (f *fakeRun) Close() error                 { return nil }

// With Options.Run, every estimate row carries the run's and the machine's
// CPU time, the stream names the method, and the estimate device says
// where its per-core figure came from.
func TestSessionCPUTime(t *testing.T) {
	proc := t.TempDir()
	writeFile(t, filepath.Join(proc, "stat"), "cpu  300 0 100 9000 50 0 0 0 0 0\n")
	clk := newFakeClock()
	var buf bytes.Buffer
	start := clk.Now()
	s, err := Start(Options{Interval: 10 * time.Millisecond, Sources: []string{"estimate"}, ProcRoot: proc,
		Run: &fakeRun{step: 0.5}, clock: clk}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	clk.drive(start, 50*time.Millisecond, func(int) time.Duration { return 0 })
	if _, err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	r, err := power.NewReader(bytes.NewReader(buf.Bytes()), "mem")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Meta().Attribution != "cgroup:/fake" {
		t.Errorf("attribution %q", r.Meta().Attribution)
	}
	if d := r.Devices()[0]; d.WattsPerCoreSource != WPCDefault || d.WattsPerCore != DefaultWattsPerCore {
		t.Errorf("estimate device %+v", d)
	}
	rows := 0
	for r.Next() {
		b := r.Batch()
		for i := 0; i < b.N; i++ {
			rows++
			runOK := b.RunCPUOK == nil || b.RunCPUOK[i]
			machOK := b.MachineOK == nil || b.MachineOK[i]
			if !runOK || !machOK || b.MachineCPU[i] != 4 || b.RunCPU[i] != 0.5*float64(rows) {
				t.Errorf("row %d: run %v machine %v", rows, b.RunCPU[i], b.MachineCPU[i])
			}
		}
	}
	if rows < 5 {
		t.Errorf("%d rows", rows)
	}
}

package sampler

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestOverhead measures the CPU time the sampler uses per second of
// sampling (the test process does nothing else meanwhile), writing to a
// real file. Run with:
//
//	LLEM_OVERHEAD_S=5 go test -run TestOverhead -v ./internal/sampler
func TestOverhead(t *testing.T) {
	secs, _ := strconv.ParseFloat(os.Getenv("LLEM_OVERHEAD_S"), 64)
	if secs <= 0 {
		t.Skip("set LLEM_OVERHEAD_S to run the overhead measurement")
	}
	raplRoot := fakeRAPL(t, 262143328850)
	cases := []struct {
		name string
		opts func() Options
	}{
		{"fake GPU x1 (nvml source)", func() Options {
			withFakeGPUs(t, &fakeGPU{uuid: "GPU-aaaa1111", powerW: []float64{100, 300}})
			return Options{Sources: []string{"nvml"}}
		}},
		{"fake GPU x8 (nvml source)", func() Options {
			var gs []*fakeGPU
			for i := 0; i < 8; i++ {
				gs = append(gs, &fakeGPU{uuid: fmt.Sprintf("GPU-%04d0000", i), powerW: []float64{100, 300}})
			}
			withFakeGPUs(t, gs...)
			return Options{Sources: []string{"nvml"}}
		}},
		{"rapl (sysfs tree, 4 domains)", func() Options { return Options{Sources: []string{"rapl"}, SysfsRoot: raplRoot} }},
		{"estimate (/proc/stat)", func() Options { return Options{Sources: []string{"estimate"}} }},
	}
	// The floor: a bare time.Ticker in this process, no reads, no writes.
	fmt.Printf("| source | interval | rows/s | CPU ms per s | %% of one core | late ticks |\n|---|---|---|---|---|---|\n")
	for _, iv := range []time.Duration{10 * time.Millisecond, time.Millisecond} {
		c0, w0 := cpuTime(), time.Now()
		tk := time.NewTicker(iv)
		for time.Since(w0) < time.Duration(secs*float64(time.Second)) {
			<-tk.C
		}
		tk.Stop()
		per := (cpuTime() - c0).Seconds() / time.Since(w0).Seconds()
		fmt.Printf("| bare Go ticker (floor, no sampling) | %s | - | %.2f | %.2f%% | - |\n", iv, per*1000, per*100)
	}
	for _, c := range cases {
		for _, iv := range []time.Duration{10 * time.Millisecond, time.Millisecond} {
			o := c.opts()
			o.Interval = iv
			f, err := os.Create(filepath.Join(t.TempDir(), "o.arrows"))
			if err != nil {
				t.Fatal(err)
			}
			c0, w0 := cpuTime(), time.Now()
			s, err := Start(o, f)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(secs * float64(time.Second)))
			st, err := s.Stop()
			cpu, wall := cpuTime()-c0, time.Since(w0)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			per := cpu.Seconds() / wall.Seconds()
			fmt.Printf("| %s | %s | %.0f | %.2f | %.2f%% | %d of %d |\n", c.name, iv, float64(st.Rows)/wall.Seconds(), per*1000, per*100, st.LateTicks, st.Ticks)
		}
	}
}

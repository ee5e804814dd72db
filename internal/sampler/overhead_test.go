package sampler

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOverhead measures the CPU time the sampler uses per second of
// sampling, writing to a real file; one op is one tick. The floor is a bare
// time.Ticker in this process, no reads, no writes. Besides the wall time
// per tick (ns/op), each case reports rows/s, the process's CPU ms per
// second of sampling (cpu-ms/s; 10 is 1 % of a core) and late ticks per
// 100 ticks. The process does nothing else meanwhile, so run it alone:
//
//	go test -run '^$' -bench Overhead -benchtime 5s ./internal/sampler
func BenchmarkOverhead(b *testing.B) {
	cases := []struct {
		name string
		opts func(b *testing.B) Options
	}{
		{"nvml-fake-gpu-x1", func(b *testing.B) Options {
			withFakeGPUs(b, &fakeGPU{uuid: "GPU-aaaa1111", powerW: []float64{100, 300}})
			return Options{Sources: []string{"nvml"}}
		}},
		{"nvml-fake-gpu-x8", func(b *testing.B) Options {
			var gs []*fakeGPU
			for i := 0; i < 8; i++ {
				gs = append(gs, &fakeGPU{uuid: fmt.Sprintf("GPU-%04d0000", i), powerW: []float64{100, 300}})
			}
			withFakeGPUs(b, gs...)
			return Options{Sources: []string{"nvml"}}
		}},
		{"rapl-sysfs-4-domains", func(b *testing.B) Options {
			return Options{Sources: []string{"rapl"}, SysfsRoot: fakeRAPL(b, 262143328850)}
		}},
		{"estimate-proc-stat", func(*testing.B) Options { return Options{Sources: []string{"estimate"}} }},
	}
	intervals := []time.Duration{10 * time.Millisecond, time.Millisecond}
	for _, iv := range intervals {
		b.Run("ticker-floor/"+iv.String(), func(b *testing.B) {
			c0, w0 := cpuTime(), time.Now()
			tk := time.NewTicker(iv)
			for i := 0; i < b.N; i++ {
				<-tk.C
			}
			tk.Stop()
			b.ReportMetric((cpuTime()-c0).Seconds()*1000/time.Since(w0).Seconds(), "cpu-ms/s")
		})
	}
	for _, c := range cases {
		for _, iv := range intervals {
			b.Run(c.name+"/"+iv.String(), func(b *testing.B) {
				o := c.opts(b)
				o.Interval = iv
				tc := newTickCounter()
				o.Custom = []Source{tc}
				f, err := os.Create(filepath.Join(b.TempDir(), "o.arrows"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				b.ResetTimer()
				c0, w0 := cpuTime(), time.Now()
				s, err := Start(o, f)
				if err != nil {
					b.Fatal(err)
				}
				tc.wait(b.N)
				st, err := s.Stop()
				cpu, wall := cpuTime()-c0, time.Since(w0)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(st.Rows)/wall.Seconds(), "rows/s")
				b.ReportMetric(cpu.Seconds()*1000/wall.Seconds(), "cpu-ms/s")
				b.ReportMetric(float64(st.LateTicks)*100/float64(st.Ticks), "late/100ticks")
			})
		}
	}
}

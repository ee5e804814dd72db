package aggregate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/llem/llem/internal/power"
)

// BenchmarkOpenArrow: rows/s of llem-aggregate's sample reader, decoding
// every batch of a 4-device stream into Rows.
//
//	go test -run XXX -bench OpenArrow -benchtime 3x ./internal/aggregate
func BenchmarkOpenArrow(b *testing.B) {
	const rows = 4_000_000
	path := filepath.Join(b.TempDir(), "big.arrows")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w, err := power.NewWriter(f, power.Meta{Host: "h", IntervalNS: 1e6})
	if err != nil {
		b.Fatal(err)
	}
	devs := []string{"GPU-aaaa", "GPU-bbbb", "package-0", "dram-0"}
	for i := 0; i < rows; i++ {
		w.Append(power.Sample{T: int64(i) * 1e6, Source: "nvml", Device: devs[i%4], PowerW: float64(i % 700), EnergyJ: float64(i), TempC: 40, Throttle: 4,
			Has: power.HasPower | power.HasEnergy | power.HasTemp | power.HasThrottle})
		if w.Buffered() == 1<<16 {
			w.Flush()
		}
	}
	if err := w.Close(power.Trailer{}); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		src, err := OpenArrow(path)
		if err != nil {
			b.Fatal(err)
		}
		var sum [8]float64
		for {
			r, err := src.Next()
			if err != nil {
				break
			}
			for i, d := range r.Dev {
				sum[d] += r.PowerW[i]
			}
		}
		src.Close()
		if sum[0] == 0 {
			b.Fatal("no rows")
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

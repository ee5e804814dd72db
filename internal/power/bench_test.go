package power

import (
	"os"
	"path/filepath"
	"testing"
)

// writeBig writes rows rows (4 devices, batches of 64k rows) to a file.
func writeBig(b *testing.B, rows int) string {
	path := filepath.Join(b.TempDir(), "big.arrows")
	f, _ := os.Create(path)
	w, err := NewWriter(f, meta)
	if err != nil {
		b.Fatal(err)
	}
	devs := []string{"GPU-aaaa", "GPU-bbbb", "package-0", "dram-0"}
	for i := 0; i < rows; i++ {
		w.Append(Sample{T: int64(i) * 1e6, Source: "nvml", Device: devs[i%4], PowerW: float64(i % 700), EnergyJ: float64(i), TempC: 40, Has: HasPower | HasEnergy | HasTemp})
		if w.Buffered() == 1<<16 {
			w.Flush()
		}
	}
	w.Close(Trailer{})
	f.Close()
	return path
}

// BenchmarkRead: rows/s of the columnar reader summing power per device.
//
//	go test -run XXX -bench . -benchtime 3x ./internal/power
func BenchmarkRead(b *testing.B) {
	const rows = 4_000_000
	path := writeBig(b, rows)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		r, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		var sum [8]float64
		for r.Next() {
			bt := r.Batch()
			for i := 0; i < bt.N; i++ {
				sum[bt.Dev[i]] += bt.PowerW[i]
			}
		}
		r.Close()
		if r.Err() != nil || sum[0] == 0 {
			b.Fatal(r.Err())
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkWrite(b *testing.B) {
	const rows = 1_000_000
	for n := 0; n < b.N; n++ {
		writeBig(b, rows)
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

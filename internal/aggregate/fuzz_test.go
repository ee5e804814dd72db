package aggregate

import (
	"bytes"
	"errors"
	"flag"
	"github.com/llem/llem/internal/fuzzguard"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/llem/llem/internal/power"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// arrowSeeds are sample streams as llem-sample writes them, whole, cut
// mid-batch and with time going backwards.
func arrowSeeds(tb testing.TB) map[string][]byte {
	write := func(n int, step int64) []byte {
		var buf bytes.Buffer
		w, err := power.NewWriter(&buf, power.Meta{Host: "h", IntervalNS: 50e6, Sources: []string{"nvml", "rapl"},
			Devices: []power.Device{{Device: "GPU-a", Source: "nvml", Scope: "gpu"}}})
		if err != nil {
			tb.Fatal(err)
		}
		for i := 0; i < n; i++ {
			ts := int64(1_700_000_000e9) + int64(i)*step
			w.Append(power.Sample{T: ts, Source: "nvml", Device: "GPU-a", PowerW: 100 + float64(i), EnergyJ: 5 * float64(i), TempC: 40, Has: power.HasPower | power.HasEnergy | power.HasTemp | power.HasThrottle})
			w.Append(power.Sample{T: ts + 1, Source: "rapl", Device: "package-0", PowerW: 20, Has: power.HasPower})
			if i%3 == 2 {
				w.Flush()
			}
		}
		w.Close(power.Trailer{Ticks: int64(n)})
		return buf.Bytes()
	}
	whole := write(7, 50e6)
	return map[string][]byte{
		"whole":     whole,
		"cut":       whole[:len(whole)*3/4],
		"backwards": write(5, -50e6),
	}
}

// FuzzArrowSource: llem-aggregate's reader of sample streams (a worker can
// write its run directory) gives batches or an error naming the file, never
// a panic, a hang or memory the file does not pay for.
func FuzzArrowSource(f *testing.F) {
	for _, b := range arrowSeeds(f) {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzguard.Start("FuzzArrowSource")()
		p := filepath.Join(dir, "s.arrows")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := OpenArrow(p)
		if err != nil {
			if !strings.HasPrefix(err.Error(), p+": ") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		defer src.Close()
		for {
			rows, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), p+": ") {
					t.Fatalf("error without the file name: %v", err)
				}
				break
			}
			for _, d := range rows.Dev {
				if d < 0 || int(d) >= len(src.Devices()) {
					t.Fatalf("device index %d of %d", d, len(src.Devices()))
				}
			}
		}
	})
}

// TestFuzzCorpus checks the committed seed corpus of FuzzArrowSource, and
// rewrites it with -update-corpus.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzArrowSource")
	if *updateCorpus {
		os.MkdirAll(dir, 0o755)
		for name, b := range arrowSeeds(t) {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) < 3 {
		t.Fatalf("seed corpus %s: %d files, %v", dir, len(ents), err)
	}
}

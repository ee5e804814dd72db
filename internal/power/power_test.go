package power

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"

	"github.com/llem/llem/internal/record"
)

// trace writes n ticks of two devices: a GPU whose power ramps 100..(100+n-1) W
// with a counter, and a RAPL package with no temperature.
func trace(t testing.TB, w *Writer, n int, flushEvery int) {
	t.Helper()
	e := 0.0
	for i := 0; i < n; i++ {
		ts := int64(1_700_000_000e9) + int64(i)*50e6
		p := 100 + float64(i)
		if i > 0 {
			e += (p - 0.5) * 0.05 // trapezoid of the ramp
		}
		w.Append(Sample{T: ts, Source: "nvml", Device: "GPU-aaaa", PowerW: p, EnergyJ: e, TempC: 40, UtilPct: 99,
			MemUsedBytes: 1 << 30, SMClockMHz: 1980, Throttle: 4, Has: HasPower | HasEnergy | HasTemp | HasUtil | HasMem | HasClock | HasThrottle})
		h := HasPower | HasEnergy
		if i == 3 {
			h = HasEnergy // a missed power reading is null
		}
		w.Append(Sample{T: ts + 1000, Source: "rapl", Device: "package-0", PowerW: 20, EnergyJ: float64(i), Has: h})
		if flushEvery > 0 && (i+1)%flushEvery == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

var meta = Meta{Host: "h1", IntervalNS: 50e6, PowerField: "instant", Sources: []string{"nvml", "rapl"}, StartNS: 1_700_000_000e9,
	Devices: []Device{{Device: "GPU-aaaa", Source: "nvml", Scope: record.ScopeGPU, GPU: &record.GPU{UUID: "GPU-aaaa", Name: "H100"}},
		{Device: "package-0", Source: "rapl", Scope: record.ScopeCPUPackage, WrapJ: 262143.328850}}}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.arrows")
	f, _ := os.Create(path)
	w, err := NewWriter(f, meta)
	if err != nil {
		t.Fatal(err)
	}
	trace(t, w, 100, 30)
	if err := w.Close(Trailer{Ticks: 100, LateTicks: 2, Warnings: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := r.Meta()
	if m.Host != "h1" || m.IntervalNS != 50e6 || m.PowerField != "instant" || len(m.Devices) != 2 || m.Devices[0].GPU.Name != "H100" || m.Devices[1].WrapJ != 262143.328850 {
		t.Fatalf("meta %+v", m)
	}
	rows, batches := 0, 0
	var gpuE float64
	for r.Next() {
		b := r.Batch()
		batches++
		for i := 0; i < b.N; i++ {
			j := rows + i
			dev := r.Devices()[b.Dev[i]].Device
			tick := j / 2
			if dev == "GPU-aaaa" {
				if b.PowerW[i] != 100+float64(tick) || b.SMClock[i] != 1980 || b.Throttle[i] != 4 {
					t.Fatalf("row %d: %v %v %v", j, b.PowerW[i], b.SMClock[i], b.Throttle[i])
				}
				gpuE = b.EnergyJ[i]
			} else {
				if ok := b.PowerOK == nil || b.PowerOK[i]; ok != (tick != 3) {
					t.Fatalf("row %d: power valid %v", j, ok)
				}
				if b.TempOK == nil || b.TempOK[i] {
					t.Fatalf("row %d: temp should be null", j)
				}
			}
		}
		rows += b.N
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if rows != 200 || batches != 4 {
		t.Fatalf("rows %d batches %d", rows, batches)
	}
	// ∫ ramp 100→199 W over 99 × 50 ms
	if want := (100.0 + 199) / 2 * 99 * 0.05; math.Abs(gpuE-want) > 1e-9 {
		t.Fatalf("energy %v want %v", gpuE, want)
	}
	tr := r.Trailer()
	if tr == nil || tr.Rows != 200 || tr.LateTicks != 2 || tr.Ticks != 100 || len(tr.Warnings) != 1 {
		t.Fatalf("trailer %+v", tr)
	}
}

// The stream is read by Arrow's own reader, which knows nothing of llem.
func TestArrowReaderReadsIt(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, meta)
	trace(t, w, 10, 0)
	w.Close(Trailer{})
	rd, err := ipc.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rd.Next() {
		rec := rd.Record()
		n += int(rec.NumRows())
		if rec.NumRows() > 0 {
			dev := rec.Column(2).(*array.String)
			if dev.Value(0) != "GPU-aaaa" || rec.Column(4).(*array.Float64).IsNull(0) {
				t.Fatalf("bad first row")
			}
		}
	}
	if rd.Err() != nil || n != 20 {
		t.Fatalf("n=%d err=%v", n, rd.Err())
	}
	if v, ok := rd.Schema().Metadata().GetValue("interval_ns"); !ok || v != "50000000" {
		t.Fatalf("interval_ns %q", v)
	}
}

// A stream cut inside a batch (the sampler died mid-write) reads back up to
// its last whole batch, without an error and without a trailer.
func TestTruncated(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, meta)
	trace(t, w, 10, 5)
	whole := buf.Len()
	trace(t, w, 5, 5)
	data := buf.Bytes()[:whole+(buf.Len()-whole)/2]
	r, err := NewReader(bytes.NewReader(data), "cut")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for r.Next() {
		rows += r.Batch().N
	}
	if r.Err() != nil || rows != 20 || !r.Truncated() || r.Trailer() != nil {
		t.Fatalf("rows %d err %v truncated %v", rows, r.Err(), r.Truncated())
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errors.New("no space left on device")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriteErrorSticky(t *testing.T) {
	w, err := NewWriter(&failAfter{n: 4000}, meta)
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	for i := 0; i < 50 && ferr == nil; i++ {
		trace(t, w, 1, 0)
		ferr = w.Flush()
	}
	if ferr == nil || w.Flush() == nil || w.Close(Trailer{}) == nil {
		t.Fatalf("error not sticky: %v", ferr)
	}
}

func TestMeanPower(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, meta)
	trace(t, w, 10, 4)
	w.Close(Trailer{})
	r, _ := NewReader(&buf, "b")
	m, err := MeanPower(r, int64(1_700_000_000e9), int64(1_700_000_000e9)+4*50e6)
	if err != nil {
		t.Fatal(err)
	}
	// GPU ticks 0..4: 100..104 W; package ticks 0..3 (tick 4 is 1 µs late), tick 3 null.
	if *m[0].PowerW != 102 || m[0].Samples != 5 || *m[1].PowerW != 20 || m[1].Samples != 3 {
		t.Fatalf("%+v %+v", m[0], m[1])
	}
}

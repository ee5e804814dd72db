package sampler

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

// fakeDev replays a scripted trace: power p(t) = base + slope×(seconds since
// its first read), and an energy counter that is the exact integral of it.
type fakeDev struct {
	name        string
	base, slope float64
	failAfter   int // reads before the device is lost (0 = never)
	reads       int
	t0          int64
	warn        func(string)
	lost        bool
}

func (f *fakeDev) Name() string           { return "fake" }
func (f *fakeDev) SetWarn(w func(string)) { f.warn = w }
func (f *fakeDev) Close() error           { return nil }
func (f *fakeDev) Devices() []DeviceInfo {
	return []DeviceInfo{{Device: f.name, Source: "nvml", Scope: record.ScopeGPU}}
}
func (f *fakeDev) Read(out []power.Sample) []power.Sample {
	if f.lost {
		return out
	}
	f.reads++
	if f.failAfter > 0 && f.reads > f.failAfter {
		f.lost = true
		f.warn(fmt.Sprintf("nvml: %s: GPU is lost; no longer sampled", f.name))
		return out
	}
	t := time.Now().UnixNano()
	if f.t0 == 0 {
		f.t0 = t
	}
	s := float64(t-f.t0) / 1e9
	return append(out, power.Sample{T: t, Source: "nvml", Device: f.name,
		PowerW: f.base + f.slope*s, EnergyJ: f.base*s + f.slope*s*s/2, Has: power.HasPower | power.HasEnergy})
}

func readAll(t *testing.T, path string) (map[string][][2]float64, *power.Reader) {
	t.Helper()
	r, err := power.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	got := map[string][][2]float64{}
	var lastT int64
	for r.Next() {
		b := r.Batch()
		for i := 0; i < b.N; i++ {
			d := r.Devices()[b.Dev[i]].Device
			e := math.NaN()
			if b.EnergyOK == nil || b.EnergyOK[i] {
				e = b.EnergyJ[i]
			}
			got[d] = append(got[d], [2]float64{b.PowerW[i], e})
			if b.T[i] < lastT-int64(time.Millisecond) {
				t.Fatalf("timestamps go back")
			}
			lastT = b.T[i]
		}
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	return got, r
}

func TestFakeTraceAndLostDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.arrows")
	f, _ := os.Create(path)
	defer f.Close()
	var mu sync.Mutex
	var warns []string
	warn := func(m string) { mu.Lock(); warns = append(warns, m); mu.Unlock() }
	a := &fakeDev{name: "GPU-a", base: 300, slope: 100}
	b := &fakeDev{name: "GPU-b", base: 60, failAfter: 5}
	s, err := Start(Options{Interval: 10 * time.Millisecond, Sources: []string{}, Custom: []Source{a, b}, Warn: warn, FlushEvery: 100 * time.Millisecond}, f)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	st, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	got, r := readAll(t, path)
	if len(got["GPU-b"]) != 5 {
		t.Fatalf("lost GPU rows %d, want 5", len(got["GPU-b"]))
	}
	na := len(got["GPU-a"])
	if na < 25 || int64(na) != st.Ticks {
		t.Fatalf("GPU-a rows %d ticks %d", na, st.Ticks)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "GPU-b: GPU is lost") {
		t.Fatalf("warnings %q", warns)
	}
	tr := r.Trailer()
	if tr == nil || tr.Rows != int64(na+5) || tr.Ticks != st.Ticks || len(tr.Warnings) != 1 {
		t.Fatalf("trailer %+v", tr)
	}
	// Counter and trapezoid integral of a linear ramp agree closely.
	sa := st.Summary[0]
	if sa.CounterJ == nil || sa.IntegralJ == nil || math.Abs(*sa.CounterJ-*sa.IntegralJ) > 1e-6**sa.CounterJ+1e-9 {
		t.Fatalf("summary %+v", sa)
	}
	if got["GPU-a"][0][1] != 0 {
		t.Fatalf("energy does not start at 0: %v", got["GPU-a"][0])
	}
}

// Ticks stay on start + k×interval: over 1 s at 20 ms the count is 50±2,
// however long each read takes (here 3 ms).
func TestNoDrift(t *testing.T) {
	slow := &slowSrc{d: 3 * time.Millisecond}
	var buf bytes.Buffer
	s, err := Start(Options{Interval: 20 * time.Millisecond, Sources: []string{}, Custom: []Source{slow}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	st, _ := s.Stop()
	if st.Ticks < 48 || st.Ticks > 52 {
		t.Fatalf("%d ticks in 1 s at 20 ms", st.Ticks)
	}
}

// A source slower than the interval makes late ticks, counted not hidden.
func TestLateTicks(t *testing.T) {
	slow := &slowSrc{d: 25 * time.Millisecond}
	var buf bytes.Buffer
	s, err := Start(Options{Interval: 10 * time.Millisecond, Sources: []string{}, Custom: []Source{slow}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	st, _ := s.Stop()
	if st.LateTicks < 20 {
		t.Fatalf("late ticks %d of %d", st.LateTicks, st.Ticks)
	}
	r, _ := power.NewReader(&buf, "buf")
	for r.Next() {
	}
	if r.Trailer() == nil || r.Trailer().LateTicks != st.LateTicks {
		t.Fatalf("trailer %+v", r.Trailer())
	}
}

type slowSrc struct{ d time.Duration }

func (s *slowSrc) Name() string { return "slow" }
func (s *slowSrc) Close() error { return nil }
func (s *slowSrc) Devices() []DeviceInfo {
	return []DeviceInfo{{Device: "slow", Source: "estimate", Estimate: true}}
}
func (s *slowSrc) Read(out []power.Sample) []power.Sample {
	time.Sleep(s.d)
	return append(out, power.Sample{T: time.Now().UnixNano(), Source: "estimate", Device: "slow"})
}

// A full disk stops sampling with a clear error; what was written reads back.
func TestFullDisk(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full")
	}
	defer f.Close()
	_, err = Start(Options{Interval: 10 * time.Millisecond, Sources: []string{}, Custom: []Source{&fakeDev{name: "GPU-a", base: 1}}}, f)
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("err %v", err)
	}
	// Disk fills mid-stream: a writer that takes 6 kB then fails with ENOSPC.
	lw := &limitWriter{n: 6000}
	s, err := Start(Options{Interval: 2 * time.Millisecond, Sources: []string{}, FlushEvery: 20 * time.Millisecond, Custom: []Source{&fakeDev{name: "GPU-a", base: 1}}}, lw)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("sampling did not stop on a full disk")
	}
	_, err = s.Stop()
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v", err)
	}
	r, err := power.NewReader(bytes.NewReader(lw.buf.Bytes()), "partial")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r.Next() {
		n += r.Batch().N
	}
	if r.Err() != nil || n == 0 {
		t.Fatalf("partial stream: %d rows, %v", n, r.Err())
	}
}

type limitWriter struct {
	buf bytes.Buffer
	n   int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.buf.Len()+len(p) > l.n {
		k := l.n - l.buf.Len()
		l.buf.Write(p[:k])
		return k, fmt.Errorf("write /out/s.arrows: no space left on device")
	}
	return l.buf.Write(p)
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []Options{{Interval: time.Microsecond}, {Sources: []string{"ipmi"}}, {Sources: []string{"rapl"}, SysfsRoot: t.TempDir()}} {
		if _, err := Start(o, &bytes.Buffer{}); err == nil {
			t.Fatalf("%+v: no error", o)
		}
	}
}

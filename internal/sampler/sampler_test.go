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
	tc := newTickCounter()
	s, err := Start(Options{Interval: 10 * time.Millisecond, Sources: []string{}, Custom: []Source{a, b, tc}, Warn: warn, FlushEvery: 100 * time.Millisecond}, f)
	if err != nil {
		t.Fatal(err)
	}
	tc.wait(25)
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
		t.Fatalf("summary %+v counter %v integral %v", sa, *sa.CounterJ, *sa.IntegralJ)
	}
	if got["GPU-a"][0][1] != 0 {
		t.Fatalf("energy does not start at 0: %v", got["GPU-a"][0])
	}
}

// tickCounter is a source without devices that counts the sampler's ticks,
// so that a test waits for the n-th tick (an event) rather than for a time.
// It is the last source of a session: when tick n reaches it, every other
// source has been read n times.
type tickCounter struct {
	mu    sync.Mutex
	n     int
	waits map[int][]chan struct{}
	hooks map[int]func()
}

func newTickCounter() *tickCounter {
	return &tickCounter{waits: map[int][]chan struct{}{}, hooks: map[int]func(){}}
}

// at runs fn inside the sampler's loop at tick n, before tick n+1 reads any
// source: a change made there (a fake sysfs file rewritten) can never be
// read half-written.
func (c *tickCounter) at(n int, fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hooks[n] = fn
}

func (c *tickCounter) Name() string          { return "ticks" }
func (c *tickCounter) Close() error          { return nil }
func (c *tickCounter) Devices() []DeviceInfo { return nil }
func (c *tickCounter) Read(out []power.Sample) []power.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if fn := c.hooks[c.n]; fn != nil {
		fn()
	}
	for k, chs := range c.waits {
		if k <= c.n {
			for _, ch := range chs {
				close(ch)
			}
			delete(c.waits, k)
		}
	}
	return out
}

// wait returns once the sampler has ticked n times in all.
func (c *tickCounter) wait(n int) {
	c.mu.Lock()
	if c.n >= n {
		c.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	c.waits[n] = append(c.waits[n], ch)
	c.mu.Unlock()
	<-ch
}

// fakeClock is a clock the test drives: each time the sampler waits for a
// deadline, the deadline arrives on waiting and the sampler sleeps until
// the test sets the time and sends on wake. Nothing depends on the machine's
// scheduler, so the checks on the schedule are exact.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiting chan time.Time
	wake    chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), waiting: make(chan time.Time), wake: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// WaitUntil hands every wait to the test, even for a deadline already past,
// so that the test sees every tick.
func (c *fakeClock) WaitUntil(t time.Time, stop <-chan struct{}) bool {
	select {
	case c.waiting <- t:
	case <-stop:
		return false
	}
	select {
	case <-c.wake:
		return true
	case <-stop:
		return false
	}
}

// drive runs the sampler's ticks for the deadlines in [start, start+span)
// (the first, at the start, is read without a wait): each wake-up comes at
// the deadline (or now, if that is later) plus lateness(k) for the k-th
// wait. It returns the deadlines asked for, the first one at or past the
// span included.
func (c *fakeClock) drive(start time.Time, span time.Duration, lateness func(k int) time.Duration) []time.Duration {
	var asked []time.Duration
	for k := 0; ; k++ {
		dl := <-c.waiting
		asked = append(asked, dl.Sub(start))
		if dl.Sub(start) >= span {
			return asked
		}
		c.mu.Lock()
		if c.now.Before(dl) {
			c.now = dl
		}
		c.now = c.now.Add(lateness(k))
		c.mu.Unlock()
		c.wake <- struct{}{}
	}
}

// slowSrc is a source whose read takes d on the fake clock.
type slowSrc struct {
	d   time.Duration
	clk *fakeClock
}

func (s *slowSrc) Name() string { return "slow" }
func (s *slowSrc) Close() error { return nil }
func (s *slowSrc) Devices() []DeviceInfo {
	return []DeviceInfo{{Device: "slow", Source: "estimate", Estimate: true}}
}
func (s *slowSrc) Read(out []power.Sample) []power.Sample {
	s.clk.advance(s.d)
	return append(out, power.Sample{T: time.Now().UnixNano(), Source: "estimate", Device: "slow"})
}

// Ticks stay on start + k×interval, however late each wake-up comes and
// however long each read takes: with wake-ups up to 5 ms late and 3 ms
// reads at 20 ms, every deadline asked for is a whole number of intervals
// after the start, and 1 s holds exactly 50 ticks, none late. A schedule
// that counted from each read (now + interval) would drift by 3-8 ms a tick
// and fit about 40.
func TestNoDrift(t *testing.T) {
	clk := newFakeClock()
	slow := &slowSrc{d: 3 * time.Millisecond, clk: clk}
	var buf bytes.Buffer
	iv := 20 * time.Millisecond
	start := clk.Now()
	s, err := Start(Options{Interval: iv, Sources: []string{}, Custom: []Source{slow}, clock: clk}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	asked := clk.drive(start, time.Second, func(k int) time.Duration { return time.Duration(k*7919%6) * time.Millisecond })
	st, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	for k, d := range asked {
		if d != time.Duration(k+1)*iv {
			t.Fatalf("deadline %d is start + %s, want %s (asked: %v)", k+1, d, time.Duration(k+1)*iv, asked)
		}
	}
	if st.Ticks != 50 || st.LateTicks != 0 {
		t.Fatalf("%d ticks (%d late) in 1 s at 20 ms, want 50 and none late", st.Ticks, st.LateTicks)
	}
}

// A source slower than the interval makes late ticks, counted not hidden:
// at 10 ms with 25 ms reads, each of the 50 deadlines in 500 ms is either
// read (one every 25 ms: 20) or skipped and counted late (30). A wake-up
// more than an interval after its deadline is late too, though read.
func TestLateTicks(t *testing.T) {
	clk := newFakeClock()
	slow := &slowSrc{d: 25 * time.Millisecond, clk: clk}
	var buf bytes.Buffer
	start := clk.Now()
	s, err := Start(Options{Interval: 10 * time.Millisecond, Sources: []string{}, Custom: []Source{slow}, clock: clk}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	clk.drive(start, 500*time.Millisecond, func(int) time.Duration { return 0 })
	st, _ := s.Stop()
	if st.Ticks != 20 || st.LateTicks != 30 {
		t.Fatalf("%d ticks, %d late; want 20 read and 30 skipped", st.Ticks, st.LateTicks)
	}
	r, _ := power.NewReader(&buf, "buf")
	for r.Next() {
	}
	if r.Trailer() == nil || r.Trailer().LateTicks != st.LateTicks {
		t.Fatalf("trailer %+v", r.Trailer())
	}

	// Quick reads (1 ms), but the 4th wake-up (deadline 40 ms) comes 15 ms
	// late at 10 ms: that tick is read and late; the next deadline, already
	// past, is read at once, and the schedule goes on from the start.
	clk = newFakeClock()
	start = clk.Now()
	s, err = Start(Options{Interval: 10 * time.Millisecond, Sources: []string{}, Custom: []Source{&slowSrc{d: time.Millisecond, clk: clk}}, clock: clk}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	asked := clk.drive(start, 100*time.Millisecond, func(k int) time.Duration {
		if k == 3 {
			return 15 * time.Millisecond
		}
		return 0
	})
	st, _ = s.Stop()
	if st.Ticks != 10 || st.LateTicks != 1 || len(asked) != 10 || asked[9] != 100*time.Millisecond {
		t.Fatalf("%d ticks, %d late, deadlines %v; want 10 ticks, 1 late, deadlines every 10 ms", st.Ticks, st.LateTicks, asked)
	}
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
	case <-time.After(5 * time.Minute): // a hang, not a slow machine
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

// A session stopped at once still has its first tick, read at the start.
func TestStopAtOnce(t *testing.T) {
	var buf bytes.Buffer
	s, err := Start(Options{Interval: time.Hour, Sources: []string{}, Custom: []Source{&fakeDev{name: "GPU-a", base: 1}}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stop()
	if err != nil || st.Ticks != 1 || st.Rows != 1 {
		t.Fatalf("stopped at once: %d ticks, %d rows (%v); want the first tick", st.Ticks, st.Rows, err)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []Options{{Interval: time.Microsecond}, {Sources: []string{"ipmi"}}, {Sources: []string{"rapl"}, SysfsRoot: t.TempDir()}} {
		if _, err := Start(o, &bytes.Buffer{}); err == nil {
			t.Fatalf("%+v: no error", o)
		}
	}
}

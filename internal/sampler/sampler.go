// Package sampler samples power and telemetry from NVML (GPUs), RAPL
// (CPU package, core, uncore, DRAM over the powercap sysfs tree) and, where
// neither exists, a labelled estimate from CPU time, and writes one row per
// device per tick to an Arrow IPC stream (internal/power).
//
//	s, err := sampler.Start(sampler.Options{Interval: 50 * time.Millisecond}, f)
//	... run the workload ...
//	stats, err := s.Stop() // last batch, end-of-stream, trailer with late ticks
//
// Ticks fall on start + k×interval (no drift); a row's timestamp is taken at
// its read. A tick read more than one interval after its deadline, or
// skipped because the sampler fell behind, is a late tick: counted in
// Stats and the stream's trailer, never hidden. Rows are flushed as a record
// batch at least every second, so a crash loses at most one second.
package sampler

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/llem/llem/internal/cpuattr"
	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

// Options configures a sampling session. Zero values take the defaults.
type Options struct {
	Interval     time.Duration // default 50ms, min 1ms
	Sources      []string      // "auto" (default) or any of nvml, rapl, estimate
	GPUs         []string      // indices or UUIDs; empty = all visible (honours CUDA_VISIBLE_DEVICES)
	NoGPUs       bool          // sample no GPU (a run that uses none); under auto the CPU sources decide
	SysfsRoot    string        // default /sys (RAPL powercap tree)
	ProcRoot     string        // default /proc (estimate)
	EstimatePIDs func() []int  // estimate a process tree's CPU power instead of the machine's
	WattsPerCore float64       // estimate: W per busy core; 0: the CPU model's TDP / threads, else DefaultWattsPerCore
	// Run, when set, is read once a tick into the run_cpu_s column of the
	// CPU sources' rows, beside the machine's busy CPU time (machine_cpu_s),
	// so that CPU energy can be attributed to the run. The session closes it.
	Run        RunCPU
	Host       string // default os.Hostname
	Warn       func(msg string)
	FlushEvery time.Duration // default 1s
	// Custom sources are sampled in addition to Sources (tests: scripted
	// fake devices). One with a SetWarn(func(string)) method gets the
	// session's once-only warning function.
	Custom []Source
	// clock schedules the ticks; nil is the real clock. Tests set a fake one
	// so that what they check about the schedule does not depend on how
	// busy the machine is.
	clock clock
}

// clock is the time the sampling loop schedules by.
type clock interface {
	Now() time.Time
	// WaitUntil blocks until t or until stop is closed (false).
	WaitUntil(t time.Time, stop <-chan struct{}) bool
}

// realClock waits on one timer for the whole session: a new one per tick is
// garbage at 1 kHz.
type realClock struct{ tm *time.Timer }

func (c *realClock) Now() time.Time { return time.Now() }

func (c *realClock) WaitUntil(t time.Time, stop <-chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	if c.tm == nil {
		c.tm = time.NewTimer(d)
	} else {
		c.tm.Reset(d)
	}
	select {
	case <-stop:
		c.tm.Stop()
		return false
	case <-c.tm.C:
		return true
	}
}

// Stats is what a session did.
type Stats struct {
	Rows, Ticks, LateTicks int64
	Devices                []DeviceInfo
	Sources                []string
	Warnings               []string
	Summary                []DeviceSummary
}

// DeviceSummary is one device's energy over the whole session.
type DeviceSummary struct {
	Device     DeviceInfo
	Samples    int64
	DurationS  float64
	CounterJ   *float64 // last energy_j − first; nil without a counter
	IntegralJ  *float64 // trapezoid of power_w; nil with fewer than 2 power readings
	MeanPowerW *float64 // IntegralJ / span of the power readings
	// RunJ is the run's share of the counter's energy (Options.Run): each
	// interval's energy × the run's share of the machine's busy CPU time.
	RunJ *float64
}

const minInterval = time.Millisecond

func (o *Options) defaults() error {
	if o.Interval == 0 {
		o.Interval = 50 * time.Millisecond
	}
	if o.Interval < minInterval {
		return fmt.Errorf("interval %s is below the minimum of 1ms", o.Interval)
	}
	if len(o.Sources) == 0 {
		o.Sources = []string{"auto"}
	}
	for _, s := range o.Sources {
		switch s {
		case "auto", "nvml", "rapl", "estimate":
		default:
			return fmt.Errorf("unknown source %q (want auto, nvml, rapl or estimate)", s)
		}
	}
	if o.SysfsRoot == "" {
		o.SysfsRoot = "/sys"
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.FlushEvery <= 0 || o.FlushEvery > time.Second {
		o.FlushEvery = time.Second
	}
	return nil
}

// warner reports each distinct warning once.
type warner struct {
	mu   sync.Mutex
	seen map[string]bool
	list []string
	fn   func(string)
}

func (w *warner) warn(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[msg] {
		return
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	w.seen[msg] = true
	w.list = append(w.list, msg)
	if w.fn != nil {
		w.fn(msg)
	}
}

func (w *warner) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.list...)
}

// openSources opens what opts asks for. An explicitly named source that is
// not available is an error; under auto it is skipped, and the estimate is
// used only when neither NVML nor RAPL is.
func openSources(o *Options, w *warner) (srcs []Source, host *record.Host, powerField string, err error) {
	want := map[string]bool{}
	auto := false
	for _, s := range o.Sources {
		if s == "auto" {
			auto = true
		} else {
			want[s] = true
		}
	}
	host = hostFacts(o)
	fail := func(e error) ([]Source, *record.Host, string, error) {
		for _, s := range srcs {
			s.Close()
		}
		return nil, nil, "", e
	}
	if (auto || want["nvml"]) && !o.NoGPUs {
		g, pf, err := openNVML(o, w, host)
		switch {
		case err == nil:
			srcs = append(srcs, g)
			powerField = pf
		case want["nvml"]:
			return fail(fmt.Errorf("nvml: %w", err))
		case !errors.Is(err, ErrNoNVML):
			w.warn(fmt.Sprintf("nvml: %v; GPUs not sampled", err))
		}
	}
	if auto || want["rapl"] {
		r, err := newRAPL(o.SysfsRoot, w.warn)
		switch {
		case err == nil:
			srcs = append(srcs, r)
		case want["rapl"]:
			return fail(fmt.Errorf("rapl: %w under %s", err, o.SysfsRoot))
		}
	}
	if want["estimate"] || (auto && len(srcs) == 0 && len(o.Custom) == 0) {
		e, err := newEstimate(o.ProcRoot, o.EstimatePIDs, o.WattsPerCore, host.CPUModel, w.warn)
		if err != nil {
			return fail(err)
		}
		srcs = append(srcs, e)
	}
	for _, c := range o.Custom {
		if ws, ok := c.(interface{ SetWarn(func(string)) }); ok {
			ws.SetWarn(w.warn)
		}
		srcs = append(srcs, c)
	}
	if len(srcs) == 0 && o.NoGPUs {
		return fail(fmt.Errorf("no source to sample: nothing but GPUs asked for (%s) and this run uses no GPU", strings.Join(o.Sources, ",")))
	}
	if len(srcs) == 0 {
		return fail(fmt.Errorf("no source to sample (asked for %s)", strings.Join(o.Sources, ",")))
	}
	return srcs, host, powerField, nil
}

// Probe returns what a session with opts would sample and the host's
// identity (GPU names, UUIDs, memory, power limit, persistence mode; driver,
// CUDA and NVML versions), without sampling.
func Probe(opts Options) ([]DeviceInfo, *record.Host, error) {
	if err := opts.defaults(); err != nil {
		return nil, nil, err
	}
	w := &warner{fn: opts.Warn}
	srcs, host, _, err := openSources(&opts, w)
	if err != nil {
		return nil, nil, err
	}
	var devs []DeviceInfo
	for _, s := range srcs {
		devs = append(devs, s.Devices()...)
		s.Close()
	}
	for _, d := range devs {
		if d.GPU != nil {
			host.GPUs = append(host.GPUs, *d.GPU)
		}
	}
	return devs, host, nil
}

func hostFacts(o *Options) *record.Host {
	h := record.HostFacts(o.ProcRoot)
	h.Hostname, h.GPUs = o.Host, []record.GPU{}
	return &h
}

// Session is a running sampler.
type Session struct {
	opts    Options
	clk     clock
	srcs    []Source
	w       *power.Writer
	warn    *warner
	devs    []DeviceInfo
	names   []string
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	err     error // write error that stopped sampling
	ticks   int64
	late    int64
	acc     map[string]*devAcc
	stopped bool
	machine *machineCPU // with opts.Run: the machine's busy CPU time
}

type devAcc struct {
	n               int64
	t0, t1          int64
	e0, e1          float64
	haveE           bool
	pT              int64 // last power reading: time (ns) and value
	pW              float64
	havePrevP       bool
	integral        float64
	firstPT, lastPT int64
	powerN          int64
	// the run's share (rows with CPU time)
	cpuE, cpuR, cpuM float64
	carry            float64
	haveCPU          bool
	runJ             float64
}

// Start opens the sources, writes the stream's schema to out and samples
// until Stop. out is written from the sampling goroutine only.
func Start(opts Options, out io.Writer) (*Session, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	w := &warner{fn: opts.Warn}
	srcs, host, pf, err := openSources(&opts, w)
	if err != nil {
		return nil, err
	}
	s := &Session{opts: opts, clk: opts.clock, srcs: srcs, warn: w, stop: make(chan struct{}), done: make(chan struct{}), acc: map[string]*devAcc{}}
	attribution := ""
	if opts.Run != nil {
		s.machine, attribution = newMachineCPU(opts.ProcRoot), opts.Run.Method()
	}
	if s.clk == nil {
		s.clk = &realClock{}
	}
	est := false
	for _, src := range srcs {
		s.names = append(s.names, src.Name())
		for _, d := range src.Devices() {
			s.devs = append(s.devs, d)
			est = est || d.Estimate
		}
	}
	for _, d := range s.devs {
		if d.GPU != nil {
			host.GPUs = append(host.GPUs, *d.GPU)
		}
	}
	s.start = s.clk.Now()
	s.w, err = power.NewWriter(out, power.Meta{
		Host: opts.Host, SamplerVersion: power.SamplerVersion, IntervalNS: int64(opts.Interval), PowerField: pf,
		Devices: s.devs, Sources: s.names, Estimate: est, StartNS: s.start.UnixNano(), HostInfo: host,
		Attribution: attribution,
	})
	if err != nil {
		s.closeSources()
		return nil, outputError(err)
	}
	go s.loop()
	return s, nil
}

// Done is closed when sampling ends: after Stop, or when the output failed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns the output error that stopped sampling, if any.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

func (s *Session) closeSources() {
	for _, src := range s.srcs {
		src.Close()
	}
	if s.opts.Run != nil {
		s.opts.Run.Close()
		s.machine.close()
	}
}

// cpuTime puts the run's and the machine's busy CPU time, read once for
// the tick, on the tick's rows of CPU sources. A failed read leaves them
// null (with a warning): the aggregate then holds the last share.
func (s *Session) cpuTime(rows []power.Sample) {
	if s.opts.Run == nil {
		return
	}
	m, err := s.machine.seconds()
	if err != nil {
		s.warn.warn(fmt.Sprintf("machine CPU time: %v; CPU energy of these ticks cannot be attributed", err))
		return
	}
	r, err := s.opts.Run.CPUSeconds()
	if err != nil {
		s.warn.warn(fmt.Sprintf("run CPU time (%s): %v; CPU energy of these ticks cannot be attributed", s.opts.Run.Method(), err))
		return
	}
	for i := range rows {
		if src := rows[i].Source; src == "rapl" || src == "estimate" {
			rows[i].RunCPUS, rows[i].MachineCPUS = r, m
			rows[i].Has |= power.HasCPUTime
		}
	}
}

func (s *Session) loop() {
	defer close(s.done)
	iv := s.opts.Interval
	lastFlush := s.start
	buf := make([]power.Sample, 0, 16)
	for k := int64(0); ; {
		deadline := s.start.Add(time.Duration(k) * iv)
		// The first tick is read whatever comes: a session stopped at once
		// still has the sample of its start.
		if k > 0 && !s.clk.WaitUntil(deadline, s.stop) {
			return
		}
		woke := s.clk.Now()
		if woke.Sub(deadline) > iv {
			s.late++
		}
		buf = buf[:0]
		for _, src := range s.srcs {
			buf = src.Read(buf)
		}
		s.cpuTime(buf)
		s.ticks++
		for i := range buf {
			s.w.Append(buf[i])
			s.account(&buf[i])
		}
		now := s.clk.Now()
		if now.Sub(lastFlush) >= s.opts.FlushEvery {
			if err := s.w.Flush(); err != nil {
				s.err = outputError(err)
				return
			}
			lastFlush = now
		}
		// Next deadline; ticks already past by a whole interval are skipped
		// and counted late.
		next := k + 1
		if behind := int64(now.Sub(s.start) / iv); behind > next {
			s.late += behind - next
			next = behind
		}
		k = next
	}
}

func outputError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "broken pipe"):
		return fmt.Errorf("output closed by its reader (broken pipe); sampling stopped: %w", err)
	case strings.Contains(msg, "no space left"):
		return fmt.Errorf("output disk full; sampling stopped, the stream holds the batches written before: %w", err)
	}
	return fmt.Errorf("sampling stopped: %w", err)
}

func (s *Session) account(p *power.Sample) {
	a := s.acc[p.Device]
	if a == nil {
		a = &devAcc{t0: p.T}
		s.acc[p.Device] = a
	}
	a.n++
	a.t1 = p.T
	if p.Has&power.HasEnergy != 0 {
		if !a.haveE {
			a.e0, a.haveE = p.EnergyJ, true
		}
		a.e1 = p.EnergyJ
		if p.Has&power.HasCPUTime != 0 {
			if a.haveCPU {
				var share float64
				share, a.carry = cpuattr.Share(p.RunCPUS-a.cpuR, p.MachineCPUS-a.cpuM, a.carry)
				a.runJ += (p.EnergyJ - a.cpuE) * share
			}
			a.cpuE, a.cpuR, a.cpuM, a.haveCPU = p.EnergyJ, p.RunCPUS, p.MachineCPUS, true
		}
	}
	if p.Has&power.HasPower != 0 {
		if a.havePrevP {
			// The step from int64 nanoseconds: seconds since 1970 as a
			// float64 keep only about 0.2 µs, an error that adds up.
			a.integral += float64(p.T-a.pT) / 1e9 * (p.PowerW + a.pW) / 2
		} else {
			a.firstPT = p.T
		}
		a.pT, a.pW, a.havePrevP = p.T, p.PowerW, true
		a.lastPT = p.T
		a.powerN++
	}
}

// Stop ends sampling, writes the last batch, the end-of-stream marker and
// the trailer, and closes the sources (not out). Its error is the output
// error that stopped sampling early, if any; Stats are valid either way.
func (s *Session) Stop() (Stats, error) {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	if s.stopped {
		return s.stats(), s.err
	}
	s.stopped = true
	s.closeSources()
	tr := power.Trailer{Ticks: s.ticks, LateTicks: s.late, EndNS: s.clk.Now().UnixNano(), Warnings: s.warn.all()}
	if s.err != nil {
		tr.Error = s.err.Error()
	} else if err := s.w.Close(tr); err != nil {
		s.err = outputError(err)
	}
	return s.stats(), s.err
}

func (s *Session) stats() Stats {
	st := Stats{Rows: s.w.Rows(), Ticks: s.ticks, LateTicks: s.late, Devices: s.devs, Sources: s.names, Warnings: s.warn.all()}
	if st.Warnings == nil {
		st.Warnings = []string{}
	}
	for _, d := range s.devs {
		a := s.acc[d.Device]
		ds := DeviceSummary{Device: d}
		if a != nil {
			ds.Samples = a.n
			ds.DurationS = float64(a.t1-a.t0) / 1e9
			if a.haveE {
				v := a.e1 - a.e0
				ds.CounterJ = &v
			}
			if a.haveCPU {
				v := a.runJ
				ds.RunJ = &v
			}
			if a.powerN >= 2 {
				v := a.integral
				ds.IntegralJ = &v
				if span := float64(a.lastPT-a.firstPT) / 1e9; span > 0 {
					m := v / span
					ds.MeanPowerW = &m
				}
			}
		}
		st.Summary = append(st.Summary, ds)
	}
	return st
}

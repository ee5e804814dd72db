package aggregate

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/stats"
)

// Options are the thresholds of the validity flags and of the attribution.
type Options struct {
	GapThreshold float64 // counter vs integral relative gap above which to flag (0.05)
	MinSamples   int     // fewer readings than this in a window are flagged (10)
	MinPeriods   float64 // a window shorter than this many sensor update periods is flagged (5)
	DriftC       float64 // temperature change over the measure window that is flagged, °C (10)
	CVThreshold  float64 // summary: coefficient of variation above which to flag (0.05)
	GridMax      int     // most attribution intervals per run (20000)
	// BaselineMaxAgeS: a baseline further than this from its run (seconds
	// between the two, either way) is flagged stale; 0 means the default.
	BaselineMaxAgeS float64
	// Serving runs' flags; 0 takes the default (serving.go).
	LagThresholdS     float64 // generator_lagged: send lag p99 above this, seconds (0.010)
	ErrorThreshold    float64 // request_errors: failed fraction of the window's requests above this (0.01)
	SaturationRatio   float64 // saturated: achieved rate below this × offered (0.95)
	TTFTTrendRatio    float64 // saturated: last quarter's median TTFT above this × the first quarter's (2)
	MinWindowRequests float64 // window_too_short: fewer requests expected in the window (20)
	MinWindowE2E      float64 // window_too_short: window shorter than this many mean E2E latencies (3)
	// Attribution of CPU energy where the stream carries the run's CPU
	// time: AttributionProcess ("" too) or AttributionMachine.
	Attribution string
}

// DefaultBaselineMaxAgeS is twice llem-exec's default baseline TTL (1 h): a
// run may start up to a TTL after its baseline and last a while.
const DefaultBaselineMaxAgeS = 7200

// DefaultOptions are the thresholds llem-aggregate uses unless told otherwise.
func DefaultOptions() Options {
	return Options{GapThreshold: 0.05, MinSamples: 10, MinPeriods: 5, DriftC: 10, CVThreshold: 0.05, GridMax: 20000,
		LagThresholdS: DefaultLagThresholdS, ErrorThreshold: DefaultErrorThreshold, SaturationRatio: DefaultSaturationRatio,
		TTFTTrendRatio: DefaultTTFTTrendRatio, MinWindowRequests: DefaultMinWindowRequests, MinWindowE2E: DefaultMinWindowE2E}
}

// Flag codes of energy and summary records.
const (
	FlagRunNotOK        = "run_not_ok"
	FlagNoSamples       = "no_samples"
	FlagShortWindow     = "short_window"
	FlagFewSamples      = "few_samples"
	FlagCounterGap      = "counter_integral_gap"
	FlagThermalDrift    = "thermal_drift"
	FlagThrottling      = "throttling"
	FlagPersistenceOff  = "persistence_mode_off"
	FlagOtherProcesses  = "other_processes_on_gpu"
	FlagEstimate        = "estimate_source"
	FlagEdgeMissing     = "edge_samples_missing"
	FlagSampleGap       = "sample_gap"
	FlagCounterWrapped  = "counter_wrapped"
	FlagUnordered       = "unordered_samples"
	FlagNoBaseline      = "no_baseline"
	FlagNoMeasureWindow = "no_measure_window"
	FlagNoRequestEvents = "no_request_events"
	FlagHighCV          = "high_cv"
	FlagFewCycles       = "few_cycles"
	FlagSomeRunsNotOK   = "some_runs_not_ok"
	FlagMixedBasis      = "mixed_basis"
	FlagRunsFlagged     = "runs_flagged"
	FlagCounterRejected = "counter_rejected"
	FlagDuplicates      = "duplicate_samples"
	FlagTimestampAhead  = "timestamp_ahead"
	FlagNetClamped      = "net_clamped"
	// Baselines that cannot serve the run as they are.
	FlagBaselineOtherHost   = "baseline_other_host"
	FlagBaselineStale       = "baseline_stale"
	FlagBaselineOtherDevice = "baseline_other_device"
	FlagBaselinePartial     = "baseline_partial"
	FlagBaselineNoIdle      = "baseline_no_idle_power"
	defaultSensorPeriodS    = 0.1 // NVML's energy counter and power update about every 100 ms
)

// FlagCodes lists every flag code llem-aggregate raises, energy and summary
// records alike, so that llem-report can be checked to explain each one.
func FlagCodes() []string {
	return []string{FlagRunNotOK, FlagNoSamples, FlagShortWindow, FlagFewSamples, FlagCounterGap, FlagThermalDrift,
		FlagThrottling, FlagPersistenceOff, FlagOtherProcesses, FlagEstimate, FlagEdgeMissing, FlagSampleGap,
		FlagCounterWrapped, FlagUnordered, FlagNoBaseline, FlagNoMeasureWindow, FlagNoRequestEvents, FlagHighCV,
		FlagFewCycles, FlagSomeRunsNotOK, FlagMixedBasis, FlagRunsFlagged, FlagCounterRejected, FlagDuplicates,
		FlagTimestampAhead, FlagNetClamped, FlagBaselineOtherHost, FlagBaselineStale, FlagBaselineOtherDevice,
		FlagBaselinePartial, FlagBaselineNoIdle, FlagBadEvents, FlagSamplesTruncated,
		FlagBadRequests, FlagGeneratorLagged, FlagSaturated, FlagRequestErrors, FlagWindowTooShort}
}

// RunInput is everything Compute needs for one run.
type RunInput struct {
	Run      *record.Run
	Baseline *record.Baseline // nil: no idle adjustment
	Source   Source           // nil when the sample stream could not be opened
	// SourceErr says why Source is nil.
	SourceErr error
	// Requests are the measured requests from the run's events; nil when unknown.
	Requests []record.RequestEvent
	// Model facts from the events when the run record has none.
	Model *record.ModelFacts
	// Serving holds a serving run's requests (nil: a batch run).
	Serving *ServingInput
}

// RunResult is the energy record of one run and its per-request attribution.
type RunResult struct {
	Energy   *record.Energy
	Requests []RequestEnergy // nil when no attribution was possible
}

type phaseWin struct {
	name string
	w    record.Window
}

// Compute turns one run and its samples into its energy record.
func Compute(in RunInput, opt Options) (*RunResult, error) {
	run := in.Run
	e := newEnergy(run)
	res := &RunResult{Energy: e}
	flag := func(f record.Flag) { e.Flags = append(e.Flags, f) }
	wins, measure := phaseWindows(run, flag)

	intervalNS := int64(0)
	if in.Source != nil {
		intervalNS = in.Source.IntervalNS()
	}
	var grid []int64
	if measure != nil && (len(in.Requests) > 0 || in.Serving != nil) {
		grid = makeGrid(*measure, intervalNS, opt.GridMax)
	}
	var queries []int64
	var statWins []record.Window
	for _, w := range wins {
		queries = append(queries, w.w.StartNS, w.w.EndNS)
		statWins = append(statWins, w.w)
	}
	queries = SortedUnique(append(queries, grid...))

	tracks, err := runTracks(in, opt.Attribution, queries, statWins, flag)
	if err != nil {
		return nil, err
	}
	setScopes(e, tracks)
	idle := idleDevices(in.Run, in.Baseline, tracks, opt, flag)
	if intervalNS <= 0 {
		intervalNS = measuredInterval(tracks)
	}
	tol := max(2*intervalNS, int64(50e6))

	for wi, w := range wins {
		pe := &record.PhaseEnergy{Window: w.w, DurationS: w.w.DurationS(), Devices: []record.DeviceEnergy{}, Scopes: map[string]*record.ScopeEnergy{}}
		e.Phases[w.name] = pe
		for _, tr := range tracks {
			at := attributionOver(tr, w.w, opt.Attribution)
			de, fl := deviceEnergy(tr, w, tol, idle, opt, wi, at.share)
			at.fill(&de)
			pe.Devices = append(pe.Devices, de)
			for _, f := range fl {
				flag(f)
			}
		}
		sumScopes(pe, e.TotalScopes)
		machineScopes(pe, e.TotalScopes)
	}
	runFlags(e, run, tracks, flag)
	e.Attribution = runAttribution(tracks, opt.Attribution)

	switch {
	case measure == nil || run.Status != record.StatusOK:
	case in.Serving != nil:
		res.Requests = servingMetrics(e, in, *measure, grid, tracks, opt, flag)
	default:
		metrics(e, in, *measure)
		if len(in.Requests) == 0 {
			flag(record.Flag{Code: FlagNoRequestEvents, Phase: record.PhaseMeasure,
				Message: "no request events: latency percentiles and per-request energy are null",
				Hint:    "the worker's events.ndjson must hold one request event per measured request"})
		} else if len(grid) > 1 {
			res.Requests = attribute(e, in.Requests, grid, tracks)
		}
	}
	return res, nil
}

// newEnergy is the run's energy record before any figure: every metric
// null, a flag when the run did not end ok.
func newEnergy(run *record.Run) *record.Energy {
	e := &record.Energy{
		Kind: record.KindEnergy, V: record.Version,
		Study: run.Study, StudyHash: run.StudyHash, ID: run.ID, RunID: run.RunID,
		Seq: run.Seq, Cycle: run.Cycle, NCycles: run.NCycles, Backend: run.Backend, Model: run.Model,
		Config: run.Config, Status: run.Status, Error: run.Error, RunDir: run.RunDir, Host: run.Host.Hostname,
		Phases: map[string]*record.PhaseEnergy{}, Metrics: map[string]*float64{}, Flags: []record.Flag{},
	}
	for _, k := range metricNames {
		e.Metrics[k] = nil
	}
	if run.RequestsFile != "" {
		for _, k := range servingMetricNames {
			e.Metrics[k] = nil
		}
	}
	if run.Status != record.StatusOK {
		msg := fmt.Sprintf("run ended %s", run.Status)
		if run.Error != nil {
			msg += ": " + run.Error.Message
		}
		e.Flags = append(e.Flags, record.Flag{Code: FlagRunNotOK, Message: msg, Hint: "its figures are null; the phases that were recorded are kept"})
	}
	return e
}

// phaseWindows lists the run's non-empty phase windows in order, and its
// measure window (nil, flagged for an ok run, when it has none).
func phaseWindows(run *record.Run, flag func(record.Flag)) ([]phaseWin, *record.Window) {
	var wins []phaseWin
	for _, p := range []struct {
		name string
		w    *record.Window
	}{{record.PhaseLoad, run.Phases.Load}, {record.PhaseIdle, run.Phases.Idle}, {record.PhaseWarmup, run.Phases.Warmup},
		{record.PhaseMeasure, run.Phases.Measure}, {record.PhaseCooldown, run.Phases.Cooldown}} {
		if p.w != nil && p.w.EndNS > p.w.StartNS {
			wins = append(wins, phaseWin{p.name, *p.w})
		}
	}
	measure := run.Phases.Measure
	if measure == nil || measure.EndNS <= measure.StartNS {
		measure = nil
		if run.Status == record.StatusOK {
			flag(record.Flag{Code: FlagNoMeasureWindow, Message: "the run reported no measure window", Phase: record.PhaseMeasure,
				Hint: "the worker must send phase events for measure start and end"})
		}
	}
	return wins, measure
}

// runTracks streams the run's samples once and keeps its devices' tracks;
// a missing or empty stream is flagged.
func runTracks(in RunInput, mode string, queries []int64, statWins []record.Window, flag func(record.Flag)) ([]*DeviceTrack, error) {
	var tracks []*DeviceTrack
	if in.Source != nil {
		src := newShareSource(in.Source, mode)
		var err error
		tracks, err = Pass(src, queries, statWins)
		if err != nil {
			return nil, fmt.Errorf("run %s: samples: %w", in.Run.RunID, err)
		}
		tracks = pairMachine(tracks, src)
	} else {
		msg := "no sample stream"
		if in.SourceErr != nil {
			msg = in.SourceErr.Error()
		}
		flag(record.Flag{Code: FlagNoSamples, Message: msg, Hint: "energy figures are null; check run_dir and sample_file, or pass --root where results were moved"})
	}
	tracks = selectDevices(tracks, in.Run.Devices, queries, len(statWins))
	if in.Source != nil && len(tracks) == 0 {
		// A stream that opened but holds no rows of this run's devices (the
		// sampler died before its first batch): null figures, said aloud.
		flag(record.Flag{Code: FlagNoSamples, Message: "the sample stream holds no samples of the run's devices (the sampler died or never sampled)",
			Hint: "energy figures are null; see the run's sampler_failed warning"})
	}
	return tracks, nil
}

// setScopes sets the scopes the total sums and the basis of the figures.
func setScopes(e *record.Energy, tracks []*DeviceTrack) {
	present := map[string]bool{}
	for _, tr := range tracks {
		present[power.ScopeOf(tr.Info.Source, tr.Info.Name)] = true
	}
	for _, s := range []string{record.ScopeGPU, record.ScopeCPUPackage, record.ScopeDRAM} {
		if present[s] {
			e.TotalScopes = append(e.TotalScopes, s)
		}
	}
	if !present[record.ScopeCPUPackage] && present[record.ScopeCPUEst] {
		e.TotalScopes = append(e.TotalScopes, record.ScopeCPUEst)
	}
	sort.Strings(e.TotalScopes)
	e.Basis = record.ScopeTotal
	if present[record.ScopeGPU] {
		e.Basis = record.ScopeGPU
	}
}

// idleDevices indexes the baseline's devices by name, after checking that
// it can serve the run: a baseline of another host is not used; one taken
// long before or after the run is used and flagged; a run device it lacks
// or has no idle power for is flagged (that device's net is null). A run
// with samples but no baseline is flagged.
func idleDevices(run *record.Run, b *record.Baseline, tracks []*DeviceTrack, opt Options, flag func(record.Flag)) map[string]*record.BaselineDevice {
	idle := map[string]*record.BaselineDevice{}
	if b == nil {
		if len(tracks) > 0 {
			flag(record.Flag{Code: FlagNoBaseline, Message: "no baseline record for this run: idle-adjusted figures are null",
				Hint: "pass the baseline records (llem-exec emits them) in the same input"})
		}
		return idle
	}
	if b.Host != "" && run.Host.Hostname != "" && b.Host != run.Host.Hostname {
		flag(record.Flag{Code: FlagBaselineOtherHost,
			Message: fmt.Sprintf("baseline %s was measured on host %s, the run on %s: it is not used, idle-adjusted figures are null", b.ID, b.Host, run.Host.Hostname),
			Hint:    "pass the baseline records of the run's own host"})
		return idle
	}
	baselineAge(run, b, opt, flag)
	for i := range b.Devices {
		d := &b.Devices[i]
		idle[d.Device] = d
	}
	var missing []string
	for _, tr := range tracks {
		d := idle[tr.Info.Name]
		switch {
		case d == nil:
			missing = append(missing, tr.Info.Name)
		case d.PowerW == nil:
			flag(record.Flag{Code: FlagBaselineNoIdle, Device: tr.Info.Name,
				Message: fmt.Sprintf("baseline %s has no idle power for %s (no reading in its window): that device's net figures are null", b.ID, tr.Info.Name),
				Hint:    "the sampler read no power during the baseline; measure the baseline again"})
		}
	}
	if len(missing) == 0 {
		return idle
	}
	var have []string
	for _, d := range b.Devices {
		have = append(have, d.Device)
	}
	code, what := FlagBaselinePartial, "covers only some of the run's devices"
	if len(missing) == len(tracks) {
		code, what = FlagBaselineOtherDevice, "was measured on other devices"
	}
	flag(record.Flag{Code: code,
		Message: fmt.Sprintf("baseline %s %s: it has %s, not %s; net figures of those are null", b.ID, what, strings.Join(have, ", "), strings.Join(missing, ", ")),
		Hint:    "take the baseline on the devices the run uses (llem-exec does when both run on the same host)"})
	return idle
}

// baselineAge flags a baseline taken long before or after its run: idle
// power drifts with temperature and background load.
func baselineAge(run *record.Run, b *record.Baseline, opt Options, flag func(record.Flag)) {
	maxAge := opt.BaselineMaxAgeS
	if maxAge <= 0 {
		maxAge = DefaultBaselineMaxAgeS
	}
	start, end := run.StartNS, run.EndNS
	if m := run.Phases.Measure; m != nil && m.EndNS > m.StartNS {
		start, end = m.StartNS, m.EndNS
	}
	if start <= 0 || b.Window.EndNS <= 0 {
		return
	}
	var apart float64
	when := "before"
	switch {
	case b.Window.EndNS < start:
		apart = float64(start-b.Window.EndNS) / 1e9
	case b.Window.StartNS > end:
		apart, when = float64(b.Window.StartNS-end)/1e9, "after"
	}
	if apart > maxAge {
		flag(record.Flag{Code: FlagBaselineStale,
			Message: fmt.Sprintf("baseline %s ended %.0f s %s the run (more than %.0f s): its idle power is used but may have drifted", b.ID, apart, when, maxAge),
			Hint:    "measure the baseline again near the run (llem-exec --baseline-ttl)"})
	}
}

// runFlags flags what holds over the whole run: counter wraps, rows out of
// order, estimates, persistence mode off, other processes on the GPU.
func runFlags(e *record.Energy, run *record.Run, tracks []*DeviceTrack, flag func(record.Flag)) {
	for _, tr := range tracks {
		for _, f := range trackFlags(tr) {
			flag(f)
		}
		if tr.Info.Source == "estimate" {
			msg := "energy of this device is an estimate (no sensor), not a measurement"
			if i := tr.Info; i.WattsPerCore > 0 {
				e.EstimateModel = &record.EstimateModel{WattsPerCore: i.WattsPerCore, Source: i.WattsPerCoreSource, CPUModel: i.CPUModel}
				msg += fmt.Sprintf(": busy CPU time × %.3g W per core (%s)", i.WattsPerCore, wpcSourceText(i.WattsPerCoreSource))
			}
			flag(record.Flag{Code: FlagEstimate, Device: tr.Info.Name, Message: msg,
				Hint: "use a GPU with NVML or a CPU with readable RAPL for measured figures"})
			e.Estimate = true
		}
	}
	if run.Estimate {
		e.Estimate = true
	}
	for _, g := range run.Host.GPUs {
		if g.PersistenceMode != nil && !*g.PersistenceMode && measured(tracks, g.UUID) {
			flag(record.Flag{Code: FlagPersistenceOff, Device: g.UUID,
				Message: "GPU persistence mode was off: the driver may re-initialise between runs and power states differ",
				Hint:    "sudo nvidia-smi -pm 1"})
		}
	}
	for _, w := range run.Warnings {
		if containsAny(w.Code, "other_process", "foreign_process") {
			flag(record.Flag{Code: FlagOtherProcesses, Device: w.Device, Message: w.Message,
				Hint: "GPU energy is whole-device: another process's work is included; run on an idle GPU"})
		}
	}
}

// trackFlags says what was done to a device's readings over the whole
// stream: counter wraps and how they were bridged, counter steps rejected,
// rows dropped for their timestamps.
func trackFlags(tr *DeviceTrack) []record.Flag {
	var fl []record.Flag
	c, dev := tr.Curve, tr.Info.Name
	if c.Wraps > 0 {
		var how []string
		if c.WrapsRange > 0 {
			how = append(how, fmt.Sprintf("%d bridged with the counter's range (%.6g J)", c.WrapsRange, c.WrapJ))
		}
		if c.WrapsPower > 0 {
			how = append(how, fmt.Sprintf("%d bridged with the power integral over the interval (%.4g J in all)", c.WrapsPower, c.BridgedJ))
		}
		if c.WrapsBroken > 0 {
			how = append(how, fmt.Sprintf("%d not bridged (no power reading at both ends)", c.WrapsBroken))
		}
		fl = append(fl, record.Flag{Code: FlagCounterWrapped, Device: dev,
			Message: fmt.Sprintf("the energy counter wrapped or was reset %d time(s): %s", c.Wraps, strings.Join(how, "; ")),
			Hint:    "a range bridge is exact, a power bridge carries the integral's error for that interval; windows across an unbridged jump have no counter figure"})
	}
	if c.Rejected > 0 {
		fl = append(fl, record.Flag{Code: FlagCounterRejected, Device: dev,
			Message: fmt.Sprintf("%d counter step(s) the power readings cannot explain (up to %.4g J; the bound is %g × the highest power seen × the interval) were rejected: the power integral is used over those %.3f s",
				c.Rejected, c.RejectedMaxJ, c.SpikeFactor, float64(c.RejectedNS)/1e9),
			Hint: "a spurious counter reading; the figure is sound, but check the sensor if it recurs"})
	}
	if c.Duplicates > 0 {
		fl = append(fl, record.Flag{Code: FlagDuplicates, Device: dev,
			Message: fmt.Sprintf("%d row(s) repeated the previous row's timestamp (%d with other readings): the first row at each timestamp is kept, the others are not counted", c.Duplicates, c.DupDiffer),
			Hint:    "the sampler wrote a row twice, or its clock is coarser than its interval"})
	}
	if tr.Ahead > 0 {
		fl = append(fl, record.Flag{Code: FlagTimestampAhead, Device: dev,
			Message: fmt.Sprintf("%d row(s) stamped ahead of the rows after them (by up to %.3f s) were dropped", tr.Ahead, float64(tr.AheadMaxNS)/1e9),
			Hint:    "a clock glitch on the sampling host; the rows around them are used"})
	}
	if c.Unordered > 0 {
		fl = append(fl, record.Flag{Code: FlagUnordered, Device: dev,
			Message: fmt.Sprintf("%d sample row(s) went back in time and were skipped", c.Unordered),
			Hint:    "check the host clock (NTP steps) during the run"})
	}
	return fl
}

// metricNames lists every metric an energy record carries, null or not, so
// every record has the same columns.
var metricNames = []string{
	record.MDurationS, record.MRequests, record.MInputTokens, record.MOutputTokens,
	record.MEnergyJ, record.MEnergyNetJ, record.MIdleJ, record.MIdlePowerW,
	record.MGPUEnergyJ, record.MCPUEnergyJ, record.MDRAMEnergyJ, record.MTotalEnergyJ,
	record.MLoadEnergyJ, record.MWarmupEnergyJ,
	record.MEnergyCounterJ, record.MEnergyIntegralJ, record.MCounterIntegralGapRel,
	record.MMeanPowerW, record.MJPerOutputToken, record.MJPerOutputTokenNet, record.MJPerRequest,
	record.MOutputTokensPerJ, record.MOutputTokensPerS, record.MTotalTokensPerS, record.MRequestsPerS,
	record.MFLOPs, record.MFLOPsAttention, record.MFLOPsPerJ,
	record.MTTFTMeanS, record.MTTFTP50S, record.MTTFTP90S, record.MTTFTP95S, record.MTTFTP99S,
	record.MITLMeanS, record.MITLP50S, record.MITLP90S, record.MITLP95S, record.MITLP99S,
	record.ME2EMeanS, record.ME2EP50S, record.ME2EP90S, record.ME2EP95S, record.ME2EP99S,
}

// MetricNames returns the metric names of energy records, in a stable order.
func MetricNames() []string { return append([]string(nil), metricNames...) }

func makeGrid(w record.Window, intervalNS int64, most int) []int64 {
	step := intervalNS
	if step <= 0 {
		step = int64(defaultSensorPeriodS * 1e9)
	}
	d := w.EndNS - w.StartNS
	if most < 1 {
		most = 20000
	}
	if d/step > int64(most) {
		step = (d + int64(most) - 1) / int64(most)
	}
	var g []int64
	for t := w.StartNS; t < w.EndNS; t += step {
		g = append(g, t)
	}
	return append(g, w.EndNS)
}

// selectDevices keeps the devices the run says it used (all when it names
// none) and adds an empty track for a named device the stream lacks, so its
// figures are null rather than silently missing.
func selectDevices(tracks []*DeviceTrack, want []string, queries []int64, nStats int) []*DeviceTrack {
	if len(want) == 0 {
		return tracks
	}
	by := map[string]*DeviceTrack{}
	for _, tr := range tracks {
		by[tr.Info.Name] = tr
	}
	var out []*DeviceTrack
	for _, d := range want {
		if tr, ok := by[d]; ok {
			out = append(out, tr)
			continue
		}
		src := "rapl"
		if power.ScopeOf("", d) == record.ScopeGPU {
			src = "nvml"
		}
		c := NewCurve(queries)
		c.Finish()
		out = append(out, &DeviceTrack{Info: DeviceInfo{Name: d, Source: src}, Curve: c, Stats: make([]WindowStats, nStats)})
	}
	return out
}

func measured(tracks []*DeviceTrack, dev string) bool {
	for _, tr := range tracks {
		if tr.Info.Name == dev {
			return true
		}
	}
	return false
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		for i := 0; i+len(x) <= len(s); i++ {
			if s[i:i+len(x)] == x {
				return true
			}
		}
	}
	return false
}

// measuredInterval estimates the sampling interval from the longest stat
// window's readings when the stream does not state it.
func measuredInterval(tracks []*DeviceTrack) int64 {
	best := int64(0)
	for _, tr := range tracks {
		for _, s := range tr.Stats {
			if s.N >= 2 {
				if iv := (s.LastT - s.FirstT) / (s.N - 1); best == 0 || iv < best {
					best = iv
				}
			}
		}
	}
	if best == 0 {
		best = int64(defaultSensorPeriodS * 1e9)
	}
	return best
}

func ptr(v float64) *float64 { return &v }

// deviceEnergy is one device's energy over one window, and what is wrong
// with it. share, where not nil, is the run's share of the device's energy
// (process attribution): the baseline's idle power is scaled by it too.
func deviceEnergy(tr *DeviceTrack, w phaseWin, tol int64, idle map[string]*record.BaselineDevice, opt Options, wi int, share *float64) (record.DeviceEnergy, []record.Flag) {
	var fl []record.Flag
	sp := tr.Curve.Span(w.w.StartNS, w.w.EndNS)
	d := w.w.EndNS - w.w.StartNS
	dur := w.w.DurationS()
	de := record.DeviceEnergy{Device: tr.Info.Name, Scope: power.ScopeOf(tr.Info.Source, tr.Info.Name), Source: tr.Info.Source,
		Estimate: tr.Info.Source == "estimate", Method: "none", Samples: int(sp.Samples)}
	dev := tr.Info.Name
	// A window wholly outside the readings is not measured: null, not an extrapolation.
	if sp.IntegralJ != nil && sp.IntOutNS < d {
		de.IntegralJ = sp.IntegralJ
	}
	if sp.CounterJ != nil && sp.CtrOutNS < d {
		de.CounterJ = sp.CounterJ
	}
	switch {
	case de.CounterJ != nil:
		de.Method, de.EnergyJ = "counter", de.CounterJ
	case de.IntegralJ != nil:
		de.Method, de.EnergyJ = "integral", de.IntegralJ
	}
	if de.CounterJ != nil && de.IntegralJ != nil && *de.CounterJ > 0 {
		de.GapRel = ptr(math.Abs(*de.CounterJ-*de.IntegralJ) / *de.CounterJ)
		if *de.GapRel > opt.GapThreshold && w.name == record.PhaseMeasure {
			fl = append(fl, record.Flag{Code: FlagCounterGap, Device: dev, Phase: w.name,
				Message: fmt.Sprintf("counter %.4g J and power integral %.4g J differ by %.1f%% (threshold %.1f%%)", *de.CounterJ, *de.IntegralJ, 100**de.GapRel, 100*opt.GapThreshold),
				Hint:    "the counter is used; a large gap means power readings are averaged or too sparse for the load's changes (poll faster, or read NVML's instant power field)"})
		}
	}
	if de.EnergyJ == nil {
		fl = append(fl, record.Flag{Code: FlagNoSamples, Device: dev, Phase: w.name,
			Message: "no readings cover this window: its energy is null", Hint: "was the sampler running for the whole run?"})
	} else {
		de.MeanPowerW = ptr(*de.EnergyJ / dur)
		out := sp.CtrOutNS
		if de.Method == "integral" {
			out = sp.IntOutNS
		}
		if out > tol {
			fl = append(fl, record.Flag{Code: FlagEdgeMissing, Device: dev, Phase: w.name,
				Message: fmt.Sprintf("no reading within %.3f s of a window edge; the energy there is extrapolated from the nearest reading", float64(out)/1e9),
				Hint:    "start the sampler before the run and stop it after"})
		}
	}
	if b := idle[dev]; b != nil && b.PowerW != nil {
		de.IdlePowerW = b.PowerW
		if share != nil {
			de.IdlePowerW = ptr(*b.PowerW * *share)
		}
		de.IdleJ = ptr(*de.IdlePowerW * dur)
		if de.EnergyJ != nil {
			de.NetJ = ptr(math.Max(0, *de.EnergyJ-*de.IdleJ))
			// Equal up to rounding (a device idle through the run) is no clamp.
			if *de.EnergyJ < *de.IdleJ*(1-1e-9) && w.name == record.PhaseMeasure {
				fl = append(fl, record.Flag{Code: FlagNetClamped, Device: dev, Phase: w.name,
					Message: fmt.Sprintf("idle %.4g J (%.4g W × %.3f s) exceeds the gross %.4g J: net clamped to 0, so net figures are a bound, not a measurement", *de.IdleJ, *de.IdlePowerW, dur, *de.EnergyJ),
					Hint:    "the baseline's idle power is too high for this run: another load during the baseline, or a baseline of another state"})
			}
		}
	}
	if w.name != record.PhaseMeasure || de.EnergyJ == nil {
		return de, fl
	}
	return de, append(fl, windowFlags(tr.Stats[wi], dev, w.name, dur, sp.Samples, tol, opt)...)
}

// windowFlags judges the measure window's readings of one device: too
// short for the sensor, too few, a gap, thermal drift, throttling.
func windowFlags(st WindowStats, dev, phase string, dur float64, samples, tol int64, opt Options) []record.Flag {
	var fl []record.Flag
	period := defaultSensorPeriodS
	if st.N >= 2 {
		period = math.Max(period, float64(st.LastT-st.FirstT)/float64(st.N-1)/1e9)
	}
	if dur < opt.MinPeriods*period {
		fl = append(fl, record.Flag{Code: FlagShortWindow, Device: dev, Phase: phase,
			Message: fmt.Sprintf("window of %.3f s is shorter than %.0f sensor update periods (%.3f s each)", dur, opt.MinPeriods, period),
			Hint:    "counter quantisation dominates short windows: measure more requests or longer"})
	}
	if samples < int64(opt.MinSamples) {
		fl = append(fl, record.Flag{Code: FlagFewSamples, Device: dev, Phase: phase,
			Message: fmt.Sprintf("%d readings in the window, fewer than %d", samples, opt.MinSamples),
			Hint:    "lengthen the window or sample faster (llem-sample --interval)"})
	}
	if st.N >= 2 {
		iv := (st.LastT - st.FirstT) / (st.N - 1)
		if st.MaxGapNS > 5*iv && st.MaxGapNS > tol {
			fl = append(fl, record.Flag{Code: FlagSampleGap, Device: dev, Phase: phase,
				Message: fmt.Sprintf("a %.3f s gap between readings (interval %.3f s): samples were dropped", float64(st.MaxGapNS)/1e9, float64(iv)/1e9),
				Hint:    "the counter figure is unaffected; the power integral is interpolated across the gap"})
		}
	}
	if g, ok := st.CoverGapNS(); ok && st.N < 2 && g > tol {
		fl = append(fl, record.Flag{Code: FlagSampleGap, Device: dev, Phase: phase,
			Message: fmt.Sprintf("the %.3f s window lies inside a %.3f s gap between readings (%d reading(s) in it): its energy is interpolated across the gap", dur, float64(g)/1e9, st.N),
			Hint:    "the sampler dropped readings around the window; a load change inside the gap is not seen"})
	}
	if st.TempN >= 2 && math.Abs(st.TempLast-st.TempFirst) > opt.DriftC {
		fl = append(fl, record.Flag{Code: FlagThermalDrift, Device: dev, Phase: phase,
			Message: fmt.Sprintf("temperature moved %.0f → %.0f °C during the window (more than %.0f °C)", st.TempFirst, st.TempLast, opt.DriftC),
			Hint:    "warm the GPU up before measuring (longer warmup or thermal floor)"})
	}
	if st.ThrottledN > 0 {
		fl = append(fl, record.Flag{Code: FlagThrottling, Device: dev, Phase: phase,
			Message: fmt.Sprintf("clocks slowed in %d of %d readings (%s)", st.ThrottledN, st.ThrottleN, ThrottleNames(st.ThrottleOr)),
			Hint:    "check cooling and power limits (nvidia-smi -q -d PERFORMANCE)"})
	}
	return fl
}

// sumScopes fills the per-scope sums and the named total. A sum with an
// unknown part is unknown. Net is floored at 0 per scope, after summing.
func sumScopes(pe *record.PhaseEnergy, totalScopes []string) {
	for _, de := range pe.Devices {
		s := pe.Scopes[de.Scope]
		if s == nil {
			s = &record.ScopeEnergy{GrossJ: ptr(0), IdleJ: ptr(0)}
			pe.Scopes[de.Scope] = s
		}
		s.Devices++
		s.Estimate = s.Estimate || de.Estimate
		s.GrossJ = addp(s.GrossJ, de.EnergyJ)
		s.IdleJ = addp(s.IdleJ, de.IdleJ)
	}
	if len(totalScopes) > 0 {
		t := &record.ScopeEnergy{GrossJ: ptr(0), IdleJ: ptr(0)}
		for _, name := range totalScopes {
			s := pe.Scopes[name]
			t.Devices += s.Devices
			t.Estimate = t.Estimate || s.Estimate
			t.GrossJ = addp(t.GrossJ, s.GrossJ)
			t.IdleJ = addp(t.IdleJ, s.IdleJ)
		}
		pe.Scopes[record.ScopeTotal] = t
	}
	for _, s := range pe.Scopes {
		if s.GrossJ != nil && s.IdleJ != nil {
			s.NetJ = ptr(math.Max(0, *s.GrossJ-*s.IdleJ))
		}
	}
}

func addp(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	return ptr(*a + *b)
}

func div(a, b *float64) *float64 {
	if a == nil || b == nil || *b == 0 {
		return nil
	}
	return ptr(*a / *b)
}

// tokenCounts are the counts the per-token and per-request figures divide by.
type tokenCounts struct{ req, inTok, outTok *float64 }

func metrics(e *record.Energy, in RunInput, w record.Window) {
	run := in.Run
	var c tokenCounts
	switch {
	case run.Totals != nil:
		c = tokenCounts{ptr(float64(run.Totals.Requests)), ptr(float64(run.Totals.InputTokens)), ptr(float64(run.Totals.OutputTokens))}
	case len(in.Requests) > 0:
		var i, o int64
		for _, r := range in.Requests {
			i += int64(r.InputTokens)
			o += int64(r.OutputTokens)
		}
		c = tokenCounts{ptr(float64(len(in.Requests))), ptr(float64(i)), ptr(float64(o))}
	}
	windowMetrics(e, w, c)
	flopsMetrics(e, in, in.Requests, run.Totals)
	if len(in.Requests) > 0 {
		latencies(e, in.Requests)
	}
}

// windowMetrics fills the measure window's energy figures and the figures
// per token, request and second from counts c (nil: those are null).
func windowMetrics(e *record.Energy, w record.Window, c tokenCounts) {
	m := e.Metrics
	dur := ptr(w.DurationS())
	m[record.MDurationS] = dur
	req, inTok, outTok := c.req, c.inTok, c.outTok
	m[record.MRequests], m[record.MInputTokens], m[record.MOutputTokens] = req, inTok, outTok

	pm := e.Phases[record.PhaseMeasure]
	b := phaseScope(pm, e.Basis)
	energy := b.GrossJ
	m[record.MEnergyJ], m[record.MEnergyNetJ], m[record.MIdleJ] = energy, b.NetJ, b.IdleJ
	m[record.MIdlePowerW] = div(b.IdleJ, dur)
	m[record.MGPUEnergyJ] = phaseScope(pm, record.ScopeGPU).GrossJ
	m[record.MCPUEnergyJ] = phaseScope(pm, record.ScopeCPUPackage).GrossJ
	if pm != nil && pm.Scopes[record.ScopeCPUPackage] == nil {
		m[record.MCPUEnergyJ] = phaseScope(pm, record.ScopeCPUEst).GrossJ
	}
	m[record.MDRAMEnergyJ] = phaseScope(pm, record.ScopeDRAM).GrossJ
	m[record.MTotalEnergyJ] = phaseScope(pm, record.ScopeTotal).GrossJ
	m[record.MLoadEnergyJ] = phaseScope(e.Phases[record.PhaseLoad], e.Basis).GrossJ
	m[record.MWarmupEnergyJ] = phaseScope(e.Phases[record.PhaseWarmup], e.Basis).GrossJ

	if pm != nil {
		counterIntegral(e, pm)
	}

	m[record.MMeanPowerW] = div(energy, dur)
	m[record.MJPerOutputToken] = div(energy, outTok)
	m[record.MJPerOutputTokenNet] = div(b.NetJ, outTok)
	m[record.MJPerRequest] = div(energy, req)
	m[record.MOutputTokensPerJ] = div(outTok, energy)
	m[record.MOutputTokensPerS] = div(outTok, dur)
	m[record.MTotalTokensPerS] = div(addp(inTok, outTok), dur)
	m[record.MRequestsPerS] = div(req, dur)
}

// phaseScope is a phase's sums on one scope (all null where it has none).
func phaseScope(pe *record.PhaseEnergy, name string) *record.ScopeEnergy {
	if pe == nil || pe.Scopes[name] == nil {
		return &record.ScopeEnergy{}
	}
	return pe.Scopes[name]
}

// flopsMetrics fills the FLOPs estimate of reqs (or of the totals).
func flopsMetrics(e *record.Energy, in RunInput, reqs []record.RequestEvent, totals *record.Totals) {
	model := in.Run.ModelFacts
	if model == nil {
		model = in.Model
	}
	flops, attn, method := FLOPs(model, reqs, totals)
	e.Metrics[record.MFLOPs], e.Metrics[record.MFLOPsAttention] = flops, attn
	e.FLOPsMethod = method
	e.Metrics[record.MFLOPsPerJ] = div(flops, e.Metrics[record.MEnergyJ])
}

// counterIntegral sums the basis devices' counter and integral figures of
// the measure window and their relative gap.
func counterIntegral(e *record.Energy, pm *record.PhaseEnergy) {
	m := e.Metrics
	ctr, integ := ptr(0), ptr(0)
	for _, de := range pm.Devices {
		if e.Basis == record.ScopeTotal && !inTotal(de.Scope, e.TotalScopes) || e.Basis != record.ScopeTotal && de.Scope != e.Basis {
			continue
		}
		ctr, integ = addp(ctr, de.CounterJ), addp(integ, de.IntegralJ)
	}
	m[record.MEnergyCounterJ], m[record.MEnergyIntegralJ] = ctr, integ
	if ctr != nil && integ != nil && *ctr > 0 {
		m[record.MCounterIntegralGapRel] = ptr(math.Abs(*ctr-*integ) / *ctr)
	}
}

// latencies fills the TTFT, ITL and end-to-end distributions and metrics.
func latencies(e *record.Energy, reqs []record.RequestEvent) {
	m := e.Metrics
	var ttft, itl, e2e []float64
	for _, r := range reqs {
		if r.TFirstNS > 0 {
			ttft = append(ttft, float64(r.TFirstNS-r.TStartNS))
		}
		e2e = append(e2e, float64(r.TEndNS-r.TStartNS))
		for _, g := range r.ITLNS {
			itl = append(itl, float64(g))
		}
	}
	e.TTFT, e.ITL, e.E2E = stats.Latency(ttft), stats.Latency(itl), stats.Latency(e2e)
	for _, l := range []struct {
		lat                      *record.Latency
		mean, p50, p90, p95, p99 string
	}{
		{e.TTFT, record.MTTFTMeanS, record.MTTFTP50S, record.MTTFTP90S, record.MTTFTP95S, record.MTTFTP99S},
		{e.ITL, record.MITLMeanS, record.MITLP50S, record.MITLP90S, record.MITLP95S, record.MITLP99S},
		{e.E2E, record.ME2EMeanS, record.ME2EP50S, record.ME2EP90S, record.ME2EP95S, record.ME2EP99S},
	} {
		m[l.mean], m[l.p50], m[l.p90], m[l.p95], m[l.p99] = l.lat.Mean, l.lat.P50, l.lat.P90, l.lat.P95, l.lat.P99
	}
}

func inTotal(scope string, total []string) bool {
	for _, s := range total {
		if s == scope {
			return true
		}
	}
	return false
}

// FLOPs estimates the forward-pass FLOPs of the measured requests:
// 2 × N × tokens, N = active parameters (MoE) or else non-embedding
// parameters, tokens = input + output (each token passes the model once);
// plus the attention term 2 · layers · ctx · d_attn per token, ctx being the
// token's position in its request (causal attention) and d_attn = heads ×
// head_dim (or hidden size). It returns nil where the model facts are
// missing, and a sentence saying which formula was used.
func FLOPs(m *record.ModelFacts, reqs []record.RequestEvent, totals *record.Totals) (total, attention *float64, method string) {
	if m == nil {
		return nil, nil, ""
	}
	var n float64
	var which string
	switch {
	case m.ActiveParameters != nil && *m.ActiveParameters > 0:
		n, which = float64(*m.ActiveParameters), "active"
	case m.NonEmbeddingParameters != nil && *m.NonEmbeddingParameters > 0:
		n, which = float64(*m.NonEmbeddingParameters), "non-embedding"
	default:
		return nil, nil, "unknown: the model reported neither active nor non-embedding parameters"
	}
	var tokens float64
	var ctxSum float64 // Σ over processed tokens of their context length
	exact := len(reqs) > 0
	if exact {
		for _, r := range reqs {
			t := float64(r.InputTokens + r.OutputTokens)
			tokens += t
			ctxSum += t * (t + 1) / 2
		}
	} else if totals != nil && totals.Requests > 0 {
		tokens = float64(totals.InputTokens + totals.OutputTokens)
		mean := tokens / float64(totals.Requests)
		ctxSum = float64(totals.Requests) * mean * (mean + 1) / 2
	} else {
		return nil, nil, "unknown: no token counts"
	}
	dense := 2 * n * tokens
	method = fmt.Sprintf("2 × %s parameters × (input + output tokens)", which)
	dAttn := 0.0
	switch {
	case m.Heads != nil && m.HeadDim != nil:
		dAttn = float64(*m.Heads * *m.HeadDim)
	case m.HiddenSize != nil:
		dAttn = float64(*m.HiddenSize)
	}
	if m.Layers == nil || dAttn == 0 {
		return ptr(dense), nil, method + "; attention term left out (layers or attention width unknown)"
	}
	attn := 2 * float64(*m.Layers) * dAttn * ctxSum
	if exact {
		method += " + attention 2 · layers · position · d_attn per token, from each request's lengths"
	} else {
		method += " + attention 2 · layers · position · d_attn per token, assuming every request has the mean length (no request events)"
	}
	return ptr(dense + attn), ptr(attn), method
}

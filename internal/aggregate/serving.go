package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/stats"
)

// Flag codes of serving runs.
const (
	FlagBadRequests     = "bad_requests"
	FlagGeneratorLagged = "generator_lagged"
	FlagSaturated       = "saturated"
	FlagRequestErrors   = "request_errors"
	FlagWindowTooShort  = "window_too_short"
)

// Defaults of the serving flags' thresholds (Options fields left at 0 take them).
const (
	DefaultLagThresholdS     = 0.010 // send lag p99 above 10 ms
	DefaultErrorThreshold    = 0.01  // more than 1 % of the window's requests failed
	DefaultSaturationRatio   = 0.95  // achieved below 95 % of offered
	DefaultTTFTTrendRatio    = 2     // last quarter's median TTFT above twice the first quarter's
	DefaultMinWindowRequests = 20    // fewer than 20 requests expected in the window
	DefaultMinWindowE2E      = 3     // a window shorter than 3 mean E2E latencies
	trendMinPerQuarter       = 5     // the TTFT trend needs this many requests in each quarter
)

// servingMetricNames are the metrics only serving runs' energy records carry.
var servingMetricNames = []string{
	record.MOfferedRateRPS, record.MAchievedRateRPS, record.MRequestsFailed, record.MGoodputRPS, record.MSLOAttainment,
	record.MServerIdlePowerW, record.MSendLagP50S, record.MSendLagP99S,
	record.MTPOTMeanS, record.MTPOTP50S, record.MTPOTP90S, record.MTPOTP99S,
}

// ServingMetricNames returns the metric names only serving runs carry.
func ServingMetricNames() []string { return append([]string(nil), servingMetricNames...) }

// ServingInput is what a serving run adds to its RunInput.
type ServingInput struct {
	Requests []record.Request // every request sent, all phases
	Config   *config.Serving  // the config's serving section; nil when it has none
	Err      error            // why the requests file could not be read: serving figures are null
}

// ReadRequests reads a serving run's requests file (llem-load's request
// records), each line checked against its schema and for times in order. A
// bad line is an error naming file:line and the field; the records before
// it are returned with it.
func ReadRequests(path string) ([]record.Request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []record.Request
	rd := record.NewReader(f, path)
	for rd.Next() {
		l := rd.Line()
		if l.Kind != record.KindRequest {
			return out, &record.PosError{File: path, Line: l.No, Err: fmt.Errorf("kind %q: a requests file holds %q records only", l.Kind, record.KindRequest)}
		}
		var r record.Request
		if err := decode(l, &r); err != nil {
			return out, err
		}
		if err := checkRequestTimes(&r); err != nil {
			return out, &record.PosError{File: path, Line: l.No, Err: err}
		}
		out = append(out, r)
	}
	return out, rd.Err()
}

// checkRequestTimes rejects a record whose times run backwards: its
// latencies would be negative.
func checkRequestTimes(r *record.Request) error {
	switch {
	case r.TEndNS < r.TStartNS:
		return fmt.Errorf("request %d: t_end %d is before t_start %d", r.ID, r.TEndNS, r.TStartNS)
	case r.TFirstNS != nil && (*r.TFirstNS < r.TStartNS || *r.TFirstNS > r.TEndNS):
		return fmt.Errorf("request %d: t_first_token %d is outside t_start–t_end (%d–%d)", r.ID, *r.TFirstNS, r.TStartNS, r.TEndNS)
	}
	return nil
}

// ServingConfig is the serving section of a run's config JSON; nil when it
// has none or it does not decode.
func ServingConfig(cfg json.RawMessage) *config.Serving {
	var c struct {
		Serving *config.Serving `json:"serving"`
	}
	if len(cfg) == 0 || json.Unmarshal(cfg, &c) != nil {
		return nil
	}
	return c.Serving
}

// loadServing reads the requests of a serving run (nil for a batch run).
func loadServing(r *record.Run, dir string) *ServingInput {
	if r.RequestsFile == "" {
		return nil
	}
	sv := &ServingInput{Config: ServingConfig(r.Config)}
	if dir == "" {
		sv.Err = errors.New("the run record has no run_dir to find its requests file in")
		return sv
	}
	sv.Requests, sv.Err = ReadRequests(filepath.Join(dir, r.RequestsFile))
	return sv
}

// servingWindow is a serving run's requests as the measure window sees them.
type servingWindow struct {
	w record.Window
	// measured: the requests sent in the window (t_scheduled, else t_start,
	// in [start, end)), in the order they were sent.
	measured []record.Request
	okSent   []record.RequestEvent // the ok ones among measured
	failed   int                   // measured requests that did not end ok
	// completed: ok requests whose t_end lies in the window (whenever sent).
	completed []record.Request
	// active: ok requests in flight at some time in the window, with their
	// input token counts (nil where the server reported none).
	active   []record.RequestEvent
	activeIn []*int
}

// sentNS is when a request was sent by the schedule (t_scheduled), or when
// it was written where there is no schedule (closed loop).
func sentNS(r *record.Request) int64 {
	if r.TScheduledNS != nil {
		return *r.TScheduledNS
	}
	return r.TStartNS
}

func inWindow(t int64, w record.Window) bool { return t >= w.StartNS && t < w.EndNS }

func selectWindow(reqs []record.Request, w record.Window) *servingWindow {
	sw := &servingWindow{w: w}
	for i := range reqs {
		r := &reqs[i]
		ok := r.Status == record.ReqOK && r.TFirstNS != nil
		if inWindow(sentNS(r), w) {
			sw.measured = append(sw.measured, *r)
		}
		if ok && inWindow(r.TEndNS, w) {
			sw.completed = append(sw.completed, *r)
		}
		if ok && r.TStartNS < w.EndNS && r.TEndNS >= w.StartNS {
			sw.active = append(sw.active, asEvent(r))
			sw.activeIn = append(sw.activeIn, r.InputTokens)
		}
	}
	sort.SliceStable(sw.measured, func(i, j int) bool { return sentNS(&sw.measured[i]) < sentNS(&sw.measured[j]) })
	for i := range sw.measured {
		r := &sw.measured[i]
		if r.Status == record.ReqOK && r.TFirstNS != nil {
			sw.okSent = append(sw.okSent, asEvent(r))
		} else {
			sw.failed++
		}
	}
	return sw
}

// asEvent is an ok request in the shape of the worker's request event
// (input tokens 0 where unknown: callers that need them keep the record).
func asEvent(r *record.Request) record.RequestEvent {
	ev := record.RequestEvent{ID: r.ID, Batch: -1, OutputTokens: r.OutputTokens, TStartNS: r.TStartNS, TEndNS: r.TEndNS, ITLNS: r.ITLNS}
	if r.InputTokens != nil {
		ev.InputTokens = *r.InputTokens
	}
	if r.TFirstNS != nil {
		ev.TFirstNS = *r.TFirstNS
	}
	return ev
}

// servingMetrics fills a serving run's figures over its measure window and
// returns the per-request attribution (nil when there is none).
func servingMetrics(e *record.Energy, in RunInput, w record.Window, grid []int64, tracks []*DeviceTrack, opt Options, flag func(record.Flag)) []RequestEnergy {
	m := e.Metrics
	idle := e.Phases[record.PhaseIdle]
	if idle != nil && idle.DurationS > 0 {
		m[record.MServerIdlePowerW] = div(phaseScope(idle, e.Basis).GrossJ, ptr(idle.DurationS))
	}
	sv := in.Serving
	if sv.Err != nil {
		windowMetrics(e, w, tokenCounts{})
		flag(record.Flag{Code: FlagBadRequests, Phase: record.PhaseMeasure,
			Message: "requests file: " + sv.Err.Error() + "; rates, latencies, token counts and per-request energy are null",
			Hint:    "llem-load writes requests.ndjson into the run directory; check it is there and whole"})
		return nil
	}
	sw := selectWindow(sv.Requests, w)
	windowMetrics(e, w, sw.counts(grid))
	sw.flops(e, in)
	if len(sw.okSent) > 0 {
		latencies(e, sw.okSent)
	}
	sw.rates(m, sv.Config)
	servingFlags(e, sw, sv.Config, opt, flag)
	if len(grid) < 2 || len(sw.active) == 0 {
		return nil
	}
	res := servingRule.attribute(e, sw.active, grid, tracks)
	for i := range res {
		res[i].InputTokens = sw.activeIn[i]
	}
	return res
}

// counts: requests = ok completions in the window; output tokens = those
// the ok requests emitted within it (the ML.ENERGY steady-state count);
// input tokens = those of the ok requests whose first token (the end of
// their prefill) lies in it, null where the server reported some not.
func (sw *servingWindow) counts(grid []int64) tokenCounts {
	var out float64
	if len(grid) > 1 {
		at := servingRule.place(grid, sw.active)
		out = at.massSm
	}
	in := 0
	for i, r := range sw.active {
		if !inWindow(r.TFirstNS, sw.w) {
			continue
		}
		if sw.activeIn[i] == nil {
			return tokenCounts{req: ptr(float64(len(sw.completed))), outTok: ptr(out)}
		}
		in += *sw.activeIn[i]
	}
	return tokenCounts{req: ptr(float64(len(sw.completed))), inTok: ptr(float64(in)), outTok: ptr(out)}
}

// flops estimates the FLOPs of the ok requests completed in the window
// (whole requests: an approximation at the window's edges).
func (sw *servingWindow) flops(e *record.Energy, in RunInput) {
	evs := make([]record.RequestEvent, 0, len(sw.completed))
	for i := range sw.completed {
		if sw.completed[i].InputTokens == nil {
			e.FLOPsMethod = "unknown: the server reported no prompt token counts"
			return
		}
		evs = append(evs, asEvent(&sw.completed[i]))
	}
	if len(evs) == 0 {
		e.FLOPsMethod = "unknown: no request completed in the window"
		return
	}
	flopsMetrics(e, in, evs, nil)
	if e.Metrics[record.MFLOPs] != nil {
		e.FLOPsMethod += "; over the ok requests completed in the measure window, whole"
	}
}

// tpot is a request's time per output token after the first:
// (t_end − t_first_token) / (output tokens − 1); ok is false for one token.
func tpot(r record.RequestEvent) (float64, bool) {
	if r.OutputTokens <= 1 {
		return 0, false
	}
	return float64(r.TEndNS-r.TFirstNS) / float64(r.OutputTokens-1), true
}

// rates fills the rate, failure, goodput, send lag and TPOT figures.
func (sw *servingWindow) rates(m map[string]*float64, cfg *config.Serving) {
	dur := sw.w.DurationS()
	m[record.MOfferedRateRPS] = ptr(float64(len(sw.measured)) / dur)
	m[record.MAchievedRateRPS] = ptr(float64(len(sw.completed)) / dur)
	m[record.MRequestsFailed] = ptr(float64(sw.failed))
	var lag, tp []float64
	for i := range sw.measured {
		if l := sw.measured[i].SendLagNS; l != nil {
			lag = append(lag, float64(*l))
		}
	}
	for _, r := range sw.okSent {
		if v, ok := tpot(r); ok {
			tp = append(tp, v)
		}
	}
	ll, tl := stats.Latency(lag), stats.Latency(tp)
	m[record.MSendLagP50S], m[record.MSendLagP99S] = ll.P50, ll.P99
	m[record.MTPOTMeanS], m[record.MTPOTP50S], m[record.MTPOTP90S], m[record.MTPOTP99S] = tl.Mean, tl.P50, tl.P90, tl.P99
	if cfg == nil || !hasSLO(cfg.SLO) {
		return
	}
	good := 0
	for _, r := range sw.okSent {
		if meetsSLO(r, cfg.SLO) {
			good++
		}
	}
	m[record.MGoodputRPS] = ptr(float64(good) / dur)
	if len(sw.measured) > 0 {
		m[record.MSLOAttainment] = ptr(float64(good) / float64(len(sw.measured)))
	}
}

func hasSLO(s config.SLO) bool { return s.TTFTMs != nil || s.TPOTMs != nil || s.E2EMs != nil }

// meetsSLO: every stated objective met (value ≤ objective). A one-token
// request's TPOT counts as 0, as vLLM's benchmark counts it.
func meetsSLO(r record.RequestEvent, s config.SLO) bool {
	within := func(ns float64, limitMs *float64) bool { return limitMs == nil || ns <= *limitMs*1e6 }
	tp, _ := tpot(r)
	return within(float64(r.TFirstNS-r.TStartNS), s.TTFTMs) && within(tp, s.TPOTMs) && within(float64(r.TEndNS-r.TStartNS), s.E2EMs)
}

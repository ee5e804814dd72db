package aggregate

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// The serving fixture: one GPU whose power is constant in each phase —
// load 0–1 s 100 W, idle 1–3 s 80 W, warmup 3–4 s 200 W, measure 4–14 s
// 300 W, cooldown 14–15 s 200 W, then 80 W — sampled every 100 ms with an
// exact counter, so the measure window holds exactly 3000 J and the idle
// phase 160 J over 2 s. The load generator sends every 250 ms from 3 s to
// 15 s at a configured 4 requests/s: 4 in warmup, 40 in the window
// (measured request k, sent at 4 s + k × 250 ms, lag k mod 5 ms, TTFT
// 50 + k ms, 10 tokens 20 ms apart, 100 + k input tokens), 4 in cooldown.
// Request 10 fails (HTTP 503). The last warmup request (TTFT 150 ms)
// straddles the window's start: 5 of its tokens come out in it and it
// completes in it. Measured request 39 straddles the window's end: 8 of its
// tokens come out in it and it completes after it.
const (
	srvMeasureStart = 4000 * ms
	srvMeasureEnd   = 14000 * ms
	srvGPU          = "GPU-6f1c2a7e-0000-4000-8000-0000000000aa"
	srvRunID        = "5e5e5e5e5e5e5e5e-c1"
)

func srvPower(t int64) float64 {
	switch {
	case t < 1000*ms:
		return 100
	case t < 3000*ms:
		return 80
	case t < 4000*ms:
		return 200
	case t < 14000*ms:
		return 300
	case t < 15000*ms:
		return 200
	}
	return 80
}

// writeServingSamples writes the fixture's samples with the sampler's own
// writer: a reading every 100 ms, the counter exact (power is constant
// between ticks, each phase edge falling on a tick).
func writeServingSamples(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := power.NewWriter(f, power.Meta{Host: "node1", SamplerVersion: "test", IntervalNS: 100 * ms, PowerField: "instant",
		Devices: []power.Device{{Device: srvGPU, Source: "nvml", Scope: record.ScopeGPU}}, Sources: []string{"nvml"}, StartNS: t0})
	if err != nil {
		t.Fatal(err)
	}
	cum := 0.0
	n := int64(0)
	for tick := int64(0); tick <= 16000*ms; tick += 100 * ms {
		if tick > 0 {
			cum += srvPower(tick-100*ms) * 0.1
		}
		w.Append(power.Sample{T: t0 + tick, Source: "nvml", Device: srvGPU, PowerW: srvPower(tick), EnergyJ: cum, TempC: 50,
			Has: power.HasPower | power.HasEnergy | power.HasTemp})
		n++
	}
	if err := w.Close(power.Trailer{Rows: n, Ticks: n, EndNS: t0 + 16000*ms, Warnings: []string{}}); err != nil {
		t.Fatal(err)
	}
}

// okRequest is an ok request sent at sched ms with the given lag and TTFT
// (ms): 10 output tokens, the 9 after the first 20 ms apart.
func okRequest(id int, schedMS, lagMS, ttftMS int64, input int) record.Request {
	sched, lag := t0+schedMS*ms, lagMS*ms
	start := sched + lag
	first := start + ttftMS*ms
	itl := make([]int64, 9)
	for i := range itl {
		itl[i] = 20 * ms
	}
	return record.Request{Kind: record.KindRequest, V: 1, ID: id, InputTokens: ip(input), OutputTokens: 10, TokensSource: record.TokensUsage,
		MaxTokens: ip(10), TScheduledNS: &sched, SendLagNS: &lag, TStartNS: start, TFirstNS: &first, TEndNS: first + 180*ms,
		ITLNS: itl, Status: record.ReqOK, HTTPStatus: ip(200)}
}

func servingRequests() []record.Request {
	var rs []record.Request
	id := 0
	for k := -4; k < 44; k++ {
		sched := 4000 + 250*int64(k)
		var r record.Request
		switch {
		case k == -1:
			r = okRequest(id, sched, 1, 150, 100)
		case k < 0 || k >= 40:
			r = okRequest(id, sched, 1, 50, 100)
		default:
			r = okRequest(id, sched, int64(k%5), 50+int64(k), 100+k)
		}
		if k == 10 {
			msg := "HTTP 503: server overloaded"
			r.Status, r.HTTPStatus, r.Error = record.ReqHTTPError, ip(503), &msg
			r.InputTokens, r.OutputTokens, r.TFirstNS, r.ITLNS, r.TEndNS = nil, 0, nil, []int64{}, r.TStartNS+5*ms
		}
		rs = append(rs, r)
		id++
	}
	return rs
}

const servingConfigJSON = `{"model":"llem-tiny","backend":"native","serving":{"api":"completions","arrival":"constant","rate":4,` +
	`"duration_s":10,"idle_s":2,"warmup_s":1,"cooldown_s":1,"slo":{"ttft_ms":80,"tpot_ms":25,"e2e_ms":300}}}`

// buildServing writes the fixture's run directory under root and returns
// the input stream (a baseline at 70 W and the run record).
func buildServing(t *testing.T, root string, reqs []record.Request, config string) []byte {
	t.Helper()
	dir := filepath.Join(root, "runs", srvRunID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeServingSamples(t, filepath.Join(dir, "samples.arrows"))
	var lines []string
	for i := range reqs {
		b, err := json.Marshal(&reqs[i])
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	writeFile(t, filepath.Join(dir, "requests.ndjson"), strings.Join(lines, "\n")+"\n")
	var ev []string
	for _, x := range []record.Event{{Event: "hello", T: t0, Backend: "native", Version: "0.1", PID: 4242},
		{Event: "phase", T: t0 + 4000*ms, Phase: record.PhaseMeasure, Edge: record.EdgeStart},
		{Event: "phase", T: t0 + 14000*ms, Phase: record.PhaseMeasure, Edge: record.EdgeEnd}} {
		b, _ := json.Marshal(x)
		ev = append(ev, string(b))
	}
	writeFile(t, filepath.Join(dir, "events.ndjson"), strings.Join(ev, "\n")+"\n")
	base := record.Baseline{Kind: record.KindBaseline, V: 1, ID: "baseline-s", Study: "srv", StudyHash: "00aa11bb22cc33dd", Host: "node1",
		Method: "measured", Window: record.Window{StartNS: t0 - 31e9, EndNS: t0 - 1e9}, DurationS: 30, SampleFile: "baseline-s.arrows",
		Devices: []record.BaselineDevice{{Device: srvGPU, Source: "nvml", Scope: "gpu", PowerW: ptr(70), Samples: 300}}}
	run := record.Run{Experiment: record.Experiment{Kind: record.KindRun, V: 1, Study: "srv", StudyHash: "00aa11bb22cc33dd",
		ID: "5e5e5e5e5e5e5e5e", Cycle: 1, NCycles: 1, RunID: srvRunID, Backend: "native", Model: "llem-tiny",
		Config: json.RawMessage(config), Runner: record.Runner{Type: "local"}},
		Status: record.StatusOK, RunDir: dir, SampleFile: "samples.arrows", EventsFile: "events.ndjson",
		RequestsFile: "requests.ndjson", ServerLog: "server.log", BaselineID: "baseline-s", Samplers: []string{"nvml"},
		StartNS: t0, EndNS: t0 + 16000*ms, DurationS: 16,
		Phases: record.Phases{Load: win(0, 1000*ms), Idle: win(1000*ms, 3000*ms), Warmup: win(3000*ms, srvMeasureStart),
			Measure: win(srvMeasureStart, srvMeasureEnd), Cooldown: win(srvMeasureEnd, 15000*ms)},
		Host: record.Host{Hostname: "node1", OS: "linux", Arch: "amd64", CPUs: 16}, Devices: []string{srvGPU}, Attempt: 1,
		ModelFacts: &record.ModelFacts{Name: "llem-tiny", NonEmbeddingParameters: i64p(85_000_000), DType: "float16"}}
	var stream []byte
	for _, v := range []any{base, run} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(append(stream, b...), '\n')
	}
	return stream
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// aggregateServing runs the fixture through the aggregator with opt.
func aggregateServing(t *testing.T, reqs []record.Request, config string, opt Options) (*record.Energy, []RequestEnergy, string) {
	t.Helper()
	root := t.TempDir()
	stream := buildServing(t, root, reqs, config)
	var out strings.Builder
	w := record.NewWriter(&out)
	agg := New(Config{Options: opt, RequestFiles: true, Open: OpenArrow}, w)
	if err := agg.ReadAll(strings.NewReader(string(stream)), "serving.ndjson"); err != nil {
		t.Fatal(err)
	}
	if err := agg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(agg.Energies) != 1 {
		t.Fatalf("%d energy records", len(agg.Energies))
	}
	var res []RequestEnergy
	if b, err := os.ReadFile(filepath.Join(root, "runs", srvRunID, RequestsEnergyFile)); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var re RequestEnergy
			if err := json.Unmarshal([]byte(l), &re); err != nil {
				t.Fatal(err)
			}
			res = append(res, re)
		}
	}
	return agg.Energies[0], res, out.String()
}

func flagList(fl []record.Flag) string {
	var s []string
	for _, f := range fl {
		s = append(s, f.Code)
	}
	return strings.Join(s, ",")
}

func hasFlag(e *record.Energy, code string) bool {
	for _, f := range e.Flags {
		if f.Code == code {
			return true
		}
	}
	return false
}

// Every serving figure against its value computed by hand from the fixture.
func TestServingFigures(t *testing.T) {
	e, _, _ := aggregateServing(t, servingRequests(), servingConfigJSON, DefaultOptions())
	// Ok measured requests: k = 0…39 but 10. TTFT 50+k ms sorted: 50…59, 61…89
	// (39 values; numpy's linear percentiles: p50 at rank 19 = 70, p90 at
	// rank 34.2 = 85.2, p99 at rank 37.62 = 88.62). Mean (Σ(50+k) − 60)/39.
	ttftMean := (40*50 + 780 - 60) / 39.0 * 1e-3
	// Tokens in the window: 38 ok measured requests wholly inside (380), 8
	// of request 39's (13.843 s + 20 ms × j ≤ 14 s for j ≤ 7), 5 of the
	// straddling warmup request's (3.901 s + 20 ms × j ≥ 4 s for j ≥ 5).
	// Completions in the window: the 38 inside plus that warmup request.
	// Input tokens: the ok measured requests' (first token in the window):
	// Σ(100+k) − 110 = 4670. Good requests (TTFT ≤ 80 ms; TPOT 20 ≤ 25 ms;
	// E2E 230+k ≤ 300 ms): k ≤ 30 but 10, 30 of the 40 sent.
	want := map[string]float64{
		record.MDurationS: 10, record.MEnergyJ: 3000, record.MMeanPowerW: 300, record.MIdleJ: 700, record.MEnergyNetJ: 2300,
		record.MOfferedRateRPS: 4, record.MAchievedRateRPS: 3.9, record.MRequestsFailed: 1,
		record.MRequests: 39, record.MRequestsPerS: 3.9, record.MOutputTokens: 393, record.MInputTokens: 4670,
		record.MOutputTokensPerS: 39.3, record.MTotalTokensPerS: (4670 + 393) / 10.0,
		record.MJPerOutputToken: 3000 / 393.0, record.MJPerOutputTokenNet: 2300 / 393.0, record.MJPerRequest: 3000 / 39.0,
		record.MGoodputRPS: 3, record.MSLOAttainment: 0.75, record.MServerIdlePowerW: 80,
		record.MSendLagP50S: 0.002, record.MSendLagP99S: 0.004,
		record.MTTFTMeanS: ttftMean, record.MTTFTP50S: 0.070, record.MTTFTP90S: 0.0852, record.MTTFTP99S: 0.08862,
		record.ME2EMeanS: ttftMean + 0.18, record.ME2EP50S: 0.250, record.ME2EP90S: 0.2652, record.ME2EP99S: 0.26862,
		record.MITLMeanS: 0.02, record.MITLP50S: 0.02, record.MITLP99S: 0.02,
		record.MTPOTMeanS: 0.02, record.MTPOTP50S: 0.02, record.MTPOTP90S: 0.02, record.MTPOTP99S: 0.02,
		record.MLoadEnergyJ: 100, record.MWarmupEnergyJ: 200,
		// 2 × 85e6 parameters × (input + output) of the 39 completed:
		// 38 measured (4670 − 139 input of request 39, 380 output) and the
		// warmup one (100 + 10); no attention term without layers.
		record.MFLOPs: 2 * 85e6 * (4670 - 139 + 380 + 110),
	}
	for name, w := range want {
		got := e.Metrics[name]
		if got == nil {
			t.Errorf("%s is null, want %.9g", name, w)
			continue
		}
		if math.Abs(*got-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s = %.12g, want %.12g", name, *got, w)
		}
	}
	for _, p := range []string{record.PhaseLoad, record.PhaseIdle, record.PhaseWarmup, record.PhaseMeasure, record.PhaseCooldown} {
		if e.Phases[p] == nil {
			t.Errorf("phase %s missing from the energy record", p)
		}
	}
	if got := *e.Phases[record.PhaseCooldown].Scopes[record.ScopeGPU].GrossJ; math.Abs(got-200) > 1e-9 {
		t.Errorf("cooldown energy %v J, want 200", got)
	}
	// 1 of 40 failed: above the 1 % default; nothing else is wrong.
	if got := flagList(e.Flags); got != FlagRequestErrors {
		t.Errorf("flags %q, want only %s", got, FlagRequestErrors)
	}
}

// The per-request parts add up to the window's energy, and each request's
// window tokens to the window's output tokens.
func TestServingAttributionSums(t *testing.T) {
	e, res, _ := aggregateServing(t, servingRequests(), servingConfigJSON, DefaultOptions())
	if len(res) != 40 {
		t.Fatalf("%d requests attributed, want 40 (the 39 ok measured and the straddling warmup one)", len(res))
	}
	sum, tok := 0.0, 0.0
	for _, r := range res {
		if math.Abs(r.PrefillJ+r.DecodeJ+r.IdleShareJ+*r.WaitJ-r.EnergyJ) > 1e-9 {
			t.Errorf("request %d: parts do not add up", r.ID)
		}
		sum += r.EnergyJ
		tok += *r.WindowOutputTokens
	}
	if math.Abs(sum-*e.Metrics[record.MEnergyJ]) > 1e-9**e.Metrics[record.MEnergyJ] {
		t.Errorf("attributed %.12f J, the window holds %.12f J", sum, *e.Metrics[record.MEnergyJ])
	}
	if tok != *e.Metrics[record.MOutputTokens] {
		t.Errorf("window tokens sum to %v, output_tokens is %v", tok, *e.Metrics[record.MOutputTokens])
	}
}

// Serving attribution by hand: 200 W over a 2 s window on a 100 ms grid
// (20 J per interval). A is sent at 0 and emits at 0.25, 0.35, 0.45 s; B
// is sent at 0.3 s, waits, emits at 0.95 and 1.45 s.
func TestServingAttributionKnownShares(t *testing.T) {
	s := sample(constant, 100*ms, 3000*ms, nil)
	for i := range s.p {
		s.p[i], s.e[i] = 200, 200*sec(s.t[i])
	}
	w := record.Window{StartNS: 0, EndNS: 2000 * ms}
	grid := makeGrid(w, 100*ms, 20000)
	src := &SliceSource{Devs: []DeviceInfo{{Name: "GPU-x", Source: "nvml"}}, Interval: 100 * ms,
		Batches: []*Rows{{T: s.t, PowerW: s.p, EnergyJ: s.e, Dev: make([]int32, len(s.t))}}}
	tracks, err := Pass(src, SortedUnique(append([]int64{w.StartNS, w.EndNS}, grid...)), []record.Window{w})
	if err != nil {
		t.Fatal(err)
	}
	a := record.RequestEvent{ID: 0, InputTokens: 10, OutputTokens: 3, TStartNS: 0, TFirstNS: 250 * ms, TEndNS: 450 * ms, ITLNS: []int64{100 * ms, 100 * ms}}
	b := record.RequestEvent{ID: 1, InputTokens: 10, OutputTokens: 2, TStartNS: 300 * ms, TFirstNS: 950 * ms, TEndNS: 1450 * ms, ITLNS: []int64{500 * ms}}
	e := &record.Energy{Basis: "gpu", Phases: map[string]*record.PhaseEnergy{}, Metrics: map[string]*float64{}}
	de, _ := deviceEnergy(tracks[0], phaseWin{"measure", w}, 200*ms, nil, DefaultOptions(), 0, nil)
	e.Phases["measure"] = &record.PhaseEnergy{Devices: []record.DeviceEnergy{de}}
	got := servingRule.attribute(e, []record.RequestEvent{a, b}, grid, tracks)
	// A: waits 0–0.2 s alone (40 J), prefill token 0.2–0.3 (20 J), decode
	// 0.3–0.5 (40 J; B is in flight 0.3–0.4 but produced nothing there).
	// B: waits 0.5–0.9 and 1.0–1.4 (160 J), prefill 0.9–1.0 (20 J), decode
	// 1.4–1.5 (20 J). 1.5–2 s nothing in flight: 100 J by window tokens 3:2.
	for _, c := range []struct {
		got, want float64
		what      string
	}{{*got[0].WaitJ, 40, "A wait"}, {got[0].PrefillJ, 20, "A prefill"}, {got[0].DecodeJ, 40, "A decode"}, {got[0].IdleShareJ, 60, "A idle"},
		{*got[1].WaitJ, 160, "B wait"}, {got[1].PrefillJ, 20, "B prefill"}, {got[1].DecodeJ, 20, "B decode"}, {got[1].IdleShareJ, 40, "B idle"},
		{got[0].EnergyJ, 160, "A"}, {got[1].EnergyJ, 240, "B"}, {*got[0].JPerOutToken, 160 / 3.0, "A J/token"},
		{*got[0].SimpleJ, 240, "A simple"}, {*got[1].SimpleJ, 160, "B simple"}} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s: %.9f J, want %.9f", c.what, c.got, c.want)
		}
	}
}

// saturated fires on a queue that grows across the window (completions fall
// behind sends by more than the window's edges explain) just past its ratio,
// and not on a shortfall of one request that its edges explain.
func TestServingSaturation(t *testing.T) {
	opt := DefaultOptions()
	opt.ErrorThreshold, opt.TTFTTrendRatio = 0.5, 1000 // only the ratio under test may fire
	// The fixture: 3.9 of 4 offered = 97.5 %, one request short (the failed one).
	opt.SaturationRatio = 0.976
	if e, _, _ := aggregateServing(t, servingRequests(), servingConfigJSON, opt); hasFlag(e, FlagSaturated) {
		t.Errorf("one request short of offered is edge noise, yet saturated fired: %v", e.Flags)
	}
	// A growing queue: the last ten requests sent in the window wait 2.6 s
	// for their first token, so they finish after it: 3.0 of 4 = 75 %.
	reqs := servingRequests()
	for i := range reqs {
		if k := i - 4; k >= 30 && k < 40 {
			reqs[i] = okRequest(reqs[i].ID, 4000+250*int64(k), int64(k%5), 2600, 100+k)
		}
	}
	opt.SaturationRatio = 0.75
	e, _, _ := aggregateServing(t, reqs, servingConfigJSON, opt)
	if a := *e.Metrics[record.MAchievedRateRPS]; math.Abs(a-3.0) > 1e-9 {
		t.Fatalf("achieved %v requests/s, want 3.0", a)
	}
	if hasFlag(e, FlagSaturated) {
		t.Errorf("at the ratio saturated fired: %v", e.Flags)
	}
	opt.SaturationRatio = 0.751
	if e, _, _ = aggregateServing(t, reqs, servingConfigJSON, opt); !hasFlag(e, FlagSaturated) {
		t.Errorf("past the ratio saturated did not fire: %v", e.Flags)
	}
}

// Each flag fires just past its threshold and not at it.
func TestServingFlagThresholds(t *testing.T) {
	reqs := servingRequests()
	for _, c := range []struct {
		name string
		code string
		at   func(*Options) // the threshold equal to the fixture's figure
		past func(*Options) // just past it
	}{
		// send lag p99 is 4 ms
		{"lag", FlagGeneratorLagged, func(o *Options) { o.LagThresholdS = 0.004 }, func(o *Options) { o.LagThresholdS = 0.00399 }},
		// 1 of 40 failed = 2.5 %
		{"errors", FlagRequestErrors, func(o *Options) { o.ErrorThreshold = 0.025 }, func(o *Options) { o.ErrorThreshold = 0.0249 }},
		// TTFT medians: first quarter (k 0–8) 54 ms, last (k 31–39) 85 ms: 1.574×
		{"ttft trend", FlagSaturated, func(o *Options) { o.TTFTTrendRatio = 1.58 }, func(o *Options) { o.TTFTTrendRatio = 1.57 }},
		// 4 requests/s × 10 s = 40 expected
		{"expected requests", FlagWindowTooShort, func(o *Options) { o.MinWindowRequests = 40 }, func(o *Options) { o.MinWindowRequests = 40.01 }},
		// mean E2E 249.74 ms: the 10 s window is 40.04 of them
		{"e2e", FlagWindowTooShort, func(o *Options) { o.MinWindowE2E = 40 }, func(o *Options) { o.MinWindowE2E = 40.1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			opt := DefaultOptions()
			opt.ErrorThreshold = 0.5 // only the flag under test may fire
			c.at(&opt)
			e, _, _ := aggregateServing(t, reqs, servingConfigJSON, opt)
			if hasFlag(e, c.code) {
				t.Errorf("at the threshold %s fired: %v", c.code, e.Flags)
			}
			c.past(&opt)
			e, _, _ = aggregateServing(t, reqs, servingConfigJSON, opt)
			if !hasFlag(e, c.code) {
				t.Errorf("past the threshold %s did not fire: %v", c.code, e.Flags)
			}
			for _, f := range e.Flags {
				if f.Code == c.code && (f.Message == "" || f.Hint == "") {
					t.Errorf("flag without message or hint: %+v", f)
				}
			}
		})
	}
}

// Without an SLO goodput and attainment are null, not 0; without a
// schedule (closed loop) send lag is null and requests count from t_start.
func TestServingNulls(t *testing.T) {
	reqs := servingRequests()
	for i := range reqs {
		reqs[i].TScheduledNS, reqs[i].SendLagNS = nil, nil
	}
	e, _, _ := aggregateServing(t, reqs, `{"model":"llem-tiny","backend":"native","serving":{"concurrency":4,"duration_s":10}}`, DefaultOptions())
	for _, name := range []string{record.MGoodputRPS, record.MSLOAttainment, record.MSendLagP50S, record.MSendLagP99S} {
		if e.Metrics[name] != nil {
			t.Errorf("%s = %v, want null", name, *e.Metrics[name])
		}
	}
	// Sent by t_start: the lags moved no request across an edge.
	if got := *e.Metrics[record.MOfferedRateRPS]; got != 4 {
		t.Errorf("offered %v, want 4", got)
	}
}

// A bad line of the requests file: the run's serving figures are null, a
// flag names file:line and the field, the command exits non-zero, and the
// energy record is still written with its energy.
func TestServingBadRequestsFile(t *testing.T) {
	root := t.TempDir()
	stream := buildServing(t, root, servingRequests(), servingConfigJSON)
	path := filepath.Join(root, "runs", srvRunID, "requests.ndjson")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lines[2] = strings.Replace(lines[2], `"output_tokens":10`, `"output_tokens":-3`, 1)
	writeFile(t, path, strings.Join(lines, "\n"))
	out, stderr, code := runCmd(t, stream)
	if code == 0 {
		t.Fatalf("exit 0 with a bad requests file")
	}
	if !strings.Contains(stderr, path+":3:") || !strings.Contains(stderr, "output_tokens") {
		t.Errorf("stderr does not name file:line and field: %s", stderr)
	}
	var e record.Energy
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(l, `"kind":"energy"`) {
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !hasFlag(&e, FlagBadRequests) || e.Metrics[record.MOfferedRateRPS] != nil || e.Metrics[record.MEnergyJ] == nil || *e.Metrics[record.MEnergyJ] != 3000 {
		t.Errorf("want bad_requests, null rates and the 3000 J kept: flags %v", e.Flags)
	}
}

// The serving run's energy and summary records and its per-request file,
// as a person reads them.
func TestServingGolden(t *testing.T) {
	root := t.TempDir()
	stream := buildServing(t, root, servingRequests(), servingConfigJSON)
	out, stderr, code := runCmd(t, stream)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	counts, err := schemas.CheckNDJSON([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if counts["energy"] != 1 || counts["summary"] != 1 {
		t.Fatalf("records %v", counts)
	}
	dir := filepath.Join(root, "runs", srvRunID)
	golden(t, "serving.golden.ndjson", []byte(strings.ReplaceAll(out, dir, "RUN_DIR")))
	rb, err := os.ReadFile(filepath.Join(dir, RequestsEnergyFile))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "serving_requests_energy.golden.ndjson", rb)
	var s record.Summary
	if err := json.Unmarshal([]byte(strings.Split(strings.TrimSpace(out), "\n")[1]), &s); err != nil {
		t.Fatal(err)
	}
	if st := s.Metrics[record.MGoodputRPS]; st == nil || st.N != 1 || *st.Mean != 3 {
		t.Errorf("summary goodput_rps %+v, want n 1, mean 3", st)
	}
}

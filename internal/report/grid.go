package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/record"
)

// Markers used wherever an estimated figure or a flagged row appears.
const (
	EstMark = "†"
)

// grid is one table as every text format draws it.
type grid struct {
	Title string
	Head  []string
	Right []bool // right-aligned (numeric) columns
	Rows  [][]string
	Group int // leading columns whose repeated values are blanked (grouping)
	// Est and Flag mark rows holding estimated figures and flagged rows (HTML styles them).
	Est, Flag []bool
}

func (g *grid) add(row []string, est, flag bool) {
	g.Rows = append(g.Rows, row)
	g.Est = append(g.Est, est)
	g.Flag = append(g.Flag, flag)
}

// blanked returns the rows with repeated group values blanked.
func (g *grid) blanked() [][]string {
	out := make([][]string, len(g.Rows))
	for i, r := range g.Rows {
		out[i] = append([]string(nil), r...)
		if i == 0 {
			continue
		}
		prev := g.Rows[i-1]
		for c := 0; c < g.Group; c++ {
			if r[c] != prev[c] {
				break
			}
			out[i][c] = ""
		}
	}
	return out
}

func (rp *Report) metricHead() ([]string, []bool) {
	var h []string
	var right []bool
	for _, m := range rp.Metrics {
		h = append(h, m.Label)
		right = append(right, true)
	}
	return h, right
}

func mark(s string, est bool) string {
	if est && s != Dash {
		return s + " " + EstMark
	}
	return s
}

// configGrid: one row per config, metrics as mean ± 95 % CI over ok cycles.
func (rp *Report) configGrid() grid {
	mh, mr := rp.metricHead()
	g := grid{Title: "Configs (mean ± 95 % CI over ok cycles)", Group: len(rp.By)}
	g.Head = append(append(append([]string{}, rp.By...), "id", "runs ok"), mh...)
	g.Head = append(g.Head, "flags")
	g.Right = append(make([]bool, len(rp.By)+1), true)
	g.Right = append(append(g.Right, mr...), false)
	for _, c := range rp.Configs {
		ok, n := c.OK()
		row := append(append([]string{}, c.Keys...), shortID(c.ID), fmt.Sprintf("%d/%d", ok, n))
		for _, m := range rp.Metrics {
			s := c.Stat(m.Name)
			v := Dash
			if s != nil {
				v = FormatCI(s.Mean, s.CI95, m.Unit)
			}
			row = append(row, mark(v, c.Estimate && m.Energy))
		}
		var codes []string
		if c.Summary != nil {
			codes = flagCodes(c.Summary.Flags)
		}
		row = append(row, strings.Join(codes, ","))
		g.add(row, c.Estimate, len(codes) > 0)
	}
	return g
}

// runGrid: every run, grouped by config.
func (rp *Report) runGrid() grid {
	mh, mr := rp.metricHead()
	g := grid{Title: "Runs", Group: len(rp.By)}
	g.Head = append(append(append([]string{}, rp.By...), "run", "cycle", "status"), mh...)
	g.Head = append(g.Head, "flags")
	g.Right = append(make([]bool, len(rp.By)+1), true, false)
	g.Right = append(append(g.Right, mr...), false)
	for _, r := range rp.Runs {
		e := r.E
		row := append(append([]string{}, r.Config.Keys...), e.RunID, strconv.Itoa(e.Cycle), e.Status)
		for _, m := range rp.Metrics {
			row = append(row, mark(FormatSI(e.Metrics[m.Name], m.Unit), e.Estimate && m.Energy))
		}
		codes := flagCodes(e.Flags)
		row = append(row, strings.Join(codes, ","))
		g.add(row, e.Estimate, len(codes) > 0)
	}
	return g
}

// failedGrid: runs that did not finish ok, with their error.
func (rp *Report) failedGrid() grid {
	g := grid{Title: "Failed runs", Head: []string{"run", "status", "error"}, Right: []bool{false, false, false}}
	for _, r := range rp.Runs {
		if r.OK() {
			continue
		}
		g.add([]string{r.E.RunID, r.E.Status, errorText(r.E.Error)}, false, true)
	}
	return g
}

func errorText(e *record.Error) string {
	if e == nil {
		return Dash
	}
	s := e.Type
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Hint != "" {
		s += " — " + e.Hint
	}
	return oneLine(s)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// flagDescriptions say what each validity flag of llem-aggregate means.
var flagDescriptions = map[string]string{
	"short_window":           "measure window shorter than a few sensor update periods",
	"few_samples":            "too few power readings in the measure window",
	"counter_integral_gap":   "energy counter and power integral disagree",
	"thermal_drift":          "temperature drifted over the measure window",
	"throttling":             "the GPU throttled (power cap, thermal or slowdown)",
	"persistence_mode_off":   "GPU persistence mode was off",
	"other_processes_on_gpu": "another process was using the GPU",
	"estimate_source":        "energy is an estimate (no sensor)",
	"edge_samples_missing":   "no reading near a window edge (extrapolated)",
	"sample_gap":             "readings were dropped (gap in the samples)",
	"counter_wrapped":        "the energy counter wrapped or was reset (bridged as the message says)",
	"counter_rejected":       "counter steps the power cannot explain were replaced by the power integral",
	"duplicate_samples":      "rows repeating a timestamp: the first kept, counted once",
	"timestamp_ahead":        "rows stamped ahead of their neighbours (clock glitch) were dropped",
	"unordered_samples":      "samples that went back in time were skipped",
	"no_samples":             "no sample stream or no reading in a window: energy unknown",
	"no_baseline":            "no idle baseline: idle-adjusted figures unknown",
	"baseline_other_host":    "the baseline is from another host: not used, net unknown",
	"baseline_stale":         "the baseline is over 2 h from the run: idle power may have drifted",
	"baseline_other_device":  "the baseline has none of the run's devices: net unknown",
	"baseline_partial":       "the baseline lacks some of the run's devices: their net unknown",
	"baseline_no_idle_power": "the baseline has no idle power for a device: its net unknown",
	"net_clamped":            "idle exceeded gross energy: net clamped to 0 (a bound)",
	"no_measure_window":      "the worker reported no measure window",
	"no_request_events":      "no per-request events: latencies unknown",
	"bad_events":             "the events file had a bad line",
	"bad_requests":           "serving: the requests file was missing or had a bad line: serving figures unknown",
	"samples_truncated":      "the sample stream was cut short: figures cover the samples before the cut",
	"run_not_ok":             "the run did not finish ok",
	"high_cv":                "a key figure varies across cycles more than the threshold",
	"few_cycles":             "fewer than 3 ok cycles: the interval is wide or unknown",
	"some_runs_not_ok":       "some runs of the config did not finish ok",
	"mixed_basis":            "the runs of the config use different energy scopes",
	"runs_flagged":           "runs in the statistics carry validity flags",
	// Serving runs.
	"generator_lagged": "the load generator sent late (send lag over its limit): the offered load was below the configured one",
	"saturated":        "the server fell behind the offered load (achieved rate below offered, queue growing): latencies are of an overloaded server",
	"request_errors":   "some requests failed (HTTP error, timeout or error mid-stream): goodput and latencies cover the ok ones",
	"window_too_short": "the measure window held too few requests for steady rates and tail percentiles",
}

// FlagCount is one flag code and how many runs and configs carry it.
type FlagCount struct {
	Code        string
	Runs        int
	Configs     int
	Description string
}

// FlagCounts counts the flags of the report's runs and configs, sorted by code.
func (rp *Report) FlagCounts() []FlagCount {
	m := map[string]*FlagCount{}
	get := func(f record.Flag) *FlagCount {
		fc := m[f.Code]
		if fc == nil {
			d := flagDescriptions[f.Code]
			if d == "" {
				d = oneLine(f.Message)
			}
			fc = &FlagCount{Code: f.Code, Description: d}
			m[f.Code] = fc
		}
		return fc
	}
	for _, r := range rp.Runs {
		for _, code := range flagCodes(r.E.Flags) {
			for _, f := range r.E.Flags {
				if f.Code == code {
					get(f).Runs++
					break
				}
			}
		}
	}
	for _, c := range rp.Configs {
		if c.Summary == nil {
			continue
		}
		for _, code := range flagCodes(c.Summary.Flags) {
			for _, f := range c.Summary.Flags {
				if f.Code == code {
					get(f).Configs++
					break
				}
			}
		}
	}
	var out []FlagCount
	for _, fc := range m {
		out = append(out, *fc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// anyEstimate says whether any figure of the report is an estimate.
func (rp *Report) anyEstimate() bool {
	for _, c := range rp.Configs {
		if c.Estimate {
			return true
		}
	}
	return false
}

// headline describes the input in one or two lines.
func (rp *Report) headline() []string {
	var st []string
	for _, s := range rp.Studies {
		st = append(st, fmt.Sprintf("%s (%s)", s.Name, s.Hash))
	}
	ok, failed := 0, 0
	hosts := map[string]bool{}
	basis := map[string]int{}
	for _, r := range rp.Runs {
		if r.OK() {
			ok++
		} else {
			failed++
		}
		if r.E.Host != "" {
			hosts[r.E.Host] = true
		}
	}
	for _, c := range rp.Configs {
		if c.Basis != "" {
			basis[c.Basis]++
		}
	}
	var hs, bs []string
	for h := range hosts {
		hs = append(hs, h)
	}
	sort.Strings(hs)
	for b, n := range basis {
		bs = append(bs, fmt.Sprintf("%s for %d config%s", b, n, map[bool]string{true: "", false: "s"}[n == 1]))
	}
	sort.Strings(bs)
	lines := []string{"study " + strings.Join(st, ", ")}
	l := fmt.Sprintf("%d configs, %d runs (%d ok, %d not ok)", len(rp.Configs), len(rp.Runs), ok, failed)
	if len(hs) > 0 {
		l += " · host " + strings.Join(hs, ", ")
	}
	if len(bs) > 0 {
		l += " · energy basis (the scope the figures cover) " + strings.Join(bs, ", ")
	}
	return append(lines, l)
}

// legend lines shared by the text formats.
func (rp *Report) legend() []string {
	var l []string
	if rp.anyEstimate() {
		l = append(l, EstMark+" estimate: no energy sensor, the figure comes from a model of power, not a measurement: busy CPU cores × a fixed power per core, so runs that keep every core busy all show the same power (cores × W per core) with a near-zero interval"+rp.estimateModels())
	}
	l = append(l, rp.attributionLegend()...)
	l = append(l, "± half width of the 95 % confidence interval of the mean over ok cycles (Student t); "+Dash+" unknown")
	l = append(l, "energy figures are gross, over the measure phase, on each config's basis scope (gpu, or total = the named sum of the measured scopes)")
	l = append(l, rp.servingLegend()...)
	return append(l, rp.footprintLegend()...)
}

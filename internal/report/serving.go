package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/record"
)

// Serving load knobs a sweep can run over, in the order they are tried.
const (
	AxisRate        = "serving.rate"
	AxisConcurrency = "serving.concurrency"
)

// SLOTarget is the share of requests that must meet every stated SLO for a
// load to count as meeting the SLO: DistServe's attainment target, checked
// against the records' slo_attainment (the fraction of the window's requests
// meeting every SLO together, as vLLM counts a good request for goodput).
const SLOTarget = 0.9

// Verdicts of a serving series' headline.
const (
	VerdictMet     = "met"     // the SLO holds from the lowest load up to Best
	VerdictNone    = "none"    // the SLO fails already at the lowest load
	VerdictUnknown = "unknown" // the lowest load's slo_attainment is unknown
)

// servingSweep is the serving configs that sweep one load knob.
type servingSweep struct {
	Axis   string // AxisRate or AxisConcurrency
	Series []*servingSeries
}

// servingSeries is one curve: the configs that differ only in the knob.
type servingSeries struct {
	Label   string
	Keys    map[string]string // the config fields that tell this series from the sweep's others
	SLO     slo
	Points  []*servingPoint // by knob value
	Best    *servingPoint   // the headline: highest load with every load up to it meeting the SLO
	Verdict string          // "" where no SLO is stated
}

// slo is a config's serving.slo, in milliseconds; nil: not stated.
type slo struct{ TTFTms, TPOTms, E2Ems *float64 }

func (s slo) any() bool { return s.TTFTms != nil || s.TPOTms != nil || s.E2Ems != nil }

// text lists the stated objectives: "TTFT ≤ 500 ms, TPOT ≤ 50 ms".
func (s slo) text() string {
	var parts []string
	for _, o := range []struct {
		name string
		ms   *float64
	}{{"TTFT", s.TTFTms}, {"TPOT", s.TPOTms}, {"E2E", s.E2Ems}} {
		if o.ms != nil {
			parts = append(parts, o.name+" ≤ "+strconv.FormatFloat(*o.ms, 'g', -1, 64)+" ms")
		}
	}
	return strings.Join(parts, ", ")
}

// servingPoint is one config of a series.
type servingPoint struct {
	C     *Config
	X     float64
	XText string   // the knob's value as the config states it
	Met   *bool    // slo_attainment ≥ SLOTarget; nil: no SLO or unknown
	Flags []string // the config's and its runs' flag codes
}

// buildServing finds the serving sweeps of the input: serving configs
// grouped by every config field but the load knob.
func (rp *Report) buildServing() {
	taken := map[*Config]bool{}
	for _, axis := range []string{AxisRate, AxisConcurrency} {
		var cs []*Config
		for _, c := range rp.Configs {
			if v, ok := c.Flat[axis]; ok && v != Dash && !taken[c] {
				if _, err := strconv.ParseFloat(v, 64); err == nil {
					cs = append(cs, c)
				}
			}
		}
		if distinct(cs, axis) < 2 {
			continue
		}
		for _, c := range cs {
			taken[c] = true
		}
		rp.serving = append(rp.serving, newSweep(axis, cs))
	}
}

func distinct(cs []*Config, key string) int {
	seen := map[string]bool{}
	for _, c := range cs {
		seen[c.Flat[key]] = true
	}
	return len(seen)
}

// newSweep groups the configs into series (in report order) and orders each by the knob.
func newSweep(axis string, cs []*Config) *servingSweep {
	sw := &servingSweep{Axis: axis}
	byKey := map[string]*servingSeries{}
	for _, c := range cs {
		keys := map[string]string{}
		var parts []string
		for k, v := range c.Flat {
			if k != axis {
				keys[k] = v
				parts = append(parts, k+"="+v)
			}
		}
		sort.Strings(parts)
		id := strings.Join(parts, "\x00")
		s := byKey[id]
		if s == nil {
			s = &servingSeries{Keys: keys, SLO: configSLO(c)}
			byKey[id] = s
			sw.Series = append(sw.Series, s)
		}
		x, _ := strconv.ParseFloat(c.Flat[axis], 64)
		s.Points = append(s.Points, &servingPoint{C: c, X: x, XText: c.Flat[axis], Flags: pointFlags(c)})
	}
	labelSeries(sw.Series)
	for _, s := range sw.Series {
		sort.SliceStable(s.Points, func(i, j int) bool { return s.Points[i].X < s.Points[j].X })
		s.judge()
	}
	return sw
}

func configSLO(c *Config) slo {
	get := func(k string) *float64 {
		if v, err := strconv.ParseFloat(c.Flat["serving.slo."+k], 64); err == nil {
			return &v
		}
		return nil
	}
	return slo{TTFTms: get("ttft_ms"), TPOTms: get("tpot_ms"), E2Ems: get("e2e_ms")}
}

// pointFlags are the config's summary flag codes, then its runs' codes.
func pointFlags(c *Config) []string {
	var fs []record.Flag
	if c.Summary != nil {
		fs = append(fs, c.Summary.Flags...)
	}
	for _, r := range c.Runs {
		fs = append(fs, r.E.Flags...)
	}
	return flagCodes(fs)
}

// labelSeries names each series by the fields that differ between the
// series (words alone, numbers with their key), else by its model.
func labelSeries(ss []*servingSeries) {
	vals := map[string]map[string]bool{}
	for _, s := range ss {
		for k, v := range s.Keys {
			if vals[k] == nil {
				vals[k] = map[string]bool{}
			}
			vals[k][v] = true
		}
	}
	var vary []string
	for k, vs := range vals {
		if len(vs) > 1 || !allHave(ss, k) {
			vary = append(vary, k)
		}
	}
	vary = rankKeys(vary)
	for _, s := range ss {
		var parts []string
		for _, k := range vary {
			v, ok := s.Keys[k]
			if !ok {
				v = Dash
			}
			if _, err := strconv.ParseFloat(v, 64); err != nil && v != "true" && v != "false" && v != Dash {
				parts = append(parts, v)
			} else {
				parts = append(parts, shortKey(k)+"="+v)
			}
		}
		s.Label = strings.Join(parts, " ")
		if s.Label == "" {
			s.Label = s.Points[0].C.Model
		}
	}
}

func allHave(ss []*servingSeries, k string) bool {
	for _, s := range ss {
		if _, ok := s.Keys[k]; !ok {
			return false
		}
	}
	return true
}

// rankKeys orders keys as varyingKeys does: backend, model, precision, then the rest.
func rankKeys(ks []string) []string {
	rank := map[string]int{"backend": 0, "model": 1, "precision": 2}
	sort.Slice(ks, func(i, j int) bool {
		ri, ok := rank[ks[i]]
		if !ok {
			ri = 3
		}
		rj, ok := rank[ks[j]]
		if !ok {
			rj = 3
		}
		if ri != rj {
			return ri < rj
		}
		return ks[i] < ks[j]
	})
	return ks
}

// judge sets each point's SLO verdict and the series' headline: the highest
// load such that it and every lower load of the series meet the SLO. A load
// that meets it again above a failing one is not the headline: the server
// could not be run there without passing through the failing loads' regime,
// and a single lucky point is more likely noise than capacity.
func (s *servingSeries) judge() {
	if !s.SLO.any() {
		return
	}
	for _, p := range s.Points {
		if a := p.C.mean(record.MSLOAttainment); a != nil {
			met := *a >= SLOTarget
			p.Met = &met
		}
	}
	for _, p := range s.Points {
		if p.Met == nil || !*p.Met {
			break
		}
		s.Best = p
	}
	switch {
	case s.Best != nil:
		s.Verdict = VerdictMet
	case s.Points[0].Met == nil:
		s.Verdict = VerdictUnknown
	default:
		s.Verdict = VerdictNone
	}
}

// axisName is the knob as the report's text names it.
func axisName(axis string) string {
	if axis == AxisConcurrency {
		return "concurrency"
	}
	return "rate"
}

// axisValue formats a knob value: "4 req/s", "concurrency 8".
func axisValue(axis, v string) string {
	if axis == AxisConcurrency {
		return "concurrency " + v
	}
	return v + " req/s"
}

// headlineText says in one line up to which load the series meets its SLO,
// and at what energy per output token; "" without an SLO.
func (sw *servingSweep) headlineText(s *servingSeries) string {
	if s.Verdict == "" {
		return ""
	}
	who := ""
	if len(sw.Series) > 1 {
		who = " (" + s.Label + ")"
	}
	crit := fmt.Sprintf("%s for ≥ %.0f %% of requests", s.SLO.text(), SLOTarget*100)
	switch s.Verdict {
	case VerdictMet:
		b := s.Best
		st := b.C.Stat(record.MJPerOutputToken)
		j := Dash
		if st != nil {
			j = mark(FormatCI(st.Mean, st.CI95, "J"), b.C.Estimate)
		}
		return fmt.Sprintf("Serving%s: every SLO met up to %s (%s), at %s per output token", who, axisValue(sw.Axis, b.XText), crit, j)
	case VerdictNone:
		p := s.Points[0]
		a := p.C.Stat(record.MSLOAttainment)
		return fmt.Sprintf("Serving%s: no %s meets the SLO (%s); at the lowest, %s, %s of requests met it", who, axisName(sw.Axis), crit,
			axisValue(sw.Axis, p.XText), FormatCI(a.Mean, a.CI95, "rel"))
	}
	return fmt.Sprintf("Serving%s: SLO (%s) attainment unknown at the lowest %s, %s: the records have no slo_attainment", who, crit,
		axisName(sw.Axis), axisValue(sw.Axis, s.Points[0].XText))
}

// servingHeadlines are the headline lines of every sweep.
func (rp *Report) servingHeadlines() []string {
	var out []string
	if !rp.showConfigs() {
		return nil
	}
	for _, sw := range rp.serving {
		for _, s := range sw.Series {
			if l := sw.headlineText(s); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

// servingMetrics are the figures of the serving table, in column order after the knob.
var servingMetrics = []string{
	record.MOfferedRateRPS, record.MAchievedRateRPS, record.MGoodputRPS, record.MSLOAttainment,
	record.MJPerOutputToken, record.MTTFTP90S, record.MTPOTP90S, record.ME2EP90S,
}

// servingGrid is one sweep's table: one row per config, by series then load.
func (rp *Report) servingGrid(sw *servingSweep) grid {
	multi := len(sw.Series) > 1
	g := grid{Title: fmt.Sprintf("Serving sweep over %s (mean ± 95 %% CI over ok cycles)", sw.Axis)}
	if multi {
		g.Head, g.Right, g.Group = []string{"series"}, []bool{false}, 1
	}
	g.Head = append(g.Head, axisName(sw.Axis))
	g.Right = append(g.Right, true)
	for _, n := range servingMetrics {
		g.Head = append(g.Head, metricByName[n].Label)
		g.Right = append(g.Right, true)
	}
	g.Head = append(g.Head, "SLO met", "flags")
	g.Right = append(g.Right, false, false)
	for _, s := range sw.Series {
		for _, p := range s.Points {
			var row []string
			if multi {
				row = append(row, s.Label)
			}
			row = append(row, p.XText)
			for _, n := range servingMetrics {
				m, v := metricByName[n], Dash
				if st := p.C.Stat(n); st != nil {
					v = FormatCI(st.Mean, st.CI95, m.Unit)
				}
				row = append(row, mark(v, p.C.Estimate && m.Energy))
			}
			row = append(row, metText(p.Met), strings.Join(p.Flags, ","))
			g.add(row, p.C.Estimate, len(p.Flags) > 0)
		}
	}
	return g
}

func metText(met *bool) string {
	switch {
	case met == nil:
		return Dash
	case *met:
		return "yes"
	}
	return "no"
}

// servingGrids are the serving tables (none with --rows runs).
func (rp *Report) servingGrids() []grid {
	if !rp.showConfigs() {
		return nil
	}
	var gs []grid
	for _, sw := range rp.serving {
		gs = append(gs, rp.servingGrid(sw))
	}
	return gs
}

// servingLegend explains the serving table and headline; nil without a sweep.
func (rp *Report) servingLegend() []string {
	if len(rp.servingGrids()) == 0 {
		return nil
	}
	return []string{
		fmt.Sprintf("serving: rate = the configured load (serving.rate, requests/s; concurrency = requests kept in flight); offered and achieved = requests scheduled and completed ok per second of the measure window; goodput = ok requests meeting every stated SLO per second (%s without an SLO); p90 = 90th percentile over the window's requests; TPOT = (E2E − TTFT) / (output tokens − 1)", Dash),
		fmt.Sprintf("SLO met: at least %.0f %% of the requests sent in the measure window met every stated SLO together (slo_attainment ≥ %g, mean over ok cycles); the headline load is the highest with every lower load meeting it too", SLOTarget*100, SLOTarget),
	}
}

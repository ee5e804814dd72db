package report

import (
	"bufio"
	"fmt"
	"math"
	"strings"

	"github.com/llem/llem/internal/record"
)

// servingPlot is one of the four serving curves.
type servingPlot struct {
	id, title, metric, ylabel string
	slo                       func(slo) *float64 // the objective the plot draws, in ms; nil: none
	ideal                     bool               // draw goodput = offered rate
	log                       bool               // a log y axis where the values span more than a factor 20
}

var servingPlots = []servingPlot{
	{"energy", "Energy per output token", record.MJPerOutputToken, "energy per output token", nil, false, false},
	// Latencies past saturation grow without bound: a log axis keeps the knee readable.
	{"ttft", "TTFT p90", record.MTTFTP90S, "TTFT p90", func(s slo) *float64 { return s.TTFTms }, false, true},
	{"tpot", "TPOT p90", record.MTPOTP90S, "TPOT p90", func(s slo) *float64 { return s.TPOTms }, false, true},
	{"goodput", "Goodput", record.MGoodputRPS, "goodput", nil, true, false},
}

// htmlServing writes the serving section: headlines, the four curves side
// by side and the serving table, for each sweep; nothing without one.
func (rp *Report) htmlServing(bw *bufio.Writer, p printer) {
	gs := rp.servingGrids()
	if len(gs) == 0 {
		return
	}
	p("<section id=\"serving\">\n<h2>Serving: load sweep</h2>\n")
	for i, sw := range rp.serving {
		for _, s := range sw.Series {
			if l := sw.headlineText(s); l != "" {
				p("<p class=\"callout slo-%s\">%s</p>\n", s.Verdict, esc(l))
			}
		}
		p("<div class=\"serving-grid\">\n")
		for _, sp := range servingPlots {
			p("<figure id=\"fig-%s\">%s<figcaption>%s</figcaption></figure>\n", sw.plotID(sp), rp.plotServing(sw, sp), esc(sw.caption(sp)))
		}
		p("</div>\n<p class=\"note\">%s</p>\n", esc(sw.readingNote()))
		writeHTMLTable(bw, gs[i], "serving-table-"+axisName(sw.Axis))
	}
	p("</section>\n")
}

func (sw *servingSweep) plotID(sp servingPlot) string {
	return "serving-" + axisName(sw.Axis) + "-" + sp.id
}

func (sw *servingSweep) xLabel() string {
	if sw.Axis == AxisConcurrency {
		return "concurrency (requests kept in flight, serving.concurrency)"
	}
	return "offered rate (serving.rate, req/s)"
}

func (sw *servingSweep) caption(sp servingPlot) string {
	what := map[string]string{
		"energy":  "Energy per output token (gross, measure window, basis scope) against the load; the ring marks the headline: the highest load meeting every SLO.",
		"ttft":    "90th percentile time to first token against the load; dashed: the TTFT objective (serving.slo.ttft_ms).",
		"tpot":    "90th percentile time per output token, (E2E − TTFT) / (output tokens − 1), against the load; dashed: the TPOT objective (serving.slo.tpot_ms).",
		"goodput": "Requests per second that finished ok and met every stated SLO; dotted: goodput equal to the offered rate. Unknown without an SLO.",
	}[sp.id]
	if sw.Axis == AxisConcurrency {
		what = strings.ReplaceAll(what, " dotted: goodput equal to the offered rate.", "")
	}
	return what + " Points: mean over ok cycles; error bars: 95 % interval where n > 1; a point in a dashed ring carries validity flags (hover it)."
}

func (sw *servingSweep) readingNote() string {
	return fmt.Sprintf("A point meets the SLO when at least %.0f %% of its window's requests met every stated objective together (slo_attainment); the p90 lines are a guide, since a load can keep both p90s under their lines and still miss the joint target.", SLOTarget*100)
}

// curvePoint is one drawn point: the mean and its interval.
type curvePoint struct {
	p        *servingPoint
	y        float64
	lo, hi   *float64
	headline bool
}

// curves gathers each series' points of one figure (those with a mean).
func (sw *servingSweep) curves(metric string) ([][]curvePoint, int) {
	out := make([][]curvePoint, len(sw.Series))
	n := 0
	for i, s := range sw.Series {
		for _, p := range s.Points {
			st := p.C.Stat(metric)
			if st == nil || st.Mean == nil || math.IsNaN(*st.Mean) {
				continue
			}
			cp := curvePoint{p: p, y: *st.Mean, headline: p == s.Best}
			if st.N > 1 && st.CI95Lo != nil && st.CI95Hi != nil {
				cp.lo, cp.hi = st.CI95Lo, st.CI95Hi
			}
			out[i] = append(out[i], cp)
			n++
		}
	}
	return out, n
}

// sloLines are the distinct objectives of a figure, in seconds, with the
// series index whose colour draws it (-1: shared by every series).
func (sw *servingSweep) sloLines(sp servingPlot) (vals []float64, owner []int) {
	if sp.slo == nil {
		return nil, nil
	}
	seen := map[float64]int{}
	for i, s := range sw.Series {
		if v := sp.slo(s.SLO); v != nil {
			sec := *v / 1000
			if j, ok := seen[sec]; ok {
				owner[j] = -1
				continue
			}
			seen[sec] = len(vals)
			vals, owner = append(vals, sec), append(owner, i)
		}
	}
	if len(sw.Series) == 1 {
		for i := range owner {
			owner[i] = -1
		}
	}
	return vals, owner
}

// Layout of a serving figure.
const (
	srvW                       = 560.0
	srvL, srvR, srvT, srvPlotH = 74.0, 80.0, 16.0, 250.0
)

// servingScales are the figure's axes over the points, intervals, objectives and ideal line.
func (sw *servingSweep) servingScales(cs [][]curvePoint, slos []float64, ideal, log bool) (x, y scale, xt, yt []float64) {
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, s := range sw.Series {
		for _, p := range s.Points {
			xlo, xhi = math.Min(xlo, p.X), math.Max(xhi, p.X)
		}
	}
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for _, c := range cs {
		for _, p := range c {
			ylo, yhi = math.Min(ylo, p.y), math.Max(yhi, p.y)
			if p.hi != nil {
				yhi = math.Max(yhi, *p.hi)
			}
			if p.lo != nil && *p.lo > 0 {
				ylo = math.Min(ylo, *p.lo)
			}
		}
	}
	for _, v := range slos {
		ylo, yhi = math.Min(ylo, v), math.Max(yhi, v)
	}
	if ideal {
		yhi = math.Max(yhi, xhi)
	}
	logX := xlo > 0 && xhi/xlo > 20
	x, xt = niceScale(math.Max(0, xlo), xhi, srvL, srvW-srvR, logX, !logX)
	logY := log && ylo > 0 && yhi/ylo > 20
	y, yt = niceScale(ylo, yhi, srvT+srvPlotH, srvT, logY, !logY)
	return x, y, xt, yt
}

// plotServing draws one serving figure: a curve per series against the load.
func (rp *Report) plotServing(sw *servingSweep, sp servingPlot) string {
	m := metricByName[sp.metric]
	rows := (len(sw.Series)+1)/2 + 1
	H := srvT + srvPlotH + 64 + float64(rows)*16
	s := newSVG(sw.plotID(sp), sp.title+" against "+axisName(sw.Axis)+", per series", srvW, H)
	cs, n := sw.curves(sp.metric)
	if n == 0 {
		msg := "no config of the sweep has " + sp.metric
		if sp.metric == record.MGoodputRPS {
			msg = "goodput unknown: no SLO stated"
		}
		s.text(srvW/2, H/2, "middle", "note", msg)
		return s.end()
	}
	slos, owner := sw.sloLines(sp)
	x, y, xt, yt := sw.servingScales(cs, slos, sp.ideal && sw.Axis == AxisRate, sp.log)
	xunit := ""
	if sw.Axis == AxisRate {
		xunit = "req/s"
	}
	s.axes(x, y, xt, yt, xunit, m.Unit, sw.xLabel(), sp.ylabel)
	if sp.ideal && sw.Axis == AxisRate {
		top := math.Min(x.hi, y.hi)
		s.raw(`<path d="M%s %s L%s %s" class="ideal" data-series="ideal"><title>goodput = offered rate</title></path>`,
			f1(x.px(x.lo)), f1(y.px(math.Max(x.lo, y.lo))), f1(x.px(top)), f1(y.px(top)))
	}
	for i, v := range slos {
		cls := "slo-line"
		if owner[i] >= 0 {
			cls += " " + colour(owner[i])
		}
		py := y.px(v)
		s.raw(`<g data-series="slo"><line x1="%s" y1="%s" x2="%s" y2="%s" class="%s"/><title>objective: %s</title></g>`,
			f1(x.p0), f1(py), f1(x.p1), f1(py), cls, esc(formatSI(v, "s")))
		s.text(x.p1+4, py+4, "start", "slo-label", "SLO "+tickLabel(v, "s"))
	}
	for i, c := range cs {
		drawCurve(s, sw.Series[i], i, c, x, y, m, sw)
	}
	servingLegend(s, sw)
	return s.end()
}

// drawCurve draws one series: the line, the intervals, the points, rings
// round flagged points and the headline point.
func drawCurve(s *svg, se *servingSeries, i int, c []curvePoint, x, y scale, m *Metric, sw *servingSweep) {
	if len(c) == 0 {
		return
	}
	col := colour(i)
	xs, ys := make([]float64, len(c)), make([]float64, len(c))
	for k, p := range c {
		xs[k], ys[k] = x.px(p.p.X), y.px(p.y)
	}
	s.raw(`<path d="%s" class="trace %s" data-series="series:%s"><title>%s</title></path>`, path(xs, ys), col, esc(se.Label), esc(se.Label))
	for k, p := range c {
		if p.lo != nil && p.hi != nil {
			lo, hi := y.px(math.Max(*p.lo, y.lo)), y.px(math.Min(*p.hi, y.hi))
			s.raw(`<path d="M%s %s H%s M%s %s V%s M%s %s H%s" class="ci" data-series="ci95"/>`,
				f1(xs[k]-4), f1(lo), f1(xs[k]+4), f1(xs[k]), f1(lo), f1(hi), f1(xs[k]-4), f1(hi), f1(xs[k]+4))
		}
	}
	for k, p := range c {
		st := p.p.C.Stat(m.Name)
		est := p.p.C.Estimate && m.Energy
		tip := fmt.Sprintf("%s, %s: %s %s", se.Label, axisValue(sw.Axis, p.p.XText), mark(FormatCI(st.Mean, st.CI95, m.Unit), est), m.Label)
		if p.p.Met != nil {
			tip += "; SLO met: " + metText(p.p.Met)
		}
		cls := "spt " + col
		if p.p.Met != nil && !*p.p.Met {
			cls += " missed"
		}
		if est {
			cls += " est"
		}
		s.raw(`<circle cx="%s" cy="%s" r="4" class="%s" data-series="point"><title>%s</title></circle>`, f1(xs[k]), f1(ys[k]), cls, esc(tip))
		if len(p.p.Flags) > 0 {
			s.raw(`<circle cx="%s" cy="%s" r="8" class="flag-ring" data-series="flagged"><title>%s</title></circle>`,
				f1(xs[k]), f1(ys[k]), esc("flags: "+strings.Join(p.p.Flags, ", ")))
		}
		if p.headline && m.Name == record.MJPerOutputToken {
			s.raw(`<circle cx="%s" cy="%s" r="11" class="best %s" data-series="headline"><title>%s</title></circle>`,
				f1(xs[k]), f1(ys[k]), col, esc("headline: "+sw.headlineText(se)))
		}
	}
}

// servingLegend names the series and the marks under the x axis label.
func servingLegend(s *svg, sw *servingSweep) {
	s.raw(`<g class="legend">`)
	y0 := srvT + srvPlotH + 56
	for i, se := range sw.Series {
		lx := srvL + float64(i%2)*230
		ly := y0 + float64(i/2)*16
		s.raw(`<rect x="%s" y="%s" width="12" height="3" class="swatch %s"/>`, f1(lx), f1(ly-4), colour(i))
		s.text(lx+16, ly, "start", "", truncate(se.Label, 30))
	}
	ly := y0 + float64((len(sw.Series)+1)/2)*16
	s.raw(`<circle cx="%s" cy="%s" r="4" class="spt c9"/>`, f1(srvL+6), f1(ly-4))
	s.text(srvL+16, ly, "start", "", "SLO met or no SLO")
	s.raw(`<circle cx="%s" cy="%s" r="4" class="spt missed c9"/>`, f1(srvL+146), f1(ly-4))
	s.text(srvL+156, ly, "start", "", "SLO missed")
	s.raw(`<circle cx="%s" cy="%s" r="6" class="flag-ring"/>`, f1(srvL+256), f1(ly-4))
	s.text(srvL+268, ly, "start", "", "flagged")
	s.raw(`</g>`)
}

package report

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/llem/llem/internal/record"
)

const palette = 10 // series colours c0..c9 (CSS)

func colour(i int) string { return fmt.Sprintf("c%d", i%palette) }

// labelWidth is the left margin that fits the longest of labels (≈ 6.6 px a character at 12 px).
func labelWidth(labels []string, maxChars int) (float64, int) {
	n := 0
	for _, l := range labels {
		n = max(n, len([]rune(l)))
	}
	n = min(n, maxChars)
	return math.Max(60, float64(n)*7.3+16), n
}

// plotEnergyPerToken draws one bar per config: the mean energy per output
// token, its 95 % interval as an error bar, and each ok run as a dot.
func (rp *Report) plotEnergyPerToken() string {
	name := record.MJPerOutputToken
	labels := make([]string, len(rp.Configs))
	for i, c := range rp.Configs {
		labels[i] = rp.Label(c)
	}
	lw, maxc := labelWidth(labels, 36)
	const rowH, top, W = 24.0, 14.0, 760.0
	H := top + float64(len(rp.Configs))*rowH + 46
	right := 150.0
	lo, hi := rp.metricRange(name)
	// Figures over more than a factor 30 get a log axis, and lollipops
	// instead of bars (a bar's length means nothing on a log axis).
	logX := lo > 0 && !math.IsInf(lo, 1) && hi/lo > 30
	var x scale
	var xt []float64
	if logX {
		x, xt = niceScale(lo/1.5, hi*1.1, lw, W-right, true, false)
	} else {
		x, xt = niceScale(0, hi, lw, W-right, false, true)
	}
	y0 := top + float64(len(rp.Configs))*rowH
	col := rp.configColours()
	s := newSVG("energy-per-token", "Energy per output token per config, mean with 95 % interval and runs", W, H)
	xlabel := "energy per output token (measure phase, basis scope)"
	if logX {
		xlabel += ", log scale"
	}
	s.axes(x, scale{p0: y0, p1: top}, xt, nil, "J", "", xlabel, "")
	for i, c := range rp.Configs {
		yc := top + float64(i)*rowH + rowH/2
		est := ""
		if c.Estimate {
			est = " " + EstMark
		}
		s.raw(`<g class="row">`)
		s.raw(`<text x="%s" y="%s" text-anchor="end" class="ylabel"><title>%s</title>%s</text>`, f1(lw-8), f1(yc+4), esc(labels[i]+" ("+c.ID+")"), esc(truncate(labels[i], maxc)+est))
		st := c.Stat(name)
		if st == nil || st.Mean == nil {
			s.text(x.p0+6, yc+4, "start", "note", "no ok run")
			s.raw(`</g>`)
			continue
		}
		cls := "bar " + col(i)
		if c.Estimate {
			cls += " est"
		}
		ok, n := c.OK()
		tip := fmt.Sprintf("%s: %s per output token, %d/%d runs ok%s", labels[i], FormatCI(st.Mean, st.CI95, "J"), ok, n, est)
		if logX {
			s.line(x.p0, yc, x.px(*st.Mean), yc, "stem "+col(i))
			s.raw(`<circle cx="%s" cy="%s" r="5" class="%s" data-series="mean"><title>%s</title></circle>`, f1(x.px(*st.Mean)), f1(yc), cls, esc(tip))
		} else {
			s.raw(`<rect x="%s" y="%s" width="%s" height="%s" class="%s" data-series="mean"><title>%s</title></rect>`,
				f1(x.p0), f1(yc-7), f1(math.Max(0.5, x.px(*st.Mean)-x.p0)), "14.0", cls, esc(tip))
		}
		if st.CI95Lo != nil && st.CI95Hi != nil {
			lo, hi := x.px(math.Max(*st.CI95Lo, x.lo)), x.px(math.Min(*st.CI95Hi, x.hi))
			s.raw(`<path d="M%s %s V%s M%s %s H%s M%s %s V%s" class="ci" data-series="ci95"/>`,
				f1(lo), f1(yc-5), f1(yc+5), f1(lo), f1(yc), f1(hi), f1(hi), f1(yc-5), f1(yc+5))
		}
		k := 0
		for _, r := range c.Runs {
			if v := r.E.Metrics[name]; v != nil && r.OK() {
				dy := float64(k%3-1) * 3
				k++
				s.raw(`<circle cx="%s" cy="%s" r="2.2" class="dot" data-series="runs"><title>%s: %s</title></circle>`,
					f1(x.px(*v)), f1(yc+dy), esc(r.E.RunID), esc(mark(FormatSI(v, "J"), r.E.Estimate)))
			}
		}
		s.text(W-right+8, yc+4, "start", "value", FormatCI(st.Mean, st.CI95, "J")+est)
		s.raw(`</g>`)
	}
	return s.end()
}

// metricRange is the smallest positive config mean of metric name, and
// the largest value drawn for it (means, upper intervals, maxima, runs).
func (rp *Report) metricRange(name string) (lo, hi float64) {
	for _, c := range rp.Configs {
		if s := c.Stat(name); s != nil {
			for _, v := range []*float64{s.Mean, s.CI95Hi, s.Max} {
				if v != nil {
					hi = math.Max(hi, *v)
				}
			}
		}
		for _, r := range c.Runs {
			if v := r.E.Metrics[name]; v != nil && r.OK() {
				hi = math.Max(hi, *v)
			}
		}
	}
	lo = math.Inf(1)
	for _, c := range rp.Configs {
		if m := c.mean(name); m != nil && *m > 0 {
			lo = math.Min(lo, *m)
		}
	}
	return lo, hi
}

// configColours colours config i; with more configs than colours, by the
// first grouping column instead.
func (rp *Report) configColours() func(i int) string {
	if len(rp.Configs) <= palette || len(rp.By) == 0 {
		return colour
	}
	idx := map[string]int{}
	for _, c := range rp.Configs {
		if _, ok := idx[c.Keys[0]]; !ok {
			idx[c.Keys[0]] = len(idx)
		}
	}
	return func(i int) string { return colour(idx[rp.Configs[i].Keys[0]]) }
}

// paretoPoint is one config on a Pareto plot.
type paretoPoint struct {
	c            *Config
	i            int // config index (colour)
	x, y         float64
	xlo, xhi     *float64
	ylo, yhi     *float64
	front        bool
	label        string
	xtext, ytext string
}

// paretoFront marks the points no other point beats on both axes (x is
// minimised; y is maximised when maxY, else minimised) and returns them by x.
func paretoFront(pts []*paretoPoint, maxY bool) []*paretoPoint {
	better := func(a, b float64) bool { // a at least as good as b on y
		if maxY {
			return a >= b
		}
		return a <= b
	}
	var front []*paretoPoint
	for _, p := range pts {
		dominated := false
		for _, q := range pts {
			if q == p {
				continue
			}
			if q.x <= p.x && better(q.y, p.y) && (q.x < p.x || q.y != p.y) {
				dominated = true
				break
			}
		}
		p.front = !dominated
		if p.front {
			front = append(front, p)
		}
	}
	sort.Slice(front, func(i, j int) bool { return front[i].x < front[j].x })
	return front
}

// plotPareto draws energy per output token against another figure across the
// configs, with the Pareto front highlighted.
func (rp *Report) plotPareto(id, title string, ym *Metric, maxY bool) (string, int) {
	xm := metricByName[record.MJPerOutputToken]
	pts := rp.paretoPoints(xm, ym)
	const W, H = 760.0, 420.0
	const l, r, t, b = 76.0, 24.0, 34.0, 52.0
	s := newSVG(id, title, W, H)
	if len(pts) == 0 {
		s.text(W/2, H/2, "middle", "note", "no config has both figures")
		return s.end(), 0
	}
	front := paretoFront(pts, maxY)
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		xlo, xhi = math.Min(xlo, p.x), math.Max(xhi, p.x)
		ylo, yhi = math.Min(ylo, p.y), math.Max(yhi, p.y)
	}
	logX := xlo > 0 && xhi/xlo > 20
	logY := ylo > 0 && yhi/ylo > 20
	pad := func(lo, hi float64, log bool) (float64, float64) {
		if log {
			return lo / 1.3, hi * 1.3
		}
		d := (hi - lo) * 0.08
		if d == 0 {
			d = math.Abs(hi)*0.1 + 1e-12
		}
		return lo - d, hi + d
	}
	a, bb := pad(xlo, xhi, logX)
	x, xt := niceScale(math.Max(a, 0), bb, l, W-r, logX, false)
	a, bb = pad(ylo, yhi, logY)
	y, yt := niceScale(math.Max(a, 0), bb, H-b, t, logY, false)
	s.axes(x, y, xt, yt, xm.Unit, ym.Unit, "energy per output token (lower is better)", ym.Label+map[bool]string{true: " (higher is better)", false: " (lower is better)"}[maxY])
	clampX := func(v float64) float64 { return math.Max(x.p0, math.Min(x.p1, x.px(v))) }
	clampY := func(v float64) float64 { return math.Min(y.p0, math.Max(y.p1, y.px(v))) }
	// 95 % intervals as thin crosses, capped; an end cut at the plot's edge
	// gets an arrowhead instead, so a wide interval does not read as a
	// gridline.
	s.raw(`<g class="cis">`)
	for _, p := range pts {
		px, py := x.px(p.x), y.px(p.y)
		if p.xlo != nil && p.xhi != nil {
			a, b := x.px(*p.xlo), x.px(*p.xhi)
			ciBar(s, true, py, clampX(*p.xlo), clampX(*p.xhi), a != clampX(*p.xlo), b != clampX(*p.xhi))
		}
		if p.ylo != nil && p.yhi != nil {
			a, b := y.px(*p.ylo), y.px(*p.yhi)
			ciBar(s, false, px, clampY(*p.ylo), clampY(*p.yhi), a != clampY(*p.ylo), b != clampY(*p.yhi))
		}
	}
	s.raw(`</g>`)
	drawFront(s, front, x, y, maxY)
	for _, p := range pts {
		cls := "pt"
		if p.front {
			cls += " front"
		}
		if p.c.Estimate {
			cls += " est"
		}
		tip := fmt.Sprintf("%s: %s per output token, %s %s", p.label, p.xtext, p.ytext, ym.Label)
		if p.front {
			tip += " — on the Pareto front"
		}
		series := "config"
		if p.front {
			series = "front-point"
		}
		s.raw(`<circle cx="%s" cy="%s" r="%s" class="%s" data-series="%s"><title>%s</title></circle>`,
			f1(x.px(p.x)), f1(y.px(p.y)), map[bool]string{true: "5.5", false: "4"}[p.front], cls, series, esc(tip))
	}
	labelDominated(s, pts, labelFront(s, front, x, y, W-r, W), x, y, W-r, W)
	// Legend.
	s.raw(`<g class="legend" transform="translate(%s 8)"><circle cx="6" cy="6" r="5.5" class="pt front"/><text x="16" y="10">on the Pareto front (%d)</text><circle cx="176" cy="6" r="4" class="pt"/><text x="186" y="10">dominated (%d)</text><path d="M290 6 H316" class="front-line"/><text x="322" y="10">front; shaded: dominated</text></g>`,
		f1(W-r-450), len(front), len(pts)-len(front))
	return s.end(), len(front)
}

// paretoPoints are the configs with a mean of both figures.
func (rp *Report) paretoPoints(xm, ym *Metric) []*paretoPoint {
	var pts []*paretoPoint
	for i, c := range rp.Configs {
		sx, sy := c.Stat(xm.Name), c.Stat(ym.Name)
		if sx == nil || sy == nil || sx.Mean == nil || sy.Mean == nil {
			continue
		}
		p := &paretoPoint{c: c, i: i, x: *sx.Mean, y: *sy.Mean, xlo: sx.CI95Lo, xhi: sx.CI95Hi, ylo: sy.CI95Lo, yhi: sy.CI95Hi, label: rp.Label(c)}
		p.xtext = mark(FormatCI(sx.Mean, sx.CI95, xm.Unit), c.Estimate)
		p.ytext = FormatCI(sy.Mean, sy.CI95, ym.Unit)
		pts = append(pts, p)
	}
	return pts
}

// drawFront draws the front as a staircase: the boundary of the region its
// points dominate, from the plot's edge to its edge, the region shaded.
func drawFront(s *svg, front []*paretoPoint, x, y scale, maxY bool) {
	edge := y.p0 // maximising y: the dominated region lies below the front
	if !maxY {
		edge = y.p1
	}
	xs, ys := []float64{x.px(front[0].x)}, []float64{edge}
	for i, p := range front {
		if i > 0 {
			xs = append(xs, x.px(p.x))
			ys = append(ys, y.px(front[i-1].y))
		}
		xs = append(xs, x.px(p.x))
		ys = append(ys, y.px(p.y))
	}
	xs, ys = append(xs, x.p1), append(ys, y.px(front[len(front)-1].y))
	s.raw(`<path d="%s Z" class="dominated"/>`, path(append(xs, x.p1), append(ys, edge)))
	s.raw(`<path d="%s" class="front-line" data-series="front"/>`, path(xs, ys))
}

// labelBox is the extent of a placed label.
type labelBox struct{ x0, y0, x1, y1 float64 }

// labelFront labels the front's points, placed greedily where they overlap
// no label already placed (a point whose label finds no room keeps its
// tooltip). right is the plot area's right edge, width the figure's.
// ciBar draws one interval from a to b (pixels) along x (horiz) or y, at
// fixed on the other axis: a cap at an end inside the plot, an arrowhead
// pointing out at an end cut at the edge.
func ciBar(s *svg, horiz bool, fixed, a, b float64, cutA, cutB bool) {
	pt := func(along, across float64) (float64, float64) {
		if horiz {
			return along, fixed + across
		}
		return fixed + across, along
	}
	x1, y1 := pt(a, 0)
	x2, y2 := pt(b, 0)
	s.line(x1, y1, x2, y2, "ci faint")
	for _, end := range []struct {
		at, out float64
		cut     bool
	}{{a, math.Copysign(1, a-b), cutA}, {b, math.Copysign(1, b-a), cutB}} {
		if end.cut {
			tx, ty := pt(end.at, 0)
			lx, ly := pt(end.at-6*end.out, -3.5)
			rx, ry := pt(end.at-6*end.out, 3.5)
			s.raw(`<path d="M%s %s L%s %s L%s %s Z" class="ci-arrow"/>`, f1(tx), f1(ty), f1(lx), f1(ly), f1(rx), f1(ry))
			continue
		}
		cx1, cy1 := pt(end.at, -3)
		cx2, cy2 := pt(end.at, 3)
		s.line(cx1, cy1, cx2, cy2, "ci faint")
	}
}

// labelDominated labels the configs off the front, fainter, where a free
// place is left around them after the front's labels.
func labelDominated(s *svg, pts []*paretoPoint, placed []labelBox, x, y scale, right, width float64) {
	var dom []*paretoPoint
	for _, p := range pts {
		if !p.front {
			dom = append(dom, p)
		}
	}
	labelPoints(s, dom, placed, "ptlabel dom", x, y, right, width)
}

// labelFront labels the front's configs; it returns the boxes they took.
func labelFront(s *svg, front []*paretoPoint, x, y scale, right, width float64) []labelBox {
	return labelPoints(s, front, nil, "ptlabel", x, y, right, width)
}

// labelPoints labels pts where a free place is left beside placed.
func labelPoints(s *svg, pts []*paretoPoint, placed []labelBox, class string, x, y scale, right, width float64) []labelBox {
	for _, p := range pts {
		px, py := x.px(p.x), y.px(p.y)
		lab := truncate(p.label, 30)
		if p.c.Estimate {
			lab += " " + EstMark
		}
		wd := float64(len([]rune(lab)))*6.6 + 4
		if bx, ok := placeLabel(placed, px, py, wd, x.p0, y.p0, right, width, func(tx, ty float64, anchor string) {
			s.text(tx, ty, anchor, class, lab)
		}); ok {
			placed = append(placed, bx)
		}
	}
	return placed
}

// placeLabel tries the positions around point (px, py), right of it first
// unless that overflows, and draws the label at the first free one.
func placeLabel(placed []labelBox, px, py, wd, minX, maxY, right, width float64, draw func(tx, ty float64, anchor string)) (labelBox, bool) {
	for _, dy := range []float64{-8, 16, -22, 30, -36, 44, -50} {
		for _, left := range []bool{px+8+wd > right, px+8+wd <= right} {
			bx := labelBox{px + 8, py + dy - 11, px + 8 + wd, py + dy + 3}
			anchor, tx := "start", px+8
			if left {
				bx.x0, bx.x1 = px-8-wd, px-8
				anchor, tx = "end", px-8
			}
			if bx.x0 < minX || bx.x1 > width || bx.y0 < 0 || bx.y1 > maxY {
				continue
			}
			free := true
			for _, o := range placed {
				if bx.x0 < o.x1 && o.x0 < bx.x1 && bx.y0 < o.y1 && o.y0 < bx.y1 {
					free = false
					break
				}
			}
			if free {
				draw(tx, py+dy, anchor)
				return bx, true
			}
		}
	}
	return labelBox{}, false
}

// plotPower draws each device's power over one run, the phases shaded and
// the measured requests as spans underneath.
func (rp *Report) plotPower(run *Run, ss []*series, ev *eventData, intervalNS int64) string {
	const W, H = powerW, powerH
	const l, r, t, b = powerL, powerR, powerT, powerB
	title := "Power over time, run " + run.E.RunID
	s := newSVG("power", title, W, H)
	t0, t1 := int64(math.MaxInt64), int64(math.MinInt64)
	pmax := 0.0
	for _, d := range ss {
		if len(d.T) == 0 {
			continue
		}
		t0, t1 = min(t0, d.T[0]), max(t1, d.T[len(d.T)-1])
		for _, w := range d.W {
			pmax = math.Max(pmax, w)
		}
	}
	phases := runPhases(run, ev)
	for _, w := range phases {
		t0, t1 = min(t0, w.StartNS), max(t1, w.EndNS)
	}
	if t1 <= t0 {
		t1 = t0 + 1
	}
	sec := func(ns int64) float64 { return float64(ns-t0) / 1e9 }
	x, xt := niceScale(0, sec(t1), l, W-r, false, true)
	y, yt := niceScale(0, pmax*1.05, H-b, t, false, true)
	for _, name := range []string{record.PhaseLoad, record.PhaseWarmup, record.PhaseMeasure} {
		w, ok := phases[name]
		if !ok {
			continue
		}
		x0, x1 := x.px(sec(w.StartNS)), x.px(sec(w.EndNS))
		s.raw(`<rect x="%s" y="%s" width="%s" height="%s" class="phase ph-%s" data-series="phase:%s"><title>%s: %.3f s</title></rect>`,
			f1(x0), f1(t), f1(math.Max(1, x1-x0)), f1(H-b-t), name, name, name, w.DurationS())
		if x1-x0 > float64(len(name))*8+6 {
			s.text((x0+x1)/2, t-8, "middle", "phlabel", name)
		}
	}
	s.axes(x, y, xt, yt, "s", "W", "time since the start of the run", "power")
	for i, d := range ss {
		xs := make([]float64, len(d.T))
		ys := make([]float64, len(d.T))
		for k := range d.T {
			xs[k], ys[k] = x.px(sec(d.T[k])), y.px(d.W[k])
		}
		s.raw(`<path d="%s" class="trace %s" data-series="device:%s"><title>%s (%s, %s): %d readings</title></path>`,
			path(xs, ys), colour(i), esc(d.Device), esc(d.Device), esc(d.Scope), esc(d.Source), d.Rows)
	}
	powerLegend(s, ss, ev, phases, x, sec)
	return s.end()
}

// Layout of the power plot: size and margins (left, right, top, bottom).
const (
	powerW, powerH                 = 760.0, 400.0
	powerL, powerR, powerT, powerB = 64.0, 20.0, 26.0, 90.0
)

// runPhases are the run's phase windows, from its energy record, else from
// its events.
func runPhases(run *Run, ev *eventData) map[string]record.Window {
	phases := map[string]record.Window{}
	for name, ph := range run.E.Phases {
		if ph != nil {
			phases[name] = ph.Window
		}
	}
	if ev != nil {
		for name, w := range ev.Phases {
			if _, ok := phases[name]; !ok && w.StartNS > 0 && w.EndNS > w.StartNS {
				phases[name] = w
			}
		}
	}
	return phases
}

// powerLegend draws the requests under the axis and the legend of phases
// and devices.
func powerLegend(s *svg, ss []*series, ev *eventData, phases map[string]record.Window, x scale, sec func(int64) float64) {
	const W, H = powerW, powerH
	const l, r, t, b = powerL, powerR, powerT, powerB
	// Requests as spans in four lanes under the axis.
	if ev != nil && len(ev.Requests) > 0 && len(ev.Requests) <= 4000 {
		s.raw(`<g class="requests" data-series="requests">`)
		for k, q := range ev.Requests {
			if q.EndNS <= q.StartNS {
				continue
			}
			ly := H - b + 40 + float64(k%4)*3
			s.line(x.px(sec(q.StartNS)), ly, math.Max(x.px(sec(q.StartNS))+0.5, x.px(sec(q.EndNS))), ly, "req")
		}
		s.raw(`</g>`)
		s.text(l-6, H-b+46, "end", "tick", "requests")
	}
	// Legend.
	s.raw(`<g class="legend">`)
	lx := l + 10
	for _, name := range []string{record.PhaseLoad, record.PhaseWarmup, record.PhaseMeasure} {
		if _, ok := phases[name]; ok {
			s.raw(`<rect x="%s" y="%s" width="12" height="10" class="phase ph-%s"/>`, f1(W-r-250+lx-l-10), f1(H-10-9), name)
			s.text(W-r-250+lx-l-10+16, H-10, "start", "", name)
			lx += 16 + float64(len(name))*6.4 + 14
		}
	}
	lx = l + 10
	for i, d := range ss {
		name := d.Device
		if d.Source == "estimate" {
			name += " " + EstMark
		}
		s.raw(`<rect x="%s" y="%s" width="12" height="3" class="swatch %s"/>`, f1(lx), f1(t+8), colour(i))
		s.text(lx+16, t+12, "start", "", truncate(name, 30))
		lx += 16 + float64(len([]rune(truncate(name, 30))))*6.4 + 16
	}
	s.raw(`</g>`)
}

// latencyData is one config's latencies, sorted.
type latencyData struct {
	c      *Config
	i      int
	vals   []float64
	approx bool // from percentiles of the records, not from request events
}

// plotLatency draws the empirical distribution (CDF) of one latency per config.
func (rp *Report) plotLatency(id, what string, data []latencyData) string {
	const W = 760.0
	const l, r, t = 64.0, 20.0, 14.0
	legendRows := (len(data) + 2) / 3
	H := 330.0 + float64(legendRows)*16
	b := H - 270
	s := newSVG(id, what+" distribution per config", W, H)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, d := range data {
		if len(d.vals) > 0 {
			lo, hi = math.Min(lo, d.vals[0]), math.Max(hi, d.vals[len(d.vals)-1])
		}
	}
	if math.IsInf(lo, 0) {
		s.text(W/2, H/2, "middle", "note", "no latencies recorded")
		return s.end()
	}
	logX := lo > 0 && hi/lo > 20
	x, xt := niceScale(math.Max(0, lo), hi, l, W-r, logX, !logX)
	// Quartile ticks on the fraction axis rather than niceScale's fifths.
	y, _ := niceScale(0, 1, H-b, t, false, true)
	yt := []float64{0, 0.25, 0.5, 0.75, 1}
	s.axes(x, y, xt, yt, "s", "rel", what, "requests at or below")
	for _, d := range data {
		if len(d.vals) == 0 {
			continue
		}
		n := len(d.vals)
		var xs, ys []float64
		step := max(1, n/300)
		prevY := 0.0
		for k := 0; k < n; k += step {
			px := x.px(d.vals[k])
			xs = append(xs, px, px)
			fy := float64(k+1) / float64(n)
			if d.approx {
				fy = approxQ[k]
			}
			ys = append(ys, y.px(prevY), y.px(fy))
			prevY = fy
		}
		if last := x.px(d.vals[n-1]); len(xs) > 0 && xs[len(xs)-1] != last {
			xs = append(xs, last, last)
			ys = append(ys, y.px(prevY), y.px(1))
		}
		cls := "trace " + colour(d.i)
		if d.approx {
			cls += " approx"
		}
		label := rp.Label(d.c)
		s.raw(`<path d="%s" class="%s" data-series="config:%s"><title>%s: %d requests%s</title></path>`,
			path(xs, ys), cls, esc(label), esc(label), n, map[bool]string{true: " (from percentiles)", false: ""}[d.approx])
	}
	s.raw(`<g class="legend">`)
	for k, d := range data {
		lx := l + float64(k%3)*230
		ly := H - b + 60 + float64(k/3)*16
		label := truncate(rp.Label(d.c), 34)
		if d.approx {
			label += " (percentiles)"
		}
		s.raw(`<rect x="%s" y="%s" width="12" height="3" class="swatch %s"/>`, f1(lx), f1(ly-4), colour(d.i))
		s.text(lx+16, ly, "start", "", label)
	}
	s.raw(`</g>`)
	return s.end()
}

// approxQ are the quantiles of the points built from a record's percentiles.
var approxQ = []float64{0, 0.5, 0.9, 0.95, 0.99, 1}

// latencyFromRecords builds quantile points from the runs' percentile
// summaries (mean across runs at each quantile) when no events are readable.
func latencyFromRecords(c *Config, what string) []float64 {
	sums := make([]float64, 6)
	n := 0
	for _, r := range c.Runs {
		if !r.OK() {
			continue
		}
		var lat *record.Latency
		switch what {
		case "ttft":
			lat = r.E.TTFT
		case "e2e":
			lat = r.E.E2E
		}
		if lat == nil || lat.Min == nil || lat.P50 == nil || lat.P90 == nil || lat.P95 == nil || lat.P99 == nil || lat.Max == nil {
			continue
		}
		for k, v := range []*float64{lat.Min, lat.P50, lat.P90, lat.P95, lat.P99, lat.Max} {
			sums[k] += *v
		}
		n++
	}
	if n == 0 {
		return nil
	}
	for k := range sums {
		sums[k] /= float64(n)
	}
	return sums
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

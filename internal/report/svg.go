package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

var nan = math.NaN()

// scale maps a data interval onto a pixel interval, linearly or by log10.
type scale struct {
	lo, hi float64 // data
	p0, p1 float64 // pixels
	log    bool
}

func (s scale) px(v float64) float64 {
	a, b, x := s.lo, s.hi, v
	if s.log {
		a, b, x = math.Log10(a), math.Log10(b), math.Log10(math.Max(v, s.lo/10))
	}
	if b == a {
		return (s.p0 + s.p1) / 2
	}
	return s.p0 + (x-a)/(b-a)*(s.p1-s.p0)
}

// niceScale widens [lo, hi] to nice round limits and returns its ticks.
// With log it uses decades (and 2, 5 within them when there are few decades).
func niceScale(lo, hi, p0, p1 float64, log bool, zero bool) (scale, []float64) {
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		lo, hi = 0, 1
	}
	if log && lo > 0 {
		a, b := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if a == b {
			b++
		}
		var ticks []float64
		for e := a; e <= b; e++ {
			base := math.Pow(10, e)
			ticks = append(ticks, base)
			if b-a <= 2 && e < b {
				ticks = append(ticks, 2*base, 5*base)
			}
		}
		return scale{lo: math.Pow(10, a), hi: math.Pow(10, b), p0: p0, p1: p1, log: true}, ticks
	}
	if zero {
		lo = math.Min(lo, 0)
		hi = math.Max(hi, 0)
	}
	if hi == lo {
		if hi == 0 {
			hi = 1
		} else {
			d := math.Abs(hi) * 0.1
			lo, hi = lo-d, hi+d
		}
	}
	step := niceStep((hi - lo) / 5)
	nlo, nhi := math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	var ticks []float64
	// At most a dozen ticks, also where the step vanishes against the
	// magnitude (1e20 + 1: v += step would not move).
	for k := 0; k <= 12; k++ {
		v := nlo + float64(k)*step
		if v > nhi+step/2 {
			break
		}
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return scale{lo: nlo, hi: nhi, p0: p0, p1: p1}, ticks
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	f := raw / e
	switch {
	case f <= 1:
		return e
	case f <= 2:
		return 2 * e
	case f <= 5:
		return 5 * e
	}
	return 10 * e
}

// tickLabel formats a tick with an SI prefix, without trailing zeros: "5 mJ".
func tickLabel(v float64, unit string) string {
	if v == 0 {
		return "0"
	}
	if unit == "rel" {
		return strconv.FormatFloat(v*100, 'g', 3, 64) + " %"
	}
	if unit == "" && math.Abs(v) >= 0.01 && math.Abs(v) < 1e4 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	e := unitPrefix(prefixFor(v), v, unit)
	s := strconv.FormatFloat(v/math.Pow10(e), 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return joinUnit(s, prefixSym(e), unit)
}

// svg builds one plot's markup.
type svg struct {
	b    strings.Builder
	w, h float64
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func esc(s string) string { return html.EscapeString(s) }

func newSVG(id, title string, w, h float64) *svg {
	s := &svg{w: w, h: h}
	fmt.Fprintf(&s.b, `<svg class="plot" id="%s" data-plot="%s" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s">`,
		esc(id), esc(id), f1(w), f1(h), f1(w), f1(h), esc(title))
	fmt.Fprintf(&s.b, "<title>%s</title>", esc(title))
	return s
}

func (s *svg) raw(format string, a ...any) { fmt.Fprintf(&s.b, format, a...) }

func (s *svg) text(x, y float64, anchor, class, t string) {
	fmt.Fprintf(&s.b, `<text x="%s" y="%s" text-anchor="%s" class="%s">%s</text>`, f1(x), f1(y), anchor, class, esc(t))
}

func (s *svg) line(x1, y1, x2, y2 float64, class string) {
	fmt.Fprintf(&s.b, `<line x1="%s" y1="%s" x2="%s" y2="%s" class="%s"/>`, f1(x1), f1(y1), f1(x2), f1(y2), class)
}

func (s *svg) end() string {
	s.b.WriteString("</svg>")
	return s.b.String()
}

// axes draws the frame, grid and tick labels of an x/y plot.
func (s *svg) axes(x, y scale, xt, yt []float64, xunit, yunit, xlabel, ylabel string) {
	s.raw(`<g class="axes">`)
	for _, t := range xt {
		px := x.px(t)
		s.line(px, y.p0, px, y.p1, "grid")
		s.text(px, y.p0+16, "middle", "tick", tickLabel(t, xunit))
	}
	for _, t := range yt {
		py := y.px(t)
		s.line(x.p0, py, x.p1, py, "grid")
		s.text(x.p0-6, py+4, "end", "tick", tickLabel(t, yunit))
	}
	s.line(x.p0, y.p0, x.p1, y.p0, "axis")
	s.line(x.p0, y.p0, x.p0, y.p1, "axis")
	s.text((x.p0+x.p1)/2, y.p0+34, "middle", "label", xlabel)
	s.raw(`<text transform="translate(14 %s) rotate(-90)" text-anchor="middle" class="label">%s</text>`, f1((y.p0+y.p1)/2), esc(ylabel))
	s.raw(`</g>`)
}

// path makes an SVG path through points.
func path(xs, ys []float64) string {
	var b strings.Builder
	for i := range xs {
		if i == 0 {
			b.WriteString("M")
		} else {
			b.WriteString(" L")
		}
		b.WriteString(f1(xs[i]))
		b.WriteByte(' ')
		b.WriteString(f1(ys[i]))
	}
	return b.String()
}

// truncate shortens s to n runes with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

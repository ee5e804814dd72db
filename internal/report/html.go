package report

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llem/llem/internal/record"
)

// maxLatencyConfigs bounds the configs drawn in one latency plot.
const maxLatencyConfigs = 10

// htmlData is what the HTML report reads from the run directories.
type htmlData struct {
	runs      map[*Run]*record.Run // run.json
	events    map[*Run]*eventData
	missing   int // runs whose directory or files could not be read
	powerRun  *Run
	power     []*series
	interval  int64
	sampler   string
	powerNote string
}

func (rp *Report) loadRunData(ctx context.Context, log io.Writer) *htmlData {
	d := &htmlData{runs: map[*Run]*record.Run{}, events: map[*Run]*eventData{}}
	for _, r := range rp.Runs {
		if ctx.Err() != nil {
			return d
		}
		if r.Dir == "" {
			d.missing++
			continue
		}
		rr, err := readRunJSON(r.Dir)
		if err != nil {
			d.missing++
			continue
		}
		d.runs[r] = rr
		if r.OK() {
			name := rr.EventsFile
			if name == "" {
				name = "events.ndjson"
			}
			if ev, err := readEvents(filepath.Join(r.Dir, name)); err == nil {
				d.events[r] = ev
			}
		}
	}
	if d.missing > 0 {
		fmt.Fprintf(log, "llem-report: %d of %d run directories could not be read (moved? try --root): provenance and latency plots use the records alone there\n", d.missing, len(rp.Runs))
	}
	// The run whose power is plotted.
	var cands []*Run
	if rp.Opt.Run != "" {
		for _, r := range rp.Runs {
			if r.E.RunID == rp.Opt.Run {
				cands = []*Run{r}
			}
		}
		if cands == nil {
			d.powerNote = "run " + rp.Opt.Run + " (--run) is not in the input"
			fmt.Fprintf(log, "llem-report: --run %s: no such run in the input\n", rp.Opt.Run)
		}
	} else {
		for _, r := range rp.Runs {
			if r.OK() && d.runs[r] != nil {
				cands = append(cands, r)
			}
		}
	}
	for _, r := range cands {
		file := "samples.arrows"
		if rr := d.runs[r]; rr != nil && rr.SampleFile != "" {
			file = rr.SampleFile
		}
		ss, meta, err := readPower(filepath.Join(r.Dir, file), math.MinInt64, math.MaxInt64, 1600)
		if err != nil || len(ss) == 0 {
			if rp.Opt.Run != "" {
				d.powerNote = fmt.Sprintf("no power readings for run %s: %v", r.E.RunID, err)
				fmt.Fprintf(log, "llem-report: --run %s: %v\n", r.E.RunID, err)
			}
			continue
		}
		d.powerRun, d.power, d.interval, d.sampler = r, ss, meta.IntervalNS, meta.SamplerVersion
		if _, ok := d.events[r]; !ok {
			if ev, err := readEvents(filepath.Join(r.Dir, "events.ndjson")); err == nil {
				d.events[r] = ev
			}
		}
		break
	}
	if d.powerRun == nil && d.powerNote == "" {
		d.powerNote = "no run of the input has a readable sample file (run directories moved? try --root)"
	}
	return d
}

// latencies gathers each config's request latencies (pooled over its ok runs).
func (rp *Report) latencies(d *htmlData, what string) ([]latencyData, int) {
	var all []latencyData
	for i, c := range rp.Configs {
		ld := latencyData{c: c, i: i}
		for _, r := range c.Runs {
			ev := d.events[r]
			if ev == nil || !r.OK() {
				continue
			}
			for _, q := range ev.Requests {
				v := q.E2E
				if what == "ttft" {
					v = q.TTFT
				}
				if !math.IsNaN(v) {
					ld.vals = append(ld.vals, v)
				}
			}
		}
		if len(ld.vals) == 0 {
			ld.vals, ld.approx = latencyFromRecords(c, what), true
		}
		if len(ld.vals) > 0 {
			sort.Float64s(ld.vals)
			all = append(all, ld)
		}
	}
	total := len(all)
	if total <= maxLatencyConfigs {
		return all, total
	}
	// Too many to tell apart: the configs on the energy–throughput front first,
	// then the lowest energy per output token.
	rank := map[*Config]int{}
	var pts []*paretoPoint
	for _, c := range rp.Configs {
		sx, sy := c.Stat(record.MJPerOutputToken), c.Stat(record.MOutputTokensPerS)
		if sx != nil && sy != nil && sx.Mean != nil && sy.Mean != nil {
			pts = append(pts, &paretoPoint{c: c, x: *sx.Mean, y: *sy.Mean})
		}
	}
	for _, p := range paretoFront(pts, true) {
		rank[p.c] = -1
	}
	sort.SliceStable(all, func(i, j int) bool {
		ri, rj := rank[all[i].c], rank[all[j].c]
		if ri != rj {
			return ri < rj
		}
		return cmpNum(all[i].c.mean(record.MJPerOutputToken), all[j].c.mean(record.MJPerOutputToken), false) < 0
	})
	all = all[:maxLatencyConfigs]
	sort.SliceStable(all, func(i, j int) bool { return all[i].i < all[j].i })
	return all, total
}

// WriteHTML writes one self-contained HTML file: inline CSS and SVG, no
// script, no external resource.
func (rp *Report) WriteHTML(ctx context.Context, w, log io.Writer) error {
	d := rp.loadRunData(ctx, log)
	bw := bufio.NewWriterSize(w, 1<<16)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	title := rp.Opt.Title
	if title == "" {
		var names []string
		for _, s := range rp.Studies {
			names = append(names, s.Name)
		}
		title = "llem report — " + strings.Join(names, ", ")
	}
	p("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	style := css
	if len(rp.servingGrids()) > 0 {
		style += servingCSS
	}
	p("<meta name=\"generator\" content=\"llem-report %s\">\n<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n", Version, esc(title), style)
	p("<header><h1>%s</h1>\n", esc(title))
	for _, l := range rp.headline() {
		p("<p class=\"sub\">%s</p>\n", esc(l))
	}
	p("</header>\n<main>\n")
	rp.writeCards(bw)
	if rp.anyEstimate() {
		p("<p class=\"callout est-note\"><b>%s Estimated energy.</b> Figures marked %s come from a model of power, not from a sensor (no NVML GPU or readable RAPL counter): compare them with care.</p>\n", EstMark, EstMark)
	}
	rp.htmlServing(bw, p)
	rp.htmlPlots(p)
	rp.htmlPower(p, d)
	rp.htmlLatency(p, d)
	rp.htmlTables(bw, p)
	rp.writeFlagsTable(bw)
	p("<section id=\"legend\"><h2>Reading this report</h2><ul>\n")
	for _, l := range rp.legend() {
		p("<li>%s</li>\n", esc(l))
	}
	p("</ul></section>\n</main>\n")
	rp.writeProvenance(bw, d)
	p("</body>\n</html>\n")
	return bw.Flush()
}

// printer writes formatted HTML.
type printer func(format string, a ...any)

// htmlPlots writes the energy and Pareto figures.
func (rp *Report) htmlPlots(p printer) {
	p("<section id=\"plots\">\n<h2>Energy and speed</h2>\n")
	p("<figure id=\"fig-energy\">%s<figcaption>Energy per output token per config (gross, measure phase, basis scope): bar = mean over ok cycles, error bar = 95 %% interval (Student t), dots = runs. %s</figcaption></figure>\n",
		rp.plotEnergyPerToken(), estCaption(rp))
	tp := metricByName[record.MOutputTokensPerS]
	svgT, nT := rp.plotPareto("pareto-throughput", "Energy per output token against output throughput, Pareto front", tp, true)
	p("<figure id=\"fig-pareto-throughput\">%s<figcaption>Energy–throughput trade-off across the sweep: each point is a config (means, thin lines = 95 %% intervals). %s the Pareto front: no other config uses less energy per token <i>and</i> delivers more output tokens per second; the others are dominated (labelled in grey where there is room). Intervals cut at the plot's edge end in an arrow.</figcaption></figure>\n", svgT, frontPhrase(nT))
	lat := metricByName[record.ME2EP50S]
	svgL, nL := rp.plotPareto("pareto-latency", "Energy per output token against median request latency, Pareto front", lat, false)
	p("<figure id=\"fig-pareto-latency\">%s<figcaption>Energy–latency trade-off: median end-to-end request latency (E2E p50) against energy per output token; %s the Pareto front (lower is better on both axes).</figcaption></figure>\n", svgL, lowerFirst(frontPhrase(nL)))
	p("</section>\n")

}

// htmlPower writes the power trace of one run.
func (rp *Report) htmlPower(p printer, d *htmlData) {
	p("<section id=\"power\">\n<h2>Power over time</h2>\n")
	if d.powerRun != nil {
		r := d.powerRun
		rows := 0
		for _, s := range d.power {
			rows += s.Rows
		}
		interval := Dash
		if d.interval > 0 {
			interval = formatSI(float64(d.interval)/1e9, "s")
		}
		p("<figure id=\"fig-power\">%s<figcaption>Power of every measured device during run <code>%s</code> (config %s), %d readings at a %s interval; shaded: the worker's load, warmup and measure phases; below: the measured requests. Measure-phase energy %s. Another run: <code>--run RUN_ID</code>.</figcaption></figure>\n",
			rp.plotPower(r, d.power, d.events[r], d.interval), esc(r.E.RunID), esc(rp.Label(r.Config)), rows, interval,
			esc(mark(FormatSI(r.E.Metrics[record.MEnergyJ], "J"), r.E.Estimate)))
	} else {
		p("<p class=\"note\">No power trace: %s.</p>\n", esc(d.powerNote))
	}
	p("</section>\n")

}

// htmlLatency writes the latency distributions.
func (rp *Report) htmlLatency(p printer, d *htmlData) {
	p("<section id=\"latency\">\n<h2>Latency distributions</h2>\n")
	for _, what := range []string{"ttft", "e2e"} {
		data, total := rp.latencies(d, what)
		name := map[string]string{"ttft": "time to first token", "e2e": "end-to-end request latency"}[what]
		shown := ""
		if total > len(data) {
			shown = fmt.Sprintf(" %d of %d configs shown: those on the energy–throughput front, then the lowest energy per token.", len(data), total)
		}
		approx := false
		for _, l := range data {
			approx = approx || l.approx
		}
		note := ""
		if approx {
			note = " Dashed: no readable events file, so the curve joins the records' percentiles (min, p50, p90, p95, p99, max)."
		}
		p("<figure id=\"fig-latency-%s\">%s<figcaption>Distribution of the %s (%s) over the measured requests of each config's ok runs.%s%s</figcaption></figure>\n",
			what, rp.plotLatency("latency-"+what, strings.ToUpper(what), data), name, strings.ToUpper(what), shown, note)
	}
	p("</section>\n")

}

// htmlTables writes the configs, runs and failed-runs tables.
func (rp *Report) htmlTables(bw *bufio.Writer, p printer) {
	// Tables.
	if rp.showConfigs() {
		g := rp.configGrid()
		p("<section id=\"configs\">\n<h2>%s</h2>\n", esc(g.Title))
		writeHTMLTable(bw, g, "configs-table")
		p("</section>\n")
	}
	if rp.showRuns() {
		g := rp.runGrid()
		p("<section id=\"runs\">\n<h2>Runs</h2>\n")
		writeHTMLTable(bw, g, "runs-table")
		p("</section>\n")
	}
	if g := rp.failedGrid(); len(g.Rows) > 0 {
		p("<section id=\"failed\">\n<h2>Failed runs</h2>\n")
		writeHTMLTable(bw, g, "failed-table")
		p("</section>\n")
	}
}

// frontPhrase is the subject of a Pareto caption, in number: "The 1
// highlighted config forms", "The 3 highlighted configs form".
func frontPhrase(n int) string {
	if n == 1 {
		return "The 1 highlighted config forms"
	}
	return fmt.Sprintf("The %d highlighted configs form", n)
}

func lowerFirst(s string) string { return strings.ToLower(s[:1]) + s[1:] }

func estCaption(rp *Report) string {
	if rp.anyEstimate() {
		return "Pale dashed bars and " + EstMark + ": estimated energy."
	}
	return ""
}

// writeCards writes the key figures at the top.
func (rp *Report) writeCards(w io.Writer) {
	var best, fast *Config
	for _, c := range rp.Configs {
		if c.mean(record.MJPerOutputToken) != nil && (best == nil || *c.mean(record.MJPerOutputToken) < *best.mean(record.MJPerOutputToken)) {
			best = c
		}
		if c.mean(record.MOutputTokensPerS) != nil && (fast == nil || *c.mean(record.MOutputTokensPerS) > *fast.mean(record.MOutputTokensPerS)) {
			fast = c
		}
	}
	ok, flagged := 0, 0
	for _, r := range rp.Runs {
		if r.OK() {
			ok++
		}
		if r.Flagged() {
			flagged++
		}
	}
	card := func(label, value, sub string) {
		fmt.Fprintf(w, "<div class=\"card\"><div class=\"k\">%s</div><div class=\"v\">%s</div><div class=\"s\">%s</div></div>\n", esc(label), esc(value), esc(sub))
	}
	fmt.Fprint(w, "<section class=\"cards\">\n")
	if best != nil {
		s := best.Stat(record.MJPerOutputToken)
		card("lowest energy per output token", mark(FormatCI(s.Mean, s.CI95, "J"), best.Estimate), rp.Label(best))
	}
	rp.footprintCards(card)
	if fast != nil {
		s := fast.Stat(record.MOutputTokensPerS)
		card("highest output throughput", FormatCI(s.Mean, s.CI95, "tok/s"), rp.Label(fast))
	}
	card("runs ok", fmt.Sprintf("%d / %d", ok, len(rp.Runs)), fmt.Sprintf("%d configs", len(rp.Configs)))
	card("runs with validity flags", strconv.Itoa(flagged), "see Validity flags")
	fmt.Fprint(w, "</section>\n")
}

func writeHTMLTable(w io.Writer, g grid, id string) {
	fmt.Fprintf(w, "<div class=\"scroll\"><table id=\"%s\">\n<thead><tr>", id)
	for i, h := range g.Head {
		cls := ""
		if g.Right[i] {
			cls = " class=\"num\""
		}
		fmt.Fprintf(w, "<th%s>%s</th>", cls, esc(h))
	}
	fmt.Fprint(w, "</tr></thead>\n<tbody>\n")
	for k, r := range g.blanked() {
		var cls []string
		if g.Est[k] {
			cls = append(cls, "est")
		}
		if g.Flag[k] {
			cls = append(cls, "flagged")
		}
		if k > 0 && g.Group > 0 && r[0] != "" {
			cls = append(cls, "group")
		}
		if len(cls) > 0 {
			fmt.Fprintf(w, "<tr class=\"%s\">", strings.Join(cls, " "))
		} else {
			fmt.Fprint(w, "<tr>")
		}
		for i, c := range r {
			cl := ""
			if g.Right[i] && strings.HasSuffix(c, " "+EstMark) {
				cl = " class=\"num est\""
			} else if g.Right[i] {
				cl = " class=\"num\""
			}
			if g.Head[i] == "flags" && c != "" {
				var chips []string
				for _, code := range strings.Split(c, ",") {
					chips = append(chips, "<span class=\"chip\" title=\""+esc(code+": "+flagDescriptions[code])+"\">"+esc(code)+"</span>")
				}
				fmt.Fprintf(w, "<td class=\"flags\">%s</td>", strings.Join(chips, " "))
				continue
			}
			if g.Head[i] == "status" && c != record.StatusOK {
				fmt.Fprintf(w, "<td><span class=\"bad\">%s</span></td>", esc(c))
				continue
			}
			fmt.Fprintf(w, "<td%s>%s</td>", cl, esc(c))
		}
		fmt.Fprint(w, "</tr>\n")
	}
	fmt.Fprint(w, "</tbody></table></div>\n")
}

// writeFlagsTable writes the validity flags: one row per flagged run or
// config, one column per flag code, the message in the cell's tooltip.
func (rp *Report) writeFlagsTable(w io.Writer) {
	fc := rp.FlagCounts()
	fmt.Fprint(w, "<section id=\"flags\">\n<h2>Validity flags</h2>\n")
	if len(fc) == 0 {
		fmt.Fprint(w, "<p class=\"note\">No run or config carries a validity flag.</p>\n</section>\n")
		return
	}
	fmt.Fprint(w, "<div class=\"scroll\"><table id=\"flags-table\" class=\"matrix\">\n<thead><tr><th>run / config</th><th>config</th>")
	for _, f := range fc {
		fmt.Fprintf(w, "<th class=\"code\"><span>%s</span></th>", esc(f.Code))
	}
	fmt.Fprint(w, "</tr></thead>\n<tbody>\n")
	row := func(name, label string, flags []record.Flag, est bool) {
		if len(flags) == 0 {
			return
		}
		by := map[string][]string{}
		for _, f := range flags {
			m := oneLine(f.Message)
			if f.Device != "" {
				m = f.Device + ": " + m
			}
			if f.Phase != "" {
				m += " (" + f.Phase + ")"
			}
			by[f.Code] = append(by[f.Code], m)
		}
		cls := ""
		if est {
			cls = " class=\"est\""
		}
		fmt.Fprintf(w, "<tr%s><td><code>%s</code></td><td>%s</td>", cls, esc(name), esc(label))
		for _, f := range fc {
			if ms, ok := by[f.Code]; ok {
				fmt.Fprintf(w, "<td class=\"hit\" title=\"%s\">●</td>", esc(strings.Join(ms, "\n")))
			} else {
				fmt.Fprint(w, "<td></td>")
			}
		}
		fmt.Fprint(w, "</tr>\n")
	}
	for _, c := range rp.Configs {
		if c.Summary != nil {
			row("config "+shortID(c.ID), rp.Label(c), c.Summary.Flags, c.Estimate)
		}
	}
	for _, r := range rp.Runs {
		row(r.E.RunID, rp.Label(r.Config), r.E.Flags, r.E.Estimate)
	}
	fmt.Fprint(w, "</tbody></table></div>\n<table class=\"meanings\"><thead><tr><th>flag</th><th class=\"num\">runs</th><th class=\"num\">configs</th><th>meaning</th></tr></thead><tbody>\n")
	for _, f := range fc {
		fmt.Fprintf(w, "<tr><td><span class=\"chip\">%s</span></td><td class=\"num\">%d</td><td class=\"num\">%d</td><td>%s</td></tr>\n", esc(f.Code), f.Runs, f.Configs, esc(f.Description))
	}
	fmt.Fprint(w, "</tbody></table>\n<p class=\"note\">Hover a ● for the flag's message (device, phase, figures).</p>\n</section>\n")
}

// writeProvenance writes the footer: study, hosts, GPUs, driver, images, tools.
func (rp *Report) writeProvenance(w io.Writer, d *htmlData) {
	set := func() map[string]bool { return map[string]bool{} }
	hosts, gpus, drivers, images, workers := set(), set(), set(), set(), set()
	for _, r := range rp.Runs {
		rr := d.runs[r]
		if rr == nil {
			if r.E.Host != "" {
				hosts[r.E.Host] = true
			}
			continue
		}
		h := rr.Host
		hosts[joinNonEmpty(", ", h.Hostname, joinNonEmpty("/", h.OS, h.Arch), h.Kernel, h.CPUModel, cpus(h.CPUs))] = true
		for _, g := range h.GPUs {
			gpus[joinNonEmpty(" ", g.Name, g.UUID, bytesText(g.MemoryTotalBytes), wattText(g.PowerLimitW))] = true
		}
		if v := joinNonEmpty(", ", prefixed("driver ", h.DriverVersion), prefixed("CUDA ", h.CUDAVersion), prefixed("NVML ", h.NVMLVersion)); v != "" {
			drivers[v] = true
		}
		if c := rr.Container; c != nil && c.Image != "" {
			images[joinNonEmpty(" ", c.Image, c.ImageDigest)] = true
		}
		if wk := rr.Worker; wk != nil {
			workers[joinNonEmpty(" ", wk.Backend, wk.Version)] = true
		} else if rr.Runner.Type != "" {
			workers[rr.Backend+" ("+rr.Runner.Type+")"] = true
		}
	}
	list := func(m map[string]bool) string {
		if len(m) == 0 {
			return Dash
		}
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for i := range ks {
			ks[i] = esc(ks[i])
		}
		return strings.Join(ks, "<br>")
	}
	var st []string
	for _, s := range rp.Studies {
		st = append(st, esc(s.Name)+" <code>"+esc(s.Hash)+"</code>")
	}
	tools := "llem-report " + Version
	if d.sampler != "" {
		tools += ", llem sampler " + d.sampler
	}
	fmt.Fprint(w, "<footer id=\"provenance\">\n<h2>Provenance</h2>\n<dl>\n")
	item := func(k, v string) { fmt.Fprintf(w, "<dt>%s</dt><dd>%s</dd>\n", k, v) }
	item("study", strings.Join(st, "<br>"))
	item("configs, runs", fmt.Sprintf("%d configs, %d runs", len(rp.Configs), len(rp.Runs)))
	if from, to := rp.measuredSpan(); from > 0 {
		item("measured", esc(time.Unix(0, from).UTC().Format("2006-01-02 15:04:05")+" – "+time.Unix(0, to).UTC().Format("2006-01-02 15:04:05")+" UTC"))
	}
	item("hosts", list(hosts))
	item("GPUs", list(gpus))
	item("driver", list(drivers))
	item("images", list(images))
	item("workers", list(workers))
	item("tools", esc(tools))
	if rp.fp.any {
		item("carbon and cost", strings.Join(append(escAll(rp.fp.assumptions), "derived from the measured energy and these assumptions, not measured"), "<br>"))
	}
	if d.missing > 0 {
		item("note", fmt.Sprintf("%d of %d run directories could not be read: hosts above come from the records alone for those", d.missing, len(rp.Runs)))
	}
	fmt.Fprint(w, "</dl>\n<p class=\"note\">Self-contained: this file loads nothing from the network and runs no script.</p>\n</footer>\n")
}

func prefixed(p, v string) string {
	if v == "" {
		return ""
	}
	return p + v
}

func cpus(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf("%d CPUs", n)
}

func bytesText(b *int64) string {
	if b == nil {
		return ""
	}
	return fmt.Sprintf("%.0f GiB", float64(*b)/(1<<30))
}

func wattText(v *float64) string {
	if v == nil {
		return ""
	}
	return "limit " + formatSI(*v, "W")
}

// measuredSpan is the first and last instant of the runs' phase windows (Unix ns).
func (rp *Report) measuredSpan() (from, to int64) {
	for _, r := range rp.Runs {
		for _, p := range r.E.Phases {
			if p == nil || p.Window.StartNS <= 0 {
				continue
			}
			if from == 0 || p.Window.StartNS < from {
				from = p.Window.StartNS
			}
			to = max(to, p.Window.EndNS)
		}
	}
	return from, to
}

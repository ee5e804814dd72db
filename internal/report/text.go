package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// WriteTable writes the report as aligned text columns for a terminal.
func (rp *Report) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	title := rp.Opt.Title
	if title == "" {
		title = "llem report"
	}
	fmt.Fprintln(bw, title)
	for _, l := range append(rp.headline(), rp.servingHeadlines()...) {
		fmt.Fprintln(bw, l)
	}
	for _, g := range rp.grids() {
		if len(g.Rows) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n%s\n", g.Title)
		writeAligned(bw, g)
	}
	if fc := rp.FlagCounts(); len(fc) > 0 {
		fmt.Fprintf(bw, "\nFlags\n")
		g := grid{Head: []string{"flag", "runs", "configs", "meaning"}, Right: []bool{false, true, true, false}}
		for _, f := range fc {
			g.add([]string{f.Code, fmt.Sprint(f.Runs), fmt.Sprint(f.Configs), f.Description}, false, false)
		}
		writeAligned(bw, g)
	}
	fmt.Fprintln(bw)
	for _, l := range rp.legend() {
		fmt.Fprintln(bw, l)
	}
	return bw.Flush()
}

func writeAligned(w io.Writer, g grid) {
	rows := append([][]string{g.Head}, g.blanked()...)
	width := make([]int, len(g.Head))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var sb strings.Builder
		for i, c := range r {
			pad := width[i] - utf8.RuneCountInString(c)
			last := i == len(r)-1
			if i > 0 {
				sb.WriteString("  ")
			}
			if g.Right[i] {
				sb.WriteString(strings.Repeat(" ", pad))
				sb.WriteString(c)
			} else {
				sb.WriteString(c)
				if !last {
					sb.WriteString(strings.Repeat(" ", pad))
				}
			}
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
	}
}

// WriteMarkdown writes the report as GitHub-flavoured Markdown.
func (rp *Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	title := rp.Opt.Title
	if title == "" {
		title = "llem report"
	}
	fmt.Fprintf(bw, "# %s\n\n", mdEscape(title))
	for _, l := range append(rp.headline(), rp.servingHeadlines()...) {
		fmt.Fprintf(bw, "%s  \n", mdEscape(l))
	}
	for _, g := range rp.grids() {
		if len(g.Rows) == 0 {
			continue
		}
		fmt.Fprintf(bw, "\n## %s\n\n", g.Title)
		writeMD(bw, g)
	}
	if fc := rp.FlagCounts(); len(fc) > 0 {
		fmt.Fprintf(bw, "\n## Flags\n\n")
		g := grid{Head: []string{"flag", "runs", "configs", "meaning"}, Right: []bool{false, true, true, false}}
		for _, f := range fc {
			g.add([]string{"`" + f.Code + "`", fmt.Sprint(f.Runs), fmt.Sprint(f.Configs), f.Description}, false, false)
		}
		writeMD(bw, g)
	}
	fmt.Fprintln(bw)
	for _, l := range rp.legend() {
		fmt.Fprintf(bw, "- %s\n", mdEscape(l))
	}
	return bw.Flush()
}

func writeMD(w io.Writer, g grid) {
	line := func(cells []string) {
		for i := range cells {
			cells[i] = mdEscape(cells[i])
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	line(append([]string(nil), g.Head...))
	sep := make([]string, len(g.Head))
	for i := range sep {
		sep[i] = "---"
		if g.Right[i] {
			sep[i] = "---:"
		}
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(sep, "|"))
	for _, r := range g.blanked() {
		line(r)
	}
}

var mdReplacer = strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;")

func mdEscape(s string) string { return mdReplacer.Replace(s) }

// grids are the report's tables in order, as --rows asks.
func (rp *Report) grids() []grid {
	gs := rp.servingGrids()
	if rp.showConfigs() {
		gs = append(gs, rp.configGrid())
	}
	if rp.showRuns() {
		gs = append(gs, rp.runGrid())
	}
	return append(gs, rp.failedGrid())
}

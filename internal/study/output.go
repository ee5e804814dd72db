package study

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
)

// WriteNDJSON writes skipped records (when asked) and then every run as an
// experiment record. Output is buffered in 64 KiB writes.
func (s *Study) WriteNDJSON(w io.Writer, emitSkipped bool) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if emitSkipped {
		if err := s.EachSkipped(func(r *record.Skipped) error {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			bw.Write(b)
			return bw.WriteByte('\n')
		}); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return s.writeRuns(w)
}

// WriteTable writes the human preview: the study line, the runs with their
// swept fields, and the skips with their reasons. The study must have been
// expanded with Options.Columns.
func (s *Study) WriteTable(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "study     %s\n", s.Name)
	fmt.Fprintf(bw, "hash      %s\n", s.Hash)
	fmt.Fprintf(bw, "runs      %d configs × %d cycles = %d runs\n", s.Unique, s.NCycles, s.Unique*s.NCycles)
	fmt.Fprintf(bw, "order     %s%s\n", s.Order, s.seedText())
	fmt.Fprintf(bw, "gaps      experiment %s s, cycle %s s\n", fmtF(s.ExperimentGapS), fmtF(s.CycleGapS))
	if s.Skipped > 0 || s.Duplicates > 0 {
		fmt.Fprintf(bw, "skipped   %d invalid, %d duplicates of %d generated\n", s.Skipped, s.Duplicates, s.Generated)
	}
	bw.WriteByte('\n')
	cols := []string{"backend", "model", "precision"}
	for _, c := range s.Columns {
		if !contains(cols, c) {
			cols = append(cols, c)
		}
	}
	seqW := len(strconv.Itoa(s.Unique*s.NCycles - 1))
	seqW = max(seqW, 3)
	head := []string{pad("seq", seqW), pad("run_id", 19)}
	for _, c := range cols {
		head = append(head, pad(c, s.width(c)))
	}
	fmt.Fprintln(bw, strings.TrimRight(strings.Join(head, "  "), " "))
	err := s.Each(func(r *Run) error {
		row := []string{pad(strconv.Itoa(r.Seq), seqW), pad(r.RunID, 19)}
		for _, c := range cols {
			v, ok := r.Config.Field(c)
			txt := "-"
			if ok {
				txt = config.FormatValue(v)
			}
			row = append(row, pad(txt, s.width(c)))
		}
		_, err := fmt.Fprintln(bw, strings.TrimRight(strings.Join(row, "  "), " "))
		return err
	})
	if err != nil {
		return err
	}
	if s.Skipped > 0 {
		fmt.Fprintf(bw, "\nskipped (%d):\n", s.Skipped)
		if err := s.EachSkipped(func(r *record.Skipped) error {
			for _, p := range r.Reasons {
				line := fmt.Sprintf("  %s: %s: %s", r.Label, p.Path, p.Message)
				if p.Hint != "" {
					line += " (hint: " + p.Hint + ")"
				}
				fmt.Fprintln(bw, line)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (s *Study) width(c string) int {
	if w, ok := s.Widths[c]; ok {
		return w
	}
	return len(c)
}

func pad(s string, w int) string {
	r := []rune(s)
	if len(r) > w {
		return string(r[:w-1]) + "…"
	}
	return s + strings.Repeat(" ", w-len(r))
}

func fmtF(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

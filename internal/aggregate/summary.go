package aggregate

import (
	"fmt"
	"sort"
	"strings"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/stats"
)

// cvMetrics are the figures whose spread across cycles decides whether a
// config is flagged as unstable.
var cvMetrics = []string{record.MEnergyJ, record.MJPerOutputToken, record.MOutputTokensPerS, record.MMeanPowerW}

// Summarize computes one summary per config id over its runs, in the order
// ids first appear. Where a run_id appears more than once (a resumed or
// retried run), the last record counts. Statistics cover the ok runs on the
// config's basis; a metric's n counts the runs where it is not null.
func Summarize(energies []*record.Energy, opt Options) []*record.Summary {
	var order []string
	byID := map[string][]*record.Energy{}
	for _, e := range energies {
		if _, ok := byID[e.ID]; !ok {
			order = append(order, e.ID)
		}
		runs := byID[e.ID]
		replaced := false
		for i, x := range runs {
			if x.RunID == e.RunID {
				runs[i], replaced = e, true
			}
		}
		if !replaced {
			runs = append(runs, e)
		}
		byID[e.ID] = runs
	}
	var out []*record.Summary
	for _, id := range order {
		out = append(out, summarizeOne(byID[id], opt))
	}
	return out
}

func summarizeOne(runs []*record.Energy, opt Options) *record.Summary {
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Cycle < runs[j].Cycle })
	f := runs[0]
	s := &record.Summary{Kind: record.KindSummary, V: record.Version, Study: f.Study, StudyHash: f.StudyHash, ID: f.ID,
		Backend: f.Backend, Model: f.Model, Config: f.Config, Runs: len(runs), Metrics: map[string]*record.Stat{}, Flags: []record.Flag{}}
	bases := map[string]int{}
	for _, e := range runs {
		s.RunIDs = append(s.RunIDs, e.RunID)
		if e.Status == record.StatusOK {
			bases[e.Basis]++
			if s.Basis == "" {
				s.Basis = e.Basis
			}
		}
	}
	if len(bases) > 1 {
		s.Flags = append(s.Flags, record.Flag{Code: FlagMixedBasis,
			Message: fmt.Sprintf("cycles were measured on different scopes (%v); statistics cover the %s cycles only", bases, s.Basis),
			Hint:    "a GPU was visible in some cycles and not in others: check the devices of each run"})
	}
	var ok []*record.Energy
	flagged := map[string]int{}
	for _, e := range runs {
		if e.Status != record.StatusOK || e.Basis != s.Basis {
			continue
		}
		ok = append(ok, e)
		s.Estimate = s.Estimate || e.Estimate
		s.Attribution = joinAttribution(s.Attribution, e.Attribution, len(ok) == 1)
		seen := map[string]bool{}
		for _, fl := range e.Flags {
			if !seen[fl.Code] {
				seen[fl.Code] = true
				flagged[fl.Code]++
			}
		}
	}
	s.RunsOK = len(ok)
	for _, name := range namesOf(runs) {
		var vals []float64
		for _, e := range ok {
			if v := e.Metrics[name]; v != nil {
				vals = append(vals, *v)
			}
		}
		s.Metrics[name] = stats.Summary(vals)
	}
	for _, name := range cvMetrics {
		st := s.Metrics[name]
		if st.CV != nil && *st.CV > opt.CVThreshold {
			s.Flags = append(s.Flags, record.Flag{Code: FlagHighCV,
				Message: fmt.Sprintf("%s varies across cycles: CV %.1f%% above %.1f%%", name, 100**st.CV, 100*opt.CVThreshold),
				Hint:    "more cycles, longer measure windows, a longer warmup or thermal gaps make it steadier"})
		}
	}
	if s.RunsOK < len(runs) {
		s.Flags = append(s.Flags, record.Flag{Code: FlagSomeRunsNotOK,
			Message: fmt.Sprintf("%d of %d runs are not in the statistics (not ok)", len(runs)-s.RunsOK, len(runs)),
			Hint:    "see the energy records' status and error"})
	}
	if s.RunsOK < 3 {
		s.Flags = append(s.Flags, record.Flag{Code: FlagFewCycles,
			Message: fmt.Sprintf("statistics over %d run(s): the 95%% interval needs at least 2 and is wide below 3", s.RunsOK),
			Hint:    "set n_cycles to 3 or more"})
	}
	if len(flagged) > 0 {
		var parts []string
		for code, n := range flagged {
			parts = append(parts, fmt.Sprintf("%s (%d of %d)", code, n, len(ok)))
		}
		sort.Strings(parts)
		s.Flags = append(s.Flags, record.Flag{Code: FlagRunsFlagged,
			Message: "runs in the statistics carry validity flags: " + strings.Join(parts, ", "),
			Hint:    "see each run's energy record"})
	}
	return s
}

// namesOf is metricNames, plus the serving metrics where a record carries
// them (serving runs), so batch summaries keep their exact columns.
func namesOf(es []*record.Energy) []string {
	for _, e := range es {
		if _, ok := e.Metrics[record.MOfferedRateRPS]; ok {
			return append(append([]string(nil), metricNames...), servingMetricNames...)
		}
	}
	return metricNames
}

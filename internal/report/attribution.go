package report

import (
	"fmt"
	"sort"
	"strings"
)

// attributionLegend says how the runs' CPU energy was attributed, where
// their records name it (records of streams without the run's CPU time
// name nothing, and get no line).
func (rp *Report) attributionLegend() []string {
	modes := map[string]int{}
	for _, r := range rp.Runs {
		if a := r.E.Attribution; a != "" {
			modes[a]++
		}
	}
	var l []string
	if n := modes["process"]; n > 0 {
		l = append(l, fmt.Sprintf("CPU energy of %d run(s) is attributed to the run (process attribution): each interval's CPU energy × the run's share of the machine's busy CPU time; the whole machine's figure is beside it in the energy records (machine_gross_j), and llem-aggregate --attribution machine reports it instead", n))
	}
	if n := modes["machine"]; n > 0 {
		l = append(l, fmt.Sprintf("CPU energy of %d run(s) is the whole machine's (machine attribution): other processes' load on the machine is in it", n))
	}
	return l
}

// estimateModels names the estimate's power per core and where it came
// from, as the energy records state it; "" when none does.
func (rp *Report) estimateModels() string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rp.Runs {
		m := r.E.EstimateModel
		if m == nil {
			continue
		}
		s := fmt.Sprintf("%.3g W per busy core (%s)", m.WattsPerCore, wpcSource(m.Source, m.CPUModel))
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return ""
	}
	sort.Strings(out)
	return "; here " + strings.Join(out, ", ")
}

func wpcSource(src, model string) string {
	switch src {
	case "configured":
		return "configured"
	case "tdp_table":
		return "the TDP of the " + model + " / its hardware threads"
	case "default":
		if model != "" {
			return "the default: " + model + " is not in llem's TDP table"
		}
		return "the default"
	}
	return "source not stated"
}

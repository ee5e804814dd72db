package report

import (
	"strconv"

	"github.com/llem/llem/internal/record"
)

// servingAt finds the sweep, series and point a config belongs to.
func (rp *Report) servingAt(c *Config) (*servingSweep, *servingSeries, *servingPoint) {
	for _, sw := range rp.serving {
		for _, s := range sw.Series {
			for _, p := range s.Points {
				if p.C == c {
					return sw, s, p
				}
			}
		}
	}
	return nil, nil, nil
}

// servingCSV says whether the CSV carries the serving columns: only where
// the report shows a sweep, so that batch reports keep their columns.
func (rp *Report) servingCSV() bool { return len(rp.servingGrids()) > 0 }

// servingExtraMetrics are the serving figures not already among --metrics.
func (rp *Report) servingExtraMetrics() []*Metric {
	have := map[string]bool{}
	for _, m := range rp.Metrics {
		have[m.Name] = true
	}
	var out []*Metric
	for _, n := range servingMetrics {
		if !have[n] {
			out = append(out, metricByName[n])
		}
	}
	return out
}

// servingCSVHead are the columns the serving sweep adds to the CSV.
func (rp *Report) servingCSVHead() []string {
	if !rp.servingCSV() {
		return nil
	}
	h := []string{"sweep_key", "sweep_value", "series", "slo_ttft_ms", "slo_tpot_ms", "slo_e2e_ms", "slo_met",
		"sweep_headline_value", "sweep_headline_energy_per_output_token_j"}
	for _, m := range rp.servingExtraMetrics() {
		h = append(h, m.Col, m.Col+"_ci95_lo", m.Col+"_ci95_hi", m.Col+"_n")
	}
	return h
}

// servingCSVCells fills the serving columns of a config row (run == nil)
// or of a run row; empty where the config is not in a sweep.
func (rp *Report) servingCSVCells(c *Config, run *Run) []string {
	if !rp.servingCSV() {
		return nil
	}
	extra := rp.servingExtraMetrics()
	cells := make([]string, 9+4*len(extra))
	sw, s, p := rp.servingAt(c)
	if sw == nil {
		return cells
	}
	cells[0], cells[1], cells[2] = sw.Axis, p.XText, s.Label
	cells[3], cells[4], cells[5] = rawNum(s.SLO.TTFTms), rawNum(s.SLO.TPOTms), rawNum(s.SLO.E2Ems)
	if p.Met != nil {
		cells[6] = strconv.FormatBool(*p.Met)
	}
	if s.Best != nil {
		cells[7] = s.Best.XText
		cells[8] = rawNum(s.Best.C.mean(record.MJPerOutputToken))
	}
	for i, m := range extra {
		k := 9 + 4*i
		if run != nil {
			cells[k] = rawNum(run.E.Metrics[m.Name])
			continue
		}
		if st := c.Stat(m.Name); st != nil {
			cells[k], cells[k+1], cells[k+2], cells[k+3] = rawNum(st.Mean), rawNum(st.CI95Lo), rawNum(st.CI95Hi), strconv.Itoa(st.N)
		}
	}
	return cells
}

// JSON form of the serving sweeps.
type jsonSweep struct {
	SweepKey  string            `json:"sweep_key"`
	Criterion string            `json:"criterion"`
	Series    []jsonSweepSeries `json:"series"`
}

type jsonSweepSeries struct {
	Label    string             `json:"label"`
	Keys     map[string]string  `json:"keys"` // the config fields that tell the series apart
	SLO      jsonSLO            `json:"slo"`
	Headline *jsonSweepHeadline `json:"headline"` // null: no SLO stated
	Points   []jsonSweepPoint   `json:"points"`
}

type jsonSLO struct {
	TTFTms *float64 `json:"ttft_ms"`
	TPOTms *float64 `json:"tpot_ms"`
	E2Ems  *float64 `json:"e2e_ms"`
}

type jsonSweepHeadline struct {
	Verdict           string       `json:"verdict"`     // met, none or unknown
	SweepValue        *float64     `json:"sweep_value"` // the highest load meeting the SLO; null unless met
	ID                *string      `json:"id"`
	EnergyPerOutToken *record.Stat `json:"energy_per_output_token_j"`
	Text              string       `json:"text"`
}

type jsonSweepPoint struct {
	ID         string                  `json:"id"`
	SweepValue float64                 `json:"sweep_value"`
	SLOMet     *bool                   `json:"slo_met"` // null: no SLO stated, or attainment unknown
	Estimate   bool                    `json:"estimate"`
	Flags      []string                `json:"flags"`
	Metrics    map[string]*record.Stat `json:"metrics"` // by column name
}

// servingJSON is the sweeps for the JSON report; nil without one.
func (rp *Report) servingJSON() []jsonSweep {
	if !rp.servingCSV() {
		return nil
	}
	var out []jsonSweep
	for _, sw := range rp.serving {
		js := jsonSweep{SweepKey: sw.Axis, Criterion: rp.servingLegend()[1]}
		for _, s := range sw.Series {
			jss := jsonSweepSeries{Label: s.Label, Keys: sw.seriesKeys(s), SLO: jsonSLO(s.SLO), Points: []jsonSweepPoint{}}
			if s.Verdict != "" {
				h := &jsonSweepHeadline{Verdict: s.Verdict, Text: sw.headlineText(s)}
				if s.Best != nil {
					x, id := s.Best.X, s.Best.C.ID
					h.SweepValue, h.ID, h.EnergyPerOutToken = &x, &id, s.Best.C.Stat(record.MJPerOutputToken)
				}
				jss.Headline = h
			}
			for _, p := range s.Points {
				jp := jsonSweepPoint{ID: p.C.ID, SweepValue: p.X, SLOMet: p.Met, Estimate: p.C.Estimate, Flags: append([]string{}, p.Flags...), Metrics: map[string]*record.Stat{}}
				for _, n := range servingMetrics {
					jp.Metrics[metricByName[n].Col] = p.C.Stat(n)
				}
				jss.Points = append(jss.Points, jp)
			}
			js.Series = append(js.Series, jss)
		}
		out = append(out, js)
	}
	return out
}

// seriesKeys are the config fields in which a series differs from the
// sweep's other series (empty for a sweep of one series).
func (sw *servingSweep) seriesKeys(s *servingSeries) map[string]string {
	out := map[string]string{}
	for k, v := range s.Keys {
		for _, o := range sw.Series {
			if o != s && o.Keys[k] != v {
				out[k] = v
				break
			}
		}
	}
	return out
}

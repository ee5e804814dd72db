package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/record"
)

// unitCost stands for the report's currency in the catalogue; setMetrics
// replaces it with the currency code of the input's footprints.
const unitCost = "cost"

// footprintMetrics are the carbon and cost figures of llem-aggregate's
// footprint object. They are in the catalogue only by name (metricByName),
// not in metricList: a report of records without footprints lists, and
// renders, exactly what it did before footprints existed. They count as
// energy figures: estimated energy makes them estimates (†).
var footprintMetrics = []Metric{
	{record.FCO2eGPerMOutputTokens, "co2e_per_m_output_tokens_g", "CO2e/M out tok", "gCO2e", true},
	{record.FCO2eGPerRequest, "co2e_per_request_g", "CO2e/request", "gCO2e", true},
	{record.FCO2eG, "co2e_g", "CO2e", "gCO2e", true},
	{record.FCO2eNetG, "co2e_net_g", "net CO2e", "gCO2e", true},
	{record.FFacilityEnergyJ, "facility_energy_j", "facility energy", "J", true},
	{record.FFacilityEnergyNetJ, "facility_energy_net_j", "net facility energy", "J", true},
	{record.FCostPerMOutputTokens, "cost_per_m_output_tokens", "cost/M out tok", unitCost, true},
	{record.FCostPerRequest, "cost_per_request", "cost/request", unitCost, true},
	{record.FCost, "cost", "cost", unitCost, true},
	{record.FCostNet, "cost_net", "net cost", unitCost, true},
}

func init() {
	for i := range footprintMetrics {
		metricByName[footprintMetrics[i].Name] = &footprintMetrics[i]
		metricByName[footprintMetrics[i].Col] = &footprintMetrics[i]
	}
}

// footprints is what the input says about carbon and cost.
type footprints struct {
	any         bool
	price       bool
	currency    string
	assumptions []string // distinct descriptions, sorted
}

// absorbFootprints copies the footprint figures of the records into their
// metrics, so that every format shows them like any other figure, and
// gathers the assumptions for the legend and the provenance.
func absorbFootprints(in *Input) footprints {
	var f footprints
	seen := map[string]bool{}
	note := func(a record.Assumptions) {
		f.any = true
		if a.PricePerKWh != nil {
			f.price = true
			if f.currency == "" {
				f.currency = a.Currency
			}
		}
		if d := describeAssumptions(a); !seen[d] {
			seen[d] = true
			f.assumptions = append(f.assumptions, d)
		}
	}
	for _, e := range in.Energies {
		if fp := e.Footprint; fp != nil {
			note(fp.Assumptions)
			if e.Metrics == nil {
				e.Metrics = map[string]*float64{}
			}
			for k, v := range fp.Figures {
				e.Metrics[k] = v
			}
		}
	}
	for _, s := range in.Summaries {
		if fp := s.Footprint; fp != nil {
			note(fp.Assumptions)
			if s.Metrics == nil {
				s.Metrics = map[string]*record.Stat{}
			}
			for k, v := range fp.Figures {
				s.Metrics[k] = v
			}
		}
	}
	sort.Strings(f.assumptions)
	return f
}

// describeAssumptions says in one line what a footprint assumed.
func describeAssumptions(a record.Assumptions) string {
	ci := "carbon intensity not given"
	if a.CarbonIntensityGPerKWh != nil {
		ci = "carbon intensity " + num(*a.CarbonIntensityGPerKWh) + " gCO2e/kWh"
		src := a.IntensitySource
		if a.IntensityYear != nil {
			src += ", " + strconv.Itoa(*a.IntensityYear)
		}
		if src != "" {
			ci += " (" + src + ")"
		}
	}
	pue := "PUE " + num(a.PUE) + " (" + a.PUESource + ")"
	price := "price not given"
	if a.PricePerKWh != nil {
		price = "price " + num(*a.PricePerKWh) + " " + a.Currency + "/kWh"
	}
	return ci + "; " + pue + "; " + price
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// defaultMetrics are the figures shown without --metrics: the usual ones,
// plus carbon and cost per million output tokens where the input has them.
func (rp *Report) defaultMetrics() []string {
	if !rp.fp.any {
		return DefaultMetrics
	}
	out := append(append([]string{}, DefaultMetrics...), record.FCO2eGPerMOutputTokens)
	if rp.fp.price {
		out = append(out, record.FCostPerMOutputTokens)
	}
	return out
}

// withCurrency gives a cost metric the input's currency as its unit
// (the first one seen; the legend lists every assumption).
func (rp *Report) withCurrency(m *Metric) *Metric {
	if m.Unit != unitCost {
		return m
	}
	c := *m
	c.Unit = rp.fp.currency
	c.Label += " (" + rp.fp.currency + ")"
	c.Col += "_" + strings.ToLower(rp.fp.currency) // the unit in the column name, as for every other column
	return &c
}

// footprintLegend says that carbon and cost are derived, and from what.
func (rp *Report) footprintLegend() []string {
	if !rp.fp.any {
		return nil
	}
	l := []string{"CO2e and cost are derived from the measured energy and stated assumptions, not measured: facility energy = gross energy × PUE; CO2e = facility kWh × carbon intensity; cost = facility kWh × price; " + Dash + " where an assumption was not given"}
	for _, a := range rp.fp.assumptions {
		l = append(l, "assumed: "+a)
	}
	return l
}

// formatMoney shows an amount with three significant digits, in plain
// decimals (0.00360 EUR), never with an SI prefix.
func formatMoney(v float64, unit string) string {
	dec := 2
	if a := math.Abs(v); a > 0 && a < 1 {
		dec = 2 - int(math.Floor(math.Log10(a)))
	}
	return strconv.FormatFloat(v, 'f', dec, 64) + " " + unit
}

// footprintCards adds the HTML headline cards of the lowest carbon and
// cost per million output tokens, where the input has them.
func (rp *Report) footprintCards(card func(label, value, sub string)) {
	if !rp.fp.any {
		return
	}
	for _, name := range []string{record.FCO2eGPerMOutputTokens, record.FCostPerMOutputTokens} {
		var best *Config
		for _, c := range rp.Configs {
			if v := c.mean(name); v != nil && (best == nil || *v < *best.mean(name)) {
				best = c
			}
		}
		if best == nil {
			continue
		}
		m := rp.withCurrency(metricByName[name])
		s := best.Stat(name)
		card(fmt.Sprintf("lowest %s (derived)", strings.TrimSuffix(m.Label, " ("+rp.fp.currency+")")), mark(FormatCI(s.Mean, s.CI95, m.Unit), best.Estimate), rp.Label(best))
	}
}

func escAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = esc(s)
	}
	return out
}

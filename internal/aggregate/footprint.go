package aggregate

import (
	"encoding/json"
	"fmt"

	"github.com/llem/llem/internal/carbon"
	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/stats"
)

// jPerKWh converts joules to kilowatt-hours.
const jPerKWh = 3.6e6

// Footprint holds the carbon and cost assumptions given on the command line.
// A nil field falls back to the run's config (energy.carbon_intensity_g_per_kwh,
// energy.pue, energy.price_per_kwh, energy.currency), then to nothing: a
// missing assumption leaves the figures that need it null. PUE defaults to 1.
type Footprint struct {
	IntensityGPerKWh *float64
	// IntensitySource and IntensityYear describe a --region figure.
	IntensitySource string
	IntensityYear   *int
	Region          string
	PUE             *float64
	PricePerKWh     *float64
	Currency        string
}

// FootprintFor builds the command line's assumptions; region and intensity
// exclude each other, and a price needs its currency.
func FootprintFor(region string, intensity, pue, price *float64, currency string) (Footprint, error) {
	f := Footprint{IntensityGPerKWh: intensity, PUE: pue, PricePerKWh: price, Currency: currency}
	switch {
	case region != "" && intensity != nil:
		return f, fmt.Errorf("--region and --carbon-intensity exclude each other")
	case intensity != nil && *intensity < 0:
		return f, fmt.Errorf("--carbon-intensity %g: want a figure ≥ 0 gCO2e/kWh", *intensity)
	case pue != nil && *pue < 1:
		return f, fmt.Errorf("--pue %g: want a figure ≥ 1 (facility energy over IT energy)", *pue)
	case price != nil && *price < 0:
		return f, fmt.Errorf("--price %g: want a figure ≥ 0 per kWh", *price)
	case (price != nil) != (currency != ""):
		return f, fmt.Errorf("--price and --currency go together")
	case currency != "" && !config.IsCurrency(currency):
		return f, fmt.Errorf("--currency %q: want an ISO 4217 code such as EUR or USD", currency)
	}
	if region != "" {
		r, err := carbon.Lookup(region)
		if err != nil {
			return f, fmt.Errorf("--region: %w", err)
		}
		year := r.Year
		f.IntensityGPerKWh, f.IntensitySource, f.IntensityYear, f.Region = &r.GPerKWh, r.Name+": "+r.Source, &year, r.Code
	}
	return f, nil
}

// configEnergy is what the footprint reads of a run's config: leniently, so a
// config of another version still gives what it has.
type configEnergy struct {
	Energy struct {
		Intensity *float64 `json:"carbon_intensity_g_per_kwh"`
		PUE       *float64 `json:"pue"`
		Price     *float64 `json:"price_per_kwh"`
		Currency  *string  `json:"currency"`
	} `json:"energy"`
}

// assumptions resolves a run's assumptions (command line, then config) and
// says whether any was given at all.
func (f Footprint) assumptions(cfg json.RawMessage) (record.Assumptions, bool) {
	var c configEnergy
	_ = json.Unmarshal(cfg, &c) // a config that does not decode states no assumptions
	ce := c.Energy
	a := record.Assumptions{PUE: 1, PUESource: "default"}
	given := false
	switch {
	case f.IntensityGPerKWh != nil:
		a.CarbonIntensityGPerKWh, a.IntensityYear, a.Region = f.IntensityGPerKWh, f.IntensityYear, f.Region
		a.IntensitySource = f.IntensitySource
		if a.IntensitySource == "" {
			a.IntensitySource = "--carbon-intensity"
		}
		given = true
	case ce.Intensity != nil:
		a.CarbonIntensityGPerKWh, a.IntensitySource, given = ce.Intensity, "config energy.carbon_intensity_g_per_kwh", true
	}
	switch {
	case f.PUE != nil:
		a.PUE, a.PUESource, given = *f.PUE, "--pue", true
	case ce.PUE != nil:
		a.PUE, a.PUESource, given = *ce.PUE, "config energy.pue", true
	}
	switch {
	case f.PricePerKWh != nil:
		a.PricePerKWh, a.Currency, given = f.PricePerKWh, f.Currency, true
	case ce.Price != nil:
		a.PricePerKWh, given = ce.Price, true
		if ce.Currency != nil {
			a.Currency = *ce.Currency
		}
	}
	return a, given
}

// footprint derives an energy record's footprint; nil where no assumption
// was given (the record is then as it was before footprints existed).
func (f Footprint) footprint(e *record.Energy) *record.Footprint {
	a, given := f.assumptions(e.Config)
	if !given {
		return nil
	}
	m := e.Metrics
	fp := &record.Footprint{Assumptions: a, Estimate: e.Estimate, Figures: map[string]*float64{}}
	scale := func(j *float64, by *float64) *float64 {
		if j == nil || by == nil {
			return nil
		}
		return ptr(*j * a.PUE / jPerKWh * *by)
	}
	fg := fp.Figures
	pue := ptr(a.PUE)
	gross, net := m[record.MEnergyJ], m[record.MEnergyNetJ]
	fg[record.FFacilityEnergyJ], fg[record.FFacilityEnergyNetJ] = mulp(gross, pue), mulp(net, pue)
	fg[record.FCO2eG], fg[record.FCO2eNetG] = scale(gross, a.CarbonIntensityGPerKWh), scale(net, a.CarbonIntensityGPerKWh)
	fg[record.FCost], fg[record.FCostNet] = scale(gross, a.PricePerKWh), scale(net, a.PricePerKWh)
	perM := div(m[record.MOutputTokens], ptr(1e6))
	fg[record.FCO2eGPerRequest] = div(fg[record.FCO2eG], m[record.MRequests])
	fg[record.FCO2eGPerMOutputTokens] = div(fg[record.FCO2eG], perM)
	fg[record.FCostPerRequest] = div(fg[record.FCost], m[record.MRequests])
	fg[record.FCostPerMOutputTokens] = div(fg[record.FCost], perM)
	return fp
}

func mulp(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	return ptr(*a * *b)
}

// summaryFootprint gives a summary the statistics of its runs' footprints,
// over the runs its statistics cover (ok, on its basis; the last record of
// a repeated run_id). Nil where none of them has a footprint.
func summaryFootprint(s *record.Summary, byRun map[string]*record.Energy) *record.SummaryFootprint {
	var fps []*record.Footprint
	for _, id := range s.RunIDs {
		e := byRun[id]
		if e == nil || e.Footprint == nil || e.Status != record.StatusOK || e.Basis != s.Basis {
			continue
		}
		fps = append(fps, e.Footprint)
	}
	if len(fps) == 0 {
		return nil
	}
	sf := &record.SummaryFootprint{Assumptions: fps[0].Assumptions, Figures: map[string]*record.Stat{}}
	for _, name := range record.FootprintFigures {
		var vals []float64
		for _, fp := range fps {
			sf.Estimate = sf.Estimate || fp.Estimate
			if v := fp.Figures[name]; v != nil {
				vals = append(vals, *v)
			}
		}
		sf.Figures[name] = stats.Summary(vals)
	}
	return sf
}

// addSummaryFootprints gives each summary the statistics of its runs' footprints.
func addSummaryFootprints(energies []*record.Energy, summaries []*record.Summary) {
	byRun := map[string]*record.Energy{}
	for _, e := range energies {
		byRun[e.RunID] = e // the last record of a run_id counts, as in Summarize
	}
	for _, s := range summaries {
		s.Footprint = summaryFootprint(s, byRun)
	}
}

package record

// Footprint figure names (Footprint.Figures, SummaryFootprint.Figures). They
// are derived from the measure phase's energy on the record's basis scope and
// the stated assumptions: facility energy = energy × PUE; gCO2e = facility
// kWh × carbon intensity; cost = facility kWh × price. The "net" figures use
// the idle-adjusted energy (energy_net_j) instead of the gross.
const (
	FFacilityEnergyJ       = "facility_energy_j"
	FFacilityEnergyNetJ    = "facility_energy_net_j"
	FCO2eG                 = "co2e_g"
	FCO2eNetG              = "co2e_net_g"
	FCO2eGPerRequest       = "co2e_g_per_request"
	FCO2eGPerMOutputTokens = "co2e_g_per_m_output_tokens"
	FCost                  = "cost"
	FCostNet               = "cost_net"
	FCostPerRequest        = "cost_per_request"
	FCostPerMOutputTokens  = "cost_per_m_output_tokens"
)

// FootprintFigures lists the footprint figure names in a stable order.
var FootprintFigures = []string{FFacilityEnergyJ, FFacilityEnergyNetJ, FCO2eG, FCO2eNetG, FCO2eGPerRequest,
	FCO2eGPerMOutputTokens, FCost, FCostNet, FCostPerRequest, FCostPerMOutputTokens}

// Assumptions are what a footprint is derived from. A null figure was not
// given; the figures that need it are null too.
type Assumptions struct {
	CarbonIntensityGPerKWh *float64 `json:"carbon_intensity_g_per_kwh"`
	// IntensitySource says where the intensity comes from: a region of the
	// bundled table (its publication), the command line or the config.
	IntensitySource string   `json:"intensity_source,omitempty"`
	IntensityYear   *int     `json:"intensity_year"`
	Region          string   `json:"region,omitempty"`
	PUE             float64  `json:"pue"`
	PUESource       string   `json:"pue_source"` // default | --pue | config energy.pue
	PricePerKWh     *float64 `json:"price_per_kwh"`
	Currency        string   `json:"currency,omitempty"` // ISO 4217 code of the cost figures
}

// Footprint is a run's carbon and cost, derived (not measured) from its
// energy and the assumptions. Estimate is true where the energy is an
// estimate: the derived figures are then estimates too.
type Footprint struct {
	Assumptions
	Estimate bool                `json:"estimate"`
	Figures  map[string]*float64 `json:"figures"`
}

// SummaryFootprint is the footprint's statistics across a config's cycles.
type SummaryFootprint struct {
	Assumptions
	Estimate bool             `json:"estimate"`
	Figures  map[string]*Stat `json:"figures"`
}

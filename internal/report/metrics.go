package report

import (
	"sort"
	"strings"

	"github.com/llem/llem/internal/record"
)

// Metric describes one figure of the energy/summary records as the report
// shows it: a short label for people, a column name with its SI unit for
// machines (CSV, JSON), and the unit the label's values carry.
type Metric struct {
	Name  string // the key in record.Energy.Metrics / record.Summary.Metrics
	Col   string // CSV/JSON column: raw SI number, unit in the name
	Label string // table / Markdown / HTML header
	Unit  string // J, W, s, tok/s, ...; "count" for plain counts, "rel" for ratios shown as %
	// Energy marks figures that come from an energy reading: they are
	// estimates wherever the record is (no sensor), and carry the † marker.
	Energy bool
}

var metricList = []Metric{
	{record.MJPerOutputToken, "energy_per_output_token_j", "energy/out tok", "J", true},
	{record.MJPerOutputTokenNet, "net_energy_per_output_token_j", "net energy/out tok", "J", true},
	{record.MJPerRequest, "energy_per_request_j", "energy/request", "J", true},
	{record.MEnergyJ, "energy_j", "energy", "J", true},
	{record.MEnergyNetJ, "energy_net_j", "net energy", "J", true},
	{record.MIdleJ, "idle_energy_j", "idle energy", "J", true},
	{record.MIdlePowerW, "idle_power_w", "idle power", "W", true},
	{record.MMeanPowerW, "mean_power_w", "power", "W", true},
	{record.MGPUEnergyJ, "gpu_energy_j", "GPU energy", "J", true},
	{record.MCPUEnergyJ, "cpu_energy_j", "CPU energy", "J", true},
	{record.MDRAMEnergyJ, "dram_energy_j", "DRAM energy", "J", true},
	{record.MTotalEnergyJ, "total_energy_j", "total energy", "J", true},
	{record.MLoadEnergyJ, "load_energy_j", "load energy", "J", true},
	{record.MWarmupEnergyJ, "warmup_energy_j", "warmup energy", "J", true},
	{record.MEnergyCounterJ, "energy_counter_j", "energy (counter)", "J", true},
	{record.MEnergyIntegralJ, "energy_integral_j", "energy (integral)", "J", true},
	{record.MCounterIntegralGapRel, "counter_integral_gap_rel", "counter/integral gap", "rel", true},
	{record.MOutputTokensPerJ, "output_tokens_per_j", "out tok/J", "tok/J", true},
	{record.MOutputTokensPerS, "output_tokens_per_s", "out tok/s", "tok/s", false},
	{record.MTotalTokensPerS, "total_tokens_per_s", "in+out tok/s", "tok/s", false},
	{record.MRequestsPerS, "requests_per_s", "req/s", "req/s", false},
	{record.MDurationS, "duration_s", "duration", "s", false},
	{record.MRequests, "requests", "requests", "count", false},
	{record.MInputTokens, "input_tokens", "in tok", "count", false},
	{record.MOutputTokens, "output_tokens", "out tok", "count", false},
	{record.MFLOPs, "flops", "FLOPs", "FLOP", false},
	{record.MFLOPsAttention, "flops_attention", "attention FLOPs", "FLOP", false},
	{record.MFLOPsPerJ, "flops_per_j", "FLOP/J", "FLOP/J", true},
	// Serving runs only.
	{record.MOfferedRateRPS, "offered_rate_rps", "offered", "req/s", false},
	{record.MAchievedRateRPS, "achieved_rate_rps", "achieved", "req/s", false},
	{record.MRequestsFailed, "requests_failed", "failed req", "count", false},
	{record.MGoodputRPS, "goodput_rps", "goodput", "req/s", false},
	{record.MSLOAttainment, "slo_attainment", "SLO attained", "rel", false},
	{record.MServerIdlePowerW, "server_idle_power_w", "server idle power", "W", true},
	{record.MSendLagP50S, "send_lag_p50_s", "send lag p50", "s", false},
	{record.MSendLagP99S, "send_lag_p99_s", "send lag p99", "s", false},
}

func init() {
	for _, l := range []string{"ttft", "itl", "e2e"} {
		for _, q := range []string{"mean", "p50", "p90", "p95", "p99"} {
			n := l + "_" + q + "_s"
			metricList = append(metricList, Metric{n, n, strings.ToUpper(l) + " " + q, "s", false})
		}
	}
	// TPOT (serving runs) has no p95 in the records.
	for _, q := range []string{"mean", "p50", "p90", "p99"} {
		n := "tpot_" + q + "_s"
		metricList = append(metricList, Metric{n, n, "TPOT " + q, "s", false})
	}
	for i := range metricList {
		metricByName[metricList[i].Name] = &metricList[i]
		metricByName[metricList[i].Col] = &metricList[i]
	}
}

var metricByName = map[string]*Metric{}

// DefaultMetrics are the figures shown when --metrics is not given.
var DefaultMetrics = []string{
	record.MJPerOutputToken, record.MEnergyJ, record.MMeanPowerW,
	record.MOutputTokensPerS, record.MTTFTP50S, record.ME2EP50S,
}

// LookupMetric finds a metric by record name or column name. A name not in
// the catalogue (a newer aggregator's figure) gets a description guessed from
// its suffix, so every metric of the records can be shown.
func LookupMetric(name string, known map[string]bool) (*Metric, bool) {
	if m, ok := metricByName[name]; ok {
		return m, true
	}
	if !known[name] {
		return nil, false
	}
	m := &Metric{Name: name, Col: name, Label: strings.ReplaceAll(name, "_", " ")}
	switch {
	case strings.HasSuffix(name, "_per_s"):
		m.Unit = "/s"
	case strings.HasSuffix(name, "_per_j"):
		m.Unit, m.Energy = "/J", true
	case strings.HasSuffix(name, "_j"):
		m.Unit, m.Energy = "J", true
	case strings.HasSuffix(name, "_w"):
		m.Unit, m.Energy = "W", true
	case strings.HasSuffix(name, "_s"):
		m.Unit = "s"
	case strings.HasSuffix(name, "_rel"):
		m.Unit = "rel"
	}
	return m, true
}

// metricNames lists every metric name known from the catalogue and the input.
func metricNames(known map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range metricList {
		out = append(out, m.Name)
		seen[m.Name] = true
	}
	var extra []string
	for n := range known {
		if !seen[n] {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}

package record

// Metric names used in Energy.Metrics and Summary.Metrics. Every name carries
// its unit. Energy figures are over the measure phase on the Energy.Basis scope
// unless the name says otherwise.
const (
	MDurationS          = "duration_s"             // measure window length
	MRequests           = "requests"               // measured requests
	MInputTokens        = "input_tokens"           // prompt tokens of measured requests
	MOutputTokens       = "output_tokens"          // generated tokens of measured requests
	MEnergyJ            = "energy_j"               // gross energy on the basis scope
	MEnergyNetJ         = "energy_net_j"           // gross minus idle power x duration, floored at 0
	MIdleJ              = "idle_j"                 // idle power x duration
	MGPUEnergyJ         = "gpu_energy_j"           // gross, all measured GPUs
	MCPUEnergyJ         = "cpu_energy_j"           // gross, CPU packages (RAPL) or the CPU estimate
	MDRAMEnergyJ        = "dram_energy_j"          // gross, DRAM domains
	MTotalEnergyJ       = "total_energy_j"         // gross, sum of Energy.TotalScopes
	MMeanPowerW         = "mean_power_w"           // energy_j / duration_s
	MJPerOutputToken    = "j_per_output_token"     // energy_j / output_tokens
	MJPerOutputTokenNet = "j_per_output_token_net" // energy_net_j / output_tokens
	MJPerRequest        = "j_per_request"          // energy_j / requests
	MOutputTokensPerJ   = "output_tokens_per_j"    // output_tokens / energy_j
	MOutputTokensPerS   = "output_tokens_per_s"    // output_tokens / duration_s
	MTotalTokensPerS    = "total_tokens_per_s"     // (input+output) / duration_s
	MRequestsPerS       = "requests_per_s"
	MFLOPs              = "flops" // 2 x non-embedding (or active) params x tokens + attention term
	MFLOPsPerJ          = "flops_per_j"
	MTTFTP50S           = "ttft_p50_s"
	MTTFTP99S           = "ttft_p99_s"
	MITLP50S            = "itl_p50_s"
	MITLP99S            = "itl_p99_s"
	ME2EP50S            = "e2e_p50_s"
	ME2EP99S            = "e2e_p99_s"
)

// Further metric names (llem-aggregate). Same rules: units in the name,
// measure phase and Energy.Basis scope unless the name says otherwise.
const (
	MLoadEnergyJ           = "load_energy_j"            // gross, load phase
	MWarmupEnergyJ         = "warmup_energy_j"          // gross, warmup phase
	MIdlePowerW            = "idle_power_w"             // baseline idle power of the basis scope
	MEnergyCounterJ        = "energy_counter_j"         // counter difference, where every basis device has a counter
	MEnergyIntegralJ       = "energy_integral_j"        // trapezoid integral of power, where every basis device has power
	MCounterIntegralGapRel = "counter_integral_gap_rel" // |counter − integral| / counter
	MFLOPsAttention        = "flops_attention"          // the attention part of flops
	MTTFTMeanS             = "ttft_mean_s"
	MTTFTP90S              = "ttft_p90_s"
	MTTFTP95S              = "ttft_p95_s"
	MITLMeanS              = "itl_mean_s"
	MITLP90S               = "itl_p90_s"
	MITLP95S               = "itl_p95_s"
	ME2EMeanS              = "e2e_mean_s"
	ME2EP90S               = "e2e_p90_s"
	ME2EP95S               = "e2e_p95_s"
)

// Serving metric names (serving runs only; absent from batch runs). Rates
// are over the measure window; latency figures over the ok requests sent in
// it; an SLO-dependent figure is null where the config states no SLO. In a
// serving run MRequests counts the ok requests completed in the window and
// MOutputTokens the tokens emitted within it (docs/aggregate.md, "Serving
// runs").
const (
	MOfferedRateRPS   = "offered_rate_rps"    // requests scheduled in the measure window / its length
	MAchievedRateRPS  = "achieved_rate_rps"   // requests completed ok in the window / its length
	MRequestsFailed   = "requests_failed"     // requests sent in the window that did not end ok
	MGoodputRPS       = "goodput_rps"         // ok requests meeting every stated SLO / window length
	MSLOAttainment    = "slo_attainment"      // fraction of requests sent in the window meeting every SLO
	MServerIdlePowerW = "server_idle_power_w" // mean power on the basis scope in the idle phase (model loaded, no traffic)
	MSendLagP50S      = "send_lag_p50_s"      // load generator's send lag
	MSendLagP99S      = "send_lag_p99_s"
	MTPOTMeanS        = "tpot_mean_s" // per request: (e2e − ttft) / (output tokens − 1)
	MTPOTP50S         = "tpot_p50_s"
	MTPOTP90S         = "tpot_p90_s"
	MTPOTP99S         = "tpot_p99_s"
)

package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/llem/llem/internal/aggregate"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/stats"
)

// The serving fixtures under testdata/ are what llem-aggregate emits for a
// rate sweep (energy records, and summaries whose serving figures are
// statistics over the ok cycles). They are committed rather than made on
// each run so that the report's golden files do not move when the
// aggregator's own flags do; -regen-serving writes them again.
var regenServing = flag.Bool("regen-serving", false, "rewrite testdata/serving-*.ndjson from servingStudy")

// servingModel is a model's behaviour under load: requests/s it can
// complete, its unloaded TTFT and TPOT p90, and its idle and busy power.
type servingModel struct {
	name              string
	capRPS            float64
	ttftS, tpotS      float64
	idleW, busyW      float64
	errCycle, lagRate float64 // overloaded cycle with failed requests; rate at which cycle 3's generator lags
}

type servingSpec struct {
	file, study string
	models      []servingModel
	rates       []float64
	cycles      int
	slo         map[string]*float64 // ttft_ms, tpot_ms, e2e_ms; nil: no SLO stated
}

var servingSpecs = []servingSpec{
	// Two models, five rates, three cycles; llem-small meets the SLO up to
	// 4 req/s (the third rate), llem-base up to 2 req/s.
	{"serving-sweep.ndjson", "serve-sweep", []servingModel{
		{"llem-small", 10, 0.06, 0.0185, 120, 450, 2, 16},
		{"llem-base", 6, 0.12, 0.0336, 140, 620, 0, 0},
	}, []float64{1, 2, 4, 8, 16}, 3, map[string]*float64{"ttft_ms": fp(500), "tpot_ms": fp(50), "e2e_ms": nil}},
	// An SLO tighter than the unloaded TTFT: no rate meets it.
	{"serving-nomeet.ndjson", "serve-tight", []servingModel{{"llem-small", 10, 0.06, 0.0185, 120, 450, 0, 0}},
		[]float64{1, 2, 4, 8, 16}, 3, map[string]*float64{"ttft_ms": fp(40), "tpot_ms": nil, "e2e_ms": fp(5000)}},
	// No SLO: goodput and attainment are null, the curves are still drawn.
	{"serving-noslo.ndjson", "serve-noslo", []servingModel{{"llem-small", 10, 0.06, 0.0185, 120, 450, 0, 0}},
		[]float64{1, 2, 4, 8, 16}, 3, nil},
}

// TestServingFixtures rewrites the fixtures with -regen-serving.
func TestServingFixtures(t *testing.T) {
	if !*regenServing {
		t.Skip("-regen-serving rewrites testdata/serving-*.ndjson")
	}
	for _, sp := range servingSpecs {
		if err := os.WriteFile(filepath.Join("testdata", sp.file), servingStudy(sp), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// servingStudy makes the records of one sweep: every model at every rate
// for every cycle, then the summaries.
func servingStudy(sp servingSpec) []byte {
	h := fnv.New64a()
	h.Write([]byte(sp.study))
	rng := rand.New(rand.NewPCG(11, h.Sum64()))
	hash := fmt.Sprintf("%016x", rng.Uint64())
	type cfg struct {
		id  string
		m   servingModel
		r   float64
		raw json.RawMessage
	}
	var cfgs []cfg
	for _, m := range sp.models {
		for _, r := range sp.rates {
			raw, _ := json.Marshal(map[string]any{"backend": "vllm", "model": m.name, "precision": "bf16", "max_output_tokens": 128,
				"serving": map[string]any{"api": "completions", "arrival": "poisson", "rate": r, "burstiness": nil, "concurrency": nil, "max_in_flight": nil,
					"duration_s": 60, "requests": nil, "idle_s": 10, "warmup_s": 10, "cooldown_s": 5, "seed": 1, "slo": sloJSON(sp.slo)}})
			cfgs = append(cfgs, cfg{fmt.Sprintf("%016x", rng.Uint64()), m, r, raw})
		}
	}
	var energies []*record.Energy
	now := int64(1764900000000000000)
	for cy := 1; cy <= sp.cycles; cy++ {
		for _, c := range cfgs {
			e := servingRun(sp, c.m, c.r, cy, rng, now)
			e.StudyHash = hash
			e.ID, e.RunID, e.Config, e.Seq = c.id, fmt.Sprintf("%s-c%d", c.id, cy), c.raw, len(energies)
			e.RunDir = "/results/" + sp.study + "/runs/" + e.RunID
			energies = append(energies, e)
			now = e.Phases[record.PhaseCooldown].Window.EndNS + 5e9
		}
	}
	sums := aggregate.Summarize(energies, aggregate.DefaultOptions())
	for _, s := range sums {
		for _, name := range []string{record.MOfferedRateRPS, record.MAchievedRateRPS, record.MRequestsFailed, record.MGoodputRPS, record.MSLOAttainment,
			record.MServerIdlePowerW, record.MSendLagP50S, record.MSendLagP99S, record.MTPOTMeanS, record.MTPOTP50S, record.MTPOTP90S, record.MTPOTP99S} {
			var vals []float64
			for _, e := range energies {
				if e.ID == s.ID && e.Status == record.StatusOK && e.Metrics[name] != nil {
					vals = append(vals, *e.Metrics[name])
				}
			}
			s.Metrics[name] = stats.Summary(vals)
		}
	}
	var out bytes.Buffer
	w := record.NewWriter(&out)
	for _, e := range energies {
		w.Write(e)
	}
	for _, s := range sums {
		w.Write(s)
	}
	w.Flush()
	return out.Bytes()
}

func sloJSON(s map[string]*float64) map[string]*float64 {
	if s == nil {
		return map[string]*float64{"ttft_ms": nil, "tpot_ms": nil, "e2e_ms": nil}
	}
	return s
}

// servingRun is one run of model m at rate r: an M/M/1-like rise of TTFT
// towards the model's capacity, TPOT growing with the batch, and past
// capacity a saturated server whose queue (and TTFT) keeps growing.
func servingRun(sp servingSpec, m servingModel, r float64, cycle int, rng *rand.Rand, t0 int64) *record.Energy {
	noise := func() float64 { return 1 + 0.03*rng.NormFloat64() }
	var flags []record.Flag
	rho := r / m.capRPS
	achieved, ttft, tpot := r*(1+0.01*rng.NormFloat64()), m.ttftS/(1-rho), m.tpotS*(1+3*rho*rho)
	if rho >= 0.95 {
		achieved, ttft, tpot = 0.96*m.capRPS*(1+0.01*rng.NormFloat64()), m.ttftS*(10+20*(rho-1)), m.tpotS*4
		flags = append(flags, record.Flag{Code: "saturated", Message: fmt.Sprintf("achieved %.2f req/s of %.0f offered; the queue grew over the window", achieved, r)})
	}
	ttft, tpot = ttft*noise(), tpot*noise()
	failed := 0.0
	if rho >= 0.95 && float64(cycle) == m.errCycle {
		failed = 3
		flags = append(flags, record.Flag{Code: "request_errors", Message: "3 of 960 requests failed: HTTP 503 (server overloaded)"})
	}
	lagP99 := 0.0004 * noise()
	if r == m.lagRate && cycle == 3 {
		lagP99 = 0.35
		flags = append(flags, record.Flag{Code: "generator_lagged", Message: "send lag p99 350 ms over the 50 ms limit"})
	}
	// Joint attainment of independent, exponential-tailed TTFT and TPOT.
	att := 1.0
	for _, o := range []struct {
		slo *float64
		p90 float64
	}{{sp.slo["ttft_ms"], ttft}, {sp.slo["tpot_ms"], tpot}, {sp.slo["e2e_ms"], ttft + 127*tpot}} {
		if o.slo != nil {
			att *= 1 - math.Pow(0.1, *o.slo/1000/o.p90)
		}
	}
	const dur, outLen = 60.0, 128.0
	pw := (m.idleW + (m.busyW-m.idleW)*math.Pow(math.Min(1, achieved/m.capRPS), 0.7)) * noise()
	reqs := math.Round(achieved * dur)
	tok := reqs * outLen
	e2e := ttft + (outLen-1)*tpot
	met := map[string]float64{
		"duration_s": dur, "requests": reqs, "input_tokens": reqs * 512, "output_tokens": tok, "energy_j": pw * dur, "gpu_energy_j": pw * dur,
		"total_energy_j": pw * dur, "mean_power_w": pw, "j_per_output_token": pw * dur / tok, "j_per_request": pw * dur / reqs,
		"output_tokens_per_j": tok / (pw * dur), "output_tokens_per_s": tok / dur, "total_tokens_per_s": reqs * (512 + outLen) / dur, "requests_per_s": reqs / dur,
		"ttft_mean_s": ttft * 0.55, "ttft_p50_s": ttft * 0.45, "ttft_p90_s": ttft, "ttft_p95_s": ttft * 1.3, "ttft_p99_s": ttft * 2,
		"itl_mean_s": tpot * 0.95, "itl_p50_s": tpot * 0.9, "itl_p90_s": tpot * 1.05, "itl_p95_s": tpot * 1.2, "itl_p99_s": tpot * 1.6,
		"e2e_mean_s": e2e * 0.7, "e2e_p50_s": e2e * 0.65, "e2e_p90_s": e2e, "e2e_p95_s": e2e * 1.1, "e2e_p99_s": e2e * 1.3,
		"offered_rate_rps": r * (1 + 0.015*rng.NormFloat64()), "achieved_rate_rps": achieved, "requests_failed": failed,
		"server_idle_power_w": m.idleW * noise(), "send_lag_p50_s": 0.00012, "send_lag_p99_s": lagP99,
		"tpot_mean_s": tpot * 0.8, "tpot_p50_s": tpot * 0.75, "tpot_p90_s": tpot, "tpot_p99_s": tpot * 1.4,
	}
	if lagP99 > 0.1 {
		met["offered_rate_rps"] = r * 0.81
	}
	if sp.slo != nil {
		met["slo_attainment"], met["goodput_rps"] = att, achieved*att
	}
	e := &record.Energy{Kind: record.KindEnergy, V: 1, Study: sp.study, Cycle: cycle, NCycles: sp.cycles,
		Backend: "vllm", Model: m.name, Status: record.StatusOK, Host: "gpu-node-03", Basis: "gpu", TotalScopes: []string{"gpu"},
		Metrics: map[string]*float64{}, Flags: append([]record.Flag{}, flags...), Phases: servingPhases(t0, dur, m.idleW, pw)}
	for k, v := range met {
		e.Metrics[k] = fp(v)
	}
	for _, k := range []string{"energy_net_j", "idle_j", "idle_power_w", "j_per_output_token_net", "flops", "flops_per_j", "cpu_energy_j", "dram_energy_j", "goodput_rps", "slo_attainment"} {
		if _, ok := met[k]; !ok {
			e.Metrics[k] = nil
		}
	}
	lat := func(p90, lo float64) *record.Latency {
		return &record.Latency{N: int(reqs), Mean: fp(p90 * 0.55), P50: fp(p90 * 0.45), P90: fp(p90), P95: fp(p90 * 1.3), P99: fp(p90 * 2), Min: fp(p90 * lo), Max: fp(p90 * 2.6)}
	}
	e.TTFT, e.ITL, e.E2E = lat(ttft, 0.2), lat(tpot*1.05, 0.5), lat(e2e, 0.4)
	return e
}

// servingPhases are a serving run's idle, warmup, measure and cooldown windows on one GPU.
func servingPhases(t0 int64, dur, idleW, busyW float64) map[string]*record.PhaseEnergy {
	const gpu = "GPU-5e7f0000-0000-4000-8000-000000000003"
	out := map[string]*record.PhaseEnergy{}
	at := t0
	for _, ph := range []struct {
		name string
		s, w float64
	}{{record.PhaseIdle, 10, idleW}, {record.PhaseWarmup, 10, busyW}, {record.PhaseMeasure, dur, busyW}, {record.PhaseCooldown, 5, busyW}} {
		w := record.Window{StartNS: at, EndNS: at + int64(ph.s*1e9)}
		at = w.EndNS
		j := ph.w * ph.s
		out[ph.name] = &record.PhaseEnergy{Window: w, DurationS: ph.s, Devices: []record.DeviceEnergy{{Device: gpu, Scope: "gpu", Source: "nvml", Method: "counter",
			EnergyJ: fp(j), CounterJ: fp(j), MeanPowerW: fp(ph.w), Samples: int(ph.s * 10)}}, Scopes: map[string]*record.ScopeEnergy{"gpu": {GrossJ: fp(j), Devices: 1}}}
	}
	return out
}

package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/aggregate"
	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

func fp(v float64) *float64 { return &v }

// writeRunDir gives an energy record a run directory: run.json (host facts),
// events.ndjson (phases and nReq requests) and samples.arrows, a power trace
// of each device of the record that follows its phases' mean power, with a
// ripple, every 100 ms from 0.5 s before the first phase to 0.5 s after the last.
func writeRunDir(t testing.TB, dir string, e *record.Energy, host record.Host, nReq int, rng *rand.Rand) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := record.Run{Experiment: record.Experiment{Kind: record.KindRun, V: 1, Study: e.Study, StudyHash: e.StudyHash, ID: e.ID, RunID: e.RunID,
		Seq: e.Seq, Cycle: e.Cycle, NCycles: e.NCycles, Backend: e.Backend, Model: e.Model, Config: e.Config, Runner: record.Runner{Type: "local"}},
		Status: e.Status, Error: e.Error, RunDir: e.RunDir, SampleFile: "samples.arrows", EventsFile: "events.ndjson", Host: host,
		Worker: &record.Worker{Backend: e.Backend, Version: "1"}}
	b, _ := json.Marshal(run)
	if err := os.WriteFile(filepath.Join(dir, "run.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Phases in time order, and the devices with their mean power per phase.
	type ph struct {
		name string
		w    record.Window
		pw   map[string]float64
	}
	var phases []ph
	devs := map[string]record.DeviceEnergy{}
	var order []string
	for _, name := range []string{"load", "warmup", "measure"} {
		p := e.Phases[name]
		if p == nil {
			continue
		}
		x := ph{name: name, w: p.Window, pw: map[string]float64{}}
		for _, d := range p.Devices {
			if _, ok := devs[d.Device]; !ok {
				order = append(order, d.Device)
			}
			devs[d.Device] = d
			if d.MeanPowerW != nil {
				x.pw[d.Device] = *d.MeanPowerW
			}
		}
		phases = append(phases, x)
	}
	var ev bytes.Buffer
	enc := json.NewEncoder(&ev)
	enc.Encode(record.Event{Event: "hello", T: 0, Backend: e.Backend, Version: "1"})
	for _, p := range phases {
		enc.Encode(record.Event{Event: "phase", T: p.w.StartNS, Phase: p.name, Edge: "start"})
		if p.name == "measure" && nReq > 0 {
			ttft, e2e := 0.05, 0.2
			if e.TTFT != nil && e.TTFT.P50 != nil {
				ttft = *e.TTFT.P50
			}
			if e.E2E != nil && e.E2E.P50 != nil {
				e2e = *e.E2E.P50
			}
			span := float64(p.w.EndNS - p.w.StartNS)
			for k := 0; k < nReq; k++ {
				st := p.w.StartNS + int64(span*float64(k)/float64(nReq)*0.5)
				f := 0.7 + 0.6*rng.Float64()
				end := st + int64(e2e*f*1e9)
				end = min(end, p.w.EndNS)
				first := st + int64(ttft*f*1e9)
				first = min(first, end)
				enc.Encode(record.Event{Event: "request", T: end, Request: &record.RequestEvent{ID: k, InputTokens: 64, OutputTokens: 32, TStartNS: st, TFirstNS: first, TEndNS: end}})
			}
		}
		enc.Encode(record.Event{Event: "phase", T: p.w.EndNS, Phase: p.name, Edge: "end"})
	}
	if err := os.WriteFile(filepath.Join(dir, "events.ndjson"), ev.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(phases) == 0 {
		return
	}
	var pdevs []power.Device
	for _, name := range order {
		d := devs[name]
		pdevs = append(pdevs, power.Device{Device: name, Source: d.Source, Scope: d.Scope, Estimate: d.Estimate})
	}
	f, err := os.Create(filepath.Join(dir, "samples.arrows"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := power.NewWriter(f, power.Meta{Host: host.Hostname, SamplerVersion: power.SamplerVersion, IntervalNS: 100e6, Devices: pdevs})
	if err != nil {
		t.Fatal(err)
	}
	t0, t1 := phases[0].w.StartNS-500e6, phases[len(phases)-1].w.EndNS+500e6
	for ts := t0; ts <= t1; ts += 100e6 {
		for i, name := range order {
			d := devs[name]
			pw := math.NaN()
			for _, p := range phases {
				if v, ok := p.pw[name]; ok && ts >= p.w.StartNS-50e6 && ts < p.w.EndNS+50e6 {
					pw = v
				}
			}
			if math.IsNaN(pw) { // between phases and around the run: idle-ish
				pw = 0.4 * phases[0].pw[name]
			}
			pw *= 1 + 0.04*math.Sin(float64(ts-t0)/3e8+float64(i))
			w.Append(power.Sample{T: ts, Source: d.Source, Device: name, PowerW: pw, Has: power.HasPower})
		}
		if w.Buffered() > 1000 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(power.Trailer{EndNS: t1}); err != nil {
		t.Fatal(err)
	}
}

// studyFixture is aggregate's golden study (a recorded llem-aggregate
// output) with run directories written for its runs under a temporary root.
func studyFixture(t testing.TB) (stream []byte, root string) {
	stream, err := os.ReadFile("testdata/study.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	host := record.Host{Hostname: "node1", OS: "linux", Arch: "amd64", Kernel: "6.1.0-18-amd64", CPUModel: "AMD EPYC 9354", CPUs: 64,
		GPUs: []record.GPU{{Index: 0, UUID: "GPU-6f1c2a7e-0000-4000-8000-000000000001", Name: "NVIDIA H100 80GB HBM3",
			MemoryTotalBytes: func() *int64 { v := int64(80 << 30); return &v }(), PowerLimitW: fp(700)}},
		DriverVersion: "550.54.15", CUDAVersion: "12.4", NVMLVersion: "12.550.54.15"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, line := range strings.Split(strings.TrimSpace(string(stream)), "\n") {
		if !strings.Contains(line[:30], `"energy"`) {
			continue
		}
		var e record.Energy
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(e.RunDir, "/data/old/results/")
		writeRunDir(t, filepath.Join(root, rel), &e, host, 8, rng)
	}
	return stream, root
}

// synthStudy makes a study of nModels × nPrec × nBatch configs × cycles
// runs: energy records with plausible figures (throughput grows with batch
// size, energy per token falls), a failed run now and then, an estimated
// model and some flags; summaries from llem-aggregate's own Summarize. With
// root, every run also gets a run directory.
func synthStudy(t testing.TB, nModels, nPrec, nBatch, cycles int, root string) []byte {
	models := []string{"llem-tiny", "llem-small", "llem-base", "llem-large", "llem-xl", "llem-xxl"}[:nModels]
	precs := []string{"fp32", "bf16", "fp16", "int8"}[:nPrec]
	batches := []int{1, 2, 4, 8, 16, 32, 64}[:nBatch]
	rng := rand.New(rand.NewPCG(7, 9))
	host := record.Host{Hostname: "gpu-node-07", OS: "linux", Arch: "amd64", CPUs: 32,
		GPUs: []record.GPU{{UUID: "GPU-00000000-0000-4000-8000-0000000000a1", Name: "NVIDIA A100-SXM4-40GB"}}, DriverVersion: "535.161.08", CUDAVersion: "12.2"}
	var out bytes.Buffer
	var energies []*record.Energy
	seq := 0
	const t0 = int64(1764300000000000000)
	now := t0
	type cfg struct {
		id, model, prec string
		batch, mi, pi   int
		raw             json.RawMessage
	}
	var cfgs []cfg
	for mi, m := range models {
		for pi, p := range precs {
			for _, b := range batches {
				raw, _ := json.Marshal(map[string]any{"backend": "native", "model": m, "precision": p, "native": map[string]any{"batch_size": b, "threads": 0}, "n": 64})
				cfgs = append(cfgs, cfg{id: fmt.Sprintf("%016x", rng.Uint64()), model: m, prec: p, batch: b, mi: mi, pi: pi, raw: raw})
			}
		}
	}
	for cy := 1; cy <= cycles; cy++ {
		for _, c := range cfgs {
			e := &record.Energy{Kind: record.KindEnergy, V: 1, Study: "sweep", StudyHash: "5eed5eed5eed5eed", ID: c.id, RunID: fmt.Sprintf("%s-c%d", c.id, cy),
				Seq: seq, Cycle: cy, NCycles: cycles, Backend: "native", Model: c.model, Config: c.raw, Status: record.StatusOK, Host: host.Hostname,
				Basis: "gpu", TotalScopes: []string{"gpu"}, Metrics: map[string]*float64{}, Flags: []record.Flag{}}
			e.RunDir = fmt.Sprintf("/results/sweep-5eed5eed/runs/%s", e.RunID)
			seq++
			size := math.Pow(3, float64(c.mi))
			noise := 1 + 0.03*rng.NormFloat64()
			tps := 900 / size * math.Pow(float64(c.batch), 0.8) * (1 + 0.35*float64(c.pi)) * noise
			// Power grows faster than throughput at large batches: energy per token has a minimum.
			pw := (110 + 14*math.Pow(float64(c.batch), 0.95) + 25*float64(c.mi) + 20*float64(c.pi)) * (1 + 0.02*rng.NormFloat64())
			outTok := 64.0 * 128
			dur := outTok / tps
			estimate := c.model == "llem-tiny" && c.prec == "int8"
			load := record.Window{StartNS: now, EndNS: now + 2e9}
			warm := record.Window{StartNS: load.EndNS + 1e8, EndNS: load.EndNS + 1e9}
			meas := record.Window{StartNS: warm.EndNS + 1e7, EndNS: warm.EndNS + 1e7 + int64(dur*1e9)}
			now = meas.EndNS + 2e9
			dev := "GPU-00000000-0000-4000-8000-0000000000a1"
			src, scope := "nvml", "gpu"
			if estimate {
				dev, src, scope = "cpu-estimate", "estimate", record.ScopeCPUEst
				e.Basis, e.TotalScopes, e.Estimate = "total", []string{record.ScopeCPUEst}, true
				e.Flags = append(e.Flags, record.Flag{Code: "estimate_source", Message: "energy of this device is an estimate (no sensor), not a measurement", Device: dev})
			}
			mk := func(w record.Window, p float64) *record.PhaseEnergy {
				j := p * w.DurationS()
				return &record.PhaseEnergy{Window: w, DurationS: w.DurationS(), Devices: []record.DeviceEnergy{{Device: dev, Scope: scope, Source: src, Estimate: estimate,
					Method: "counter", EnergyJ: fp(j), CounterJ: fp(j), MeanPowerW: fp(p), Samples: int(w.DurationS() * 10)}},
					Scopes: map[string]*record.ScopeEnergy{scope: {GrossJ: fp(j), Devices: 1, Estimate: estimate}}}
			}
			e.Phases = map[string]*record.PhaseEnergy{"load": mk(load, 0.6*pw), "warmup": mk(warm, 0.9*pw), "measure": mk(meas, pw)}
			if seq%41 == 17 {
				e.Status = record.StatusFailed
				e.Error = &record.Error{Type: "worker_error", Code: "oom", Message: "CUDA out of memory while allocating the KV cache"}
				e.Flags = append(e.Flags, record.Flag{Code: "run_not_ok", Message: "run status is failed: figures are null"})
				delete(e.Phases, "measure")
				delete(e.Phases, "warmup")
				for _, m := range metricList {
					e.Metrics[m.Name] = nil
				}
			} else {
				ej := pw * dur
				ttft := (0.02 + 0.004*float64(c.batch)) * size * (1 + 0.1*rng.Float64())
				e2e := ttft + 128*dur/outTok*float64(c.batch)
				set := map[string]float64{"duration_s": dur, "requests": 64, "input_tokens": 64 * 256, "output_tokens": outTok, "energy_j": ej, "gpu_energy_j": ej,
					"total_energy_j": ej, "mean_power_w": pw, "j_per_output_token": ej / outTok, "j_per_request": ej / 64, "output_tokens_per_j": outTok / ej,
					"output_tokens_per_s": tps, "total_tokens_per_s": tps * 3, "requests_per_s": 64 / dur, "ttft_p50_s": ttft, "ttft_p99_s": ttft * 1.8,
					"e2e_p50_s": e2e, "e2e_p99_s": e2e * 1.4, "itl_p50_s": dur / 128, "itl_p99_s": dur / 64, "load_energy_j": 1.2 * pw, "warmup_energy_j": 0.9 * pw}
				for k, v := range set {
					e.Metrics[k] = fp(v)
				}
				for _, k := range []string{"energy_net_j", "idle_j", "idle_power_w", "j_per_output_token_net", "flops", "flops_per_j", "cpu_energy_j", "dram_energy_j"} {
					e.Metrics[k] = nil
				}
				e.TTFT = &record.Latency{N: 64, P50: fp(ttft), P90: fp(ttft * 1.5), P95: fp(ttft * 1.6), P99: fp(ttft * 1.8), Min: fp(ttft * 0.7), Max: fp(ttft * 2)}
				e.E2E = &record.Latency{N: 64, P50: fp(e2e), P90: fp(e2e * 1.2), P95: fp(e2e * 1.3), P99: fp(e2e * 1.4), Min: fp(e2e * 0.8), Max: fp(e2e * 1.5)}
				if rng.IntN(9) == 0 {
					e.Flags = append(e.Flags, record.Flag{Code: "thermal_drift", Message: "temperature rose 12.5 °C over the measure window", Device: dev, Phase: "measure"})
				}
			}
			energies = append(energies, e)
			if root != "" {
				writeRunDir(t, filepath.Join(root, "sweep-5eed5eed", "runs", e.RunID), e, host, 16, rng)
			}
		}
	}
	w := record.NewWriter(&out)
	for _, e := range energies {
		w.Write(e)
	}
	for _, s := range aggregate.Summarize(energies, aggregate.DefaultOptions()) {
		w.Write(s)
	}
	w.Flush()
	return out.Bytes()
}

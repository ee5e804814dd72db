package aggregate

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/llem/llem/internal/record"
)

// sampleRow is one row of a sample stream; NaN power/energy/temp mean null.
type sampleRow struct {
	t        int64
	device   string
	source   string
	power    float64
	energy   float64
	temp     float64
	throttle uint64
}

// writeSamples writes rows as an Arrow IPC stream with the sample
// schema of docs/design.md (batches of batchRows rows).
func writeSamples(t testing.TB, path string, intervalMS string, rows []sampleRow, batchRows int) {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "t", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
		{Name: "source", Type: arrow.BinaryTypes.String},
		{Name: "device", Type: arrow.BinaryTypes.String},
		{Name: "power_w", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "energy_j", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "temp_c", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "throttle", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
	}, func() *arrow.Metadata {
		m := arrow.NewMetadata([]string{"interval_ms"}, []string{intervalMS})
		return &m
	}())
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := ipc.NewWriter(f, ipc.WithSchema(schema))
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	flt := func(i int, v float64) {
		fb := b.Field(i).(*array.Float64Builder)
		if math.IsNaN(v) {
			fb.AppendNull()
		} else {
			fb.Append(v)
		}
	}
	flush := func() {
		rec := b.NewRecord()
		defer rec.Release()
		if rec.NumRows() > 0 {
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, r := range rows {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(r.t))
		b.Field(1).(*array.StringBuilder).Append(r.source)
		b.Field(2).(*array.StringBuilder).Append(r.device)
		flt(3, r.power)
		flt(4, r.energy)
		flt(5, r.temp)
		if r.source == "nvml" {
			b.Field(6).(*array.Uint64Builder).Append(r.throttle)
		} else {
			b.Field(6).AppendNull()
		}
		if (i+1)%batchRows == 0 {
			flush()
		}
	}
	flush()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// device simulates one sensor: true power at 1 ms resolution, an exact
// cumulative counter, and what a poller reads every interval.
type device struct {
	name, source string
	power        func(t int64) float64 // true power at t (ns since t0)
	counter      bool
	powerReading bool
	temp         func(t int64) float64
	throttle     func(t int64) uint64
}

const t0 = int64(1_764_300_000_000_000_000)

func simulate(devs []device, end, interval int64, drop func(t int64) bool) []sampleRow {
	var rows []sampleRow
	cum := make([]float64, len(devs))
	last := int64(0)
	for tick := int64(0); tick <= end; tick += interval {
		// exact energy up to tick, by 1 ms midpoint steps
		for d := range devs {
			for s := last; s < tick; s += ms {
				cum[d] += devs[d].power(s+ms/2) * 1e-3
			}
		}
		last = tick
		if drop != nil && drop(tick) {
			continue
		}
		for d, dv := range devs {
			r := sampleRow{t: t0 + tick, device: dv.name, source: dv.source, power: math.NaN(), energy: math.NaN(), temp: math.NaN()}
			if dv.powerReading {
				r.power = dv.power(tick)
			}
			if dv.counter {
				r.energy = cum[d]
			}
			if dv.temp != nil {
				r.temp = dv.temp(tick)
			}
			if dv.throttle != nil {
				r.throttle = dv.throttle(tick)
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func win(a, b int64) *record.Window { return &record.Window{StartNS: t0 + a, EndNS: t0 + b} }

func i64p(v int64) *int64 { return &v }
func ip(v int) *int       { return &v }
func bp(v bool) *bool     { return &v }

// fixtureRun is one recorded run of the golden study.
type fixtureRun struct {
	id, runID   string
	cycle       int
	status      string
	errMsg      string
	devs        []device
	phases      record.Phases
	end         int64
	drop        func(t int64) bool
	reqs        []record.RequestEvent
	persistence *bool
	model       *record.ModelFacts
	estimate    bool
}

func requests(start int64, batches, perBatch int, seed uint64) []record.RequestEvent {
	rng := rand.New(rand.NewPCG(seed, 99))
	var out []record.RequestEvent
	t := start
	id := 0
	for b := 0; b < batches; b++ {
		prefill := int64(250*ms) + rng.Int64N(int64(50*ms))
		end := t
		for k := 0; k < perBatch; k++ {
			n := 40 + rng.IntN(40)
			r := record.RequestEvent{ID: id, Batch: b, InputTokens: 100 + rng.IntN(400), OutputTokens: n,
				TStartNS: t, TFirstNS: t + prefill}
			tt := r.TFirstNS
			for j := 1; j < n; j++ {
				g := int64(45*ms) + rng.Int64N(int64(10*ms))
				r.ITLNS = append(r.ITLNS, g)
				tt += g
			}
			r.TEndNS = tt
			end = max(end, tt)
			out = append(out, r)
			id++
		}
		t = end + 100*ms
	}
	return out
}

// gpuLoad is true GPU power: idle, load, warmup, then prefill bursts and decode.
func gpuLoad(idle, busy float64, measureStart int64, reqs []record.RequestEvent, jitter float64) func(int64) float64 {
	return func(t int64) float64 {
		switch {
		case t < 500*ms:
			return idle
		case t < 2000*ms:
			return idle + 60
		case t < measureStart:
			return busy * 0.8
		}
		abs := t0 + t
		p := idle + 20
		for _, r := range reqs {
			if abs >= r.TStartNS && abs < r.TFirstNS {
				p = busy + 80
				break
			}
			if abs >= r.TFirstNS && abs < r.TEndNS {
				p = busy
			}
		}
		return p + jitter*math.Sin(float64(t)/7e7)
	}
}

func buildStudy(t testing.TB, root string) []byte {
	study, hash := "demo", "0123abcd45678901"
	model := &record.ModelFacts{Name: "llem-tiny", Parameters: i64p(124_000_000), NonEmbeddingParameters: i64p(85_000_000),
		Layers: ip(12), HiddenSize: ip(768), Heads: ip(12), HeadDim: ip(64), VocabSize: ip(50257), DType: "float16"}
	gpu := "GPU-6f1c2a7e-0000-4000-8000-000000000001"
	rapl := func(pkgBusy float64) []device {
		return []device{
			{name: "package-0", source: "rapl", counter: true, powerReading: true, power: func(t int64) float64 {
				if t > 500*ms && t < 13000*ms {
					return pkgBusy
				}
				return 40
			}},
			{name: "dram-0", source: "rapl", counter: true, powerReading: true, power: func(int64) float64 { return 8 }},
		}
	}
	var runs []fixtureRun
	for c := 1; c <= 3; c++ {
		reqs := requests(t0+3000*ms, 2, 4, uint64(c))
		devs := append([]device{{name: gpu, source: "nvml", counter: true, powerReading: true,
			power: gpuLoad(60, 280+float64(c)*5, 3000*ms, reqs, 15),
			temp:  func(t int64) float64 { return 45 + float64(t)/1e9 }}}, rapl(85+float64(c))...)
		runs = append(runs, fixtureRun{id: "a1b2c3d4e5f60718", runID: "a1b2c3d4e5f60718-c" + string(rune('0'+c)), cycle: c, status: "ok",
			devs: devs, phases: record.Phases{Load: win(500*ms, 2000*ms), Warmup: win(2000*ms, 3000*ms), Measure: win(3000*ms, 12000*ms)},
			end: 13500 * ms, reqs: reqs, persistence: bp(true), model: model})
	}
	// A run that failed while loading: phases it reached are kept, figures null.
	runs = append(runs, fixtureRun{id: "0f0e0d0c0b0a0908", runID: "0f0e0d0c0b0a0908-c1", cycle: 1, status: "failed",
		errMsg: "CUDA out of memory while loading the model",
		devs:   []device{{name: gpu, source: "nvml", counter: true, powerReading: true, power: func(int64) float64 { return 90 }}},
		phases: record.Phases{Load: win(500*ms, 1800*ms)}, end: 2000 * ms})
	// A CPU-only run with the labelled estimate and a too-short window.
	cpuReqs := requests(t0+1000*ms, 1, 2, 7)
	for i := range cpuReqs {
		cpuReqs[i].ITLNS = cpuReqs[i].ITLNS[:3]
		cpuReqs[i].OutputTokens = 4
		cpuReqs[i].TFirstNS = cpuReqs[i].TStartNS + 50*ms
		cpuReqs[i].TEndNS = cpuReqs[i].TFirstNS + 150*ms
	}
	runs = append(runs, fixtureRun{id: "1111222233334444", runID: "1111222233334444-c1", cycle: 1, status: "ok", estimate: true,
		devs:   []device{{name: "cpu", source: "estimate", powerReading: true, power: func(t int64) float64 { return 15 + 30*float64(t%(400*ms))/4e8 }}},
		phases: record.Phases{Load: win(200*ms, 900*ms), Measure: win(1000*ms, 1300*ms)}, end: 1500 * ms, reqs: cpuReqs, model: model})
	// A troubled GPU run: persistence off, heating up, throttling, samples
	// dropped for 1.2 s, and 30 ms spikes every 250 ms that 100 ms polls mostly miss.
	hot := requests(t0+3000*ms, 2, 4, 11)
	base := gpuLoad(60, 300, 3000*ms, hot, 0)
	runs = append(runs, fixtureRun{id: "5555666677778888", runID: "5555666677778888-c1", cycle: 1, status: "ok",
		devs: []device{{name: gpu, source: "nvml", counter: true, powerReading: true,
			power: func(t int64) float64 {
				if t >= 3000*ms && t%(250*ms) < 30*ms {
					return base(t) + 350
				}
				return base(t)
			},
			temp: func(t int64) float64 { return 50 + 2.5*float64(t)/1e9 },
			throttle: func(t int64) uint64 {
				if t > 8000*ms {
					return ThrottleSWThermal | 0x1
				}
				return 0
			}}},
		phases: record.Phases{Load: win(500*ms, 2000*ms), Warmup: win(2000*ms, 3000*ms), Measure: win(3000*ms, 12000*ms)},
		end:    12500 * ms, reqs: hot, persistence: bp(false), model: model,
		drop: func(t int64) bool { return t > 6000*ms && t < 7200*ms }})

	var stream []byte
	emit := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		stream = append(append(stream, b...), '\n')
	}
	emit(map[string]any{"kind": "experiment", "v": 1, "study": study, "study_hash": hash, "id": "a1b2c3d4e5f60718", "seq": 0, "cycle": 1,
		"n_cycles": 3, "run_id": "a1b2c3d4e5f60718-c1", "backend": "native", "model": "llem-tiny", "gap_before_s": 0,
		"config": map[string]any{"model": "llem-tiny", "backend": "native"}, "runner": map[string]any{"type": "local"}})
	emit(record.Baseline{Kind: record.KindBaseline, V: 1, ID: "baseline-1", Study: study, StudyHash: hash, Host: "node1", Method: "measured",
		Window: record.Window{StartNS: t0 - 31e9, EndNS: t0 - 1e9}, DurationS: 30, SampleFile: "/data/old/results/demo-0123abcd/baseline-1.arrows",
		Devices: []record.BaselineDevice{
			{Device: gpu, Source: "nvml", Scope: "gpu", PowerW: ptr(60), Samples: 300},
			{Device: "package-0", Source: "rapl", Scope: "cpu_package", PowerW: ptr(40), Samples: 300},
			{Device: "dram-0", Source: "rapl", Scope: "dram", PowerW: ptr(8), Samples: 300},
			{Device: "cpu", Source: "estimate", Scope: "cpu_estimate", PowerW: ptr(15), Samples: 300, Estimate: true}}})
	for seq, fr := range runs {
		dir := filepath.Join(root, "demo-0123abcd", "runs", fr.runID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeSamples(t, filepath.Join(dir, "samples.arrows"), "100", simulate(fr.devs, fr.end, 100*ms, fr.drop), 64)
		var ev []byte
		for _, x := range []any{record.Event{Event: "hello", T: t0, Backend: "native", Version: "0.1", PID: 4242},
			record.Event{Event: "model", T: t0 + 1, Model: fr.model}} {
			b, _ := json.Marshal(x)
			ev = append(append(ev, b...), '\n')
		}
		var in, out int64
		for i := range fr.reqs {
			b, _ := json.Marshal(record.Event{Event: "request", T: fr.reqs[i].TEndNS, Request: &fr.reqs[i]})
			ev = append(append(ev, b...), '\n')
			in += int64(fr.reqs[i].InputTokens)
			out += int64(fr.reqs[i].OutputTokens)
		}
		if err := os.WriteFile(filepath.Join(dir, "events.ndjson"), ev, 0o644); err != nil {
			t.Fatal(err)
		}
		var devNames []string
		for _, d := range fr.devs {
			devNames = append(devNames, d.name)
		}
		r := record.Run{Experiment: record.Experiment{Kind: record.KindRun, V: 1, Study: study, StudyHash: hash, ID: fr.id, Seq: seq,
			Cycle: fr.cycle, NCycles: 3, RunID: fr.runID, Backend: "native", Model: "llem-tiny",
			Config: json.RawMessage(`{"model":"llem-tiny","backend":"native"}`), Runner: record.Runner{Type: "local"}},
			Status: fr.status, RunDir: "/data/old/results/demo-0123abcd/runs/" + fr.runID, SampleFile: "samples.arrows",
			EventsFile: "events.ndjson", BaselineID: "baseline-1", Samplers: []string{"nvml", "rapl"}, Estimate: fr.estimate,
			StartNS: t0, EndNS: t0 + fr.end, DurationS: float64(fr.end) / 1e9, Phases: fr.phases, ModelFacts: fr.model,
			Host:    record.Host{Hostname: "node1", OS: "linux", Arch: "amd64", CPUs: 16},
			Devices: devNames, Attempt: 1}
		if fr.persistence != nil {
			r.Host.GPUs = []record.GPU{{Index: 0, UUID: gpu, Name: "NVIDIA H100 80GB HBM3", PersistenceMode: fr.persistence}}
		}
		if fr.status == "ok" {
			r.Totals = &record.Totals{Requests: int64(len(fr.reqs)), InputTokens: in, OutputTokens: out}
		} else {
			r.Error = &record.Error{Type: "worker_error", Message: fr.errMsg, Code: "oom"}
		}
		emit(r)
	}
	return stream
}

package aggregate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// aggregateBinary builds cmd/llem-aggregate once per test process.
func aggregateBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "llem-aggregate-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "llem-aggregate")
		if out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/llem-aggregate").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// footprintRun writes a run whose measure window holds exactly 3.6 MJ
// (3600 W for 1000 s, read from a counter) over 100 requests and 1e6 output
// tokens, and returns its run record line. energy is the "energy" section of
// the run's config (JSON), "" for none.
func footprintRun(t *testing.T, dir, runID, source string, estimate bool, energy string) string {
	t.Helper()
	rd := filepath.Join(dir, runID)
	if err := os.MkdirAll(rd, 0o755); err != nil {
		t.Fatal(err)
	}
	var rows []sampleRow
	for s := int64(0); s <= 1000; s++ {
		rows = append(rows, sampleRow{t: t0 + s*1e9, device: "GPU-0", source: source, power: 3600, energy: 3600 * float64(s), temp: math.NaN()})
	}
	writeSamples(t, filepath.Join(rd, "samples.arrows"), "1000", rows, 100)
	cfg := `{"model":"m","backend":"native"}`
	if energy != "" {
		cfg = `{"model":"m","backend":"native","energy":` + energy + `}`
	}
	r := record.Run{Experiment: record.Experiment{Kind: record.KindRun, V: 1, Study: "fp", StudyHash: "0123456789abcdef", ID: "00000000000000aa",
		RunID: runID, Cycle: 1, NCycles: 1, Backend: "native", Model: "m", Config: json.RawMessage(cfg), Runner: record.Runner{Type: "local"}},
		Status: record.StatusOK, RunDir: rd, SampleFile: "samples.arrows", Devices: []string{"GPU-0"}, Estimate: estimate,
		Phases: record.Phases{Measure: win(0, 1000*1e9)}, Totals: &record.Totals{Requests: 100, InputTokens: 1000, OutputTokens: 1_000_000}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

type fpOut struct {
	energy  []record.Energy
	summary []record.Summary
	raw     string
}

func runAggregate(t *testing.T, in string, args ...string) (fpOut, string, error) {
	t.Helper()
	cmd := exec.Command(aggregateBinary(t), append([]string{"--no-request-files"}, args...)...)
	cmd.Stdin = strings.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var o fpOut
	o.raw = stdout.String()
	for _, line := range strings.Split(strings.TrimSpace(o.raw), "\n") {
		if line == "" {
			continue
		}
		var k struct{ Kind string }
		if jerr := json.Unmarshal([]byte(line), &k); jerr != nil {
			t.Fatalf("%v: %s", jerr, line)
		}
		if verr := schemas.Validate(k.Kind, []byte(line)); verr != nil {
			t.Errorf("%v", verr)
		}
		switch k.Kind {
		case record.KindEnergy:
			var e record.Energy
			_ = json.Unmarshal([]byte(line), &e)
			o.energy = append(o.energy, e)
		case record.KindSummary:
			var s record.Summary
			_ = json.Unmarshal([]byte(line), &s)
			o.summary = append(o.summary, s)
		}
	}
	return o, stderr.String(), err
}

func near(t *testing.T, what string, got *float64, want float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = null, want %g", what, want)
		return
	}
	if math.Abs(*got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.12g, want %g", what, *got, want)
	}
}

// Hand-computed: 3.6 MJ × PUE 1.2 = 4.32 MJ = 1.2 kWh; × 400 g/kWh = 480 g;
// × 0.30 EUR/kWh = 0.36 EUR; over 100 requests 4.8 g and 0.0036 EUR; over
// 1 M output tokens 480 g and 0.36 EUR.
func TestFootprintBinary(t *testing.T) {
	dir := t.TempDir()
	in := footprintRun(t, dir, "r1", "nvml", false, `{"backend":"nvml"}`)
	o, stderr, err := runAggregate(t, in, "--carbon-intensity", "400", "--pue", "1.2", "--price", "0.30", "--currency", "EUR")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	if len(o.energy) != 1 || len(o.summary) != 1 {
		t.Fatalf("want 1 energy and 1 summary record:\n%s", o.raw)
	}
	e := o.energy[0]
	near(t, "energy_j", e.Metrics[record.MEnergyJ], 3.6e6)
	fp := e.Footprint
	if fp == nil || fp.Estimate || fp.PUE != 1.2 || fp.Currency != "EUR" || fp.IntensitySource != "--carbon-intensity" {
		t.Fatalf("footprint %+v", fp)
	}
	f := fp.Figures
	near(t, "facility_energy_j", f[record.FFacilityEnergyJ], 4.32e6)
	near(t, "co2e_g", f[record.FCO2eG], 480)
	near(t, "co2e_g_per_request", f[record.FCO2eGPerRequest], 4.8)
	near(t, "co2e_g_per_m_output_tokens", f[record.FCO2eGPerMOutputTokens], 480)
	near(t, "cost", f[record.FCost], 0.36)
	near(t, "cost_per_request", f[record.FCostPerRequest], 0.0036)
	near(t, "cost_per_m_output_tokens", f[record.FCostPerMOutputTokens], 0.36)
	if f[record.FCO2eNetG] != nil || f[record.FFacilityEnergyNetJ] != nil {
		t.Errorf("no baseline, yet net figures %v %v", f[record.FCO2eNetG], f[record.FFacilityEnergyNetJ])
	}
	sf := o.summary[0].Footprint
	if sf == nil || sf.Figures[record.FCO2eG].N != 1 {
		t.Fatalf("summary footprint %+v", sf)
	}
	near(t, "summary co2e_g mean", sf.Figures[record.FCO2eG].Mean, 480)
}

// A region gives the table's figure with its source and year; without a
// price the cost figures are null (not 0), and without any assumption the
// records carry no footprint at all.
func TestFootprintRegionAndNulls(t *testing.T) {
	dir := t.TempDir()
	in := footprintRun(t, dir, "r1", "nvml", false, "")
	o, stderr, err := runAggregate(t, in, "--region", "FR")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	fp := o.energy[0].Footprint
	if fp == nil || fp.Region != "FR" || fp.IntensityYear == nil || *fp.IntensityYear != 2023 || !strings.Contains(fp.IntensitySource, "Ember") || fp.PUESource != "default" {
		t.Fatalf("footprint %+v", fp)
	}
	near(t, "co2e_g", fp.Figures[record.FCO2eG], 60) // 1 kWh × 60 g/kWh
	if fp.PricePerKWh != nil || fp.Figures[record.FCost] != nil || fp.Figures[record.FCostPerMOutputTokens] != nil {
		t.Errorf("no price, yet cost figures: %+v", fp.Figures)
	}
	if !strings.Contains(o.raw, `"cost":null`) {
		t.Errorf("cost not written as null:\n%s", o.raw)
	}
	o, stderr, err = runAggregate(t, in)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	if strings.Contains(o.raw, "footprint") {
		t.Errorf("no assumptions, yet a footprint:\n%s", o.raw)
	}
}

// The config's energy.* assumptions apply; the command line wins over them.
func TestFootprintConfigAndOverride(t *testing.T) {
	dir := t.TempDir()
	in := footprintRun(t, dir, "r1", "nvml", false, `{"backend":"nvml","carbon_intensity_g_per_kwh":100,"pue":1.5,"price_per_kwh":0.2,"currency":"USD"}`)
	o, stderr, err := runAggregate(t, in)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	f := o.energy[0].Footprint
	near(t, "co2e_g from config", f.Figures[record.FCO2eG], 150) // 1.5 kWh × 100
	near(t, "cost from config", f.Figures[record.FCost], 0.3)
	if f.Currency != "USD" || f.PUESource != "config energy.pue" {
		t.Errorf("assumptions %+v", f.Assumptions)
	}
	o, stderr, err = runAggregate(t, in, "--carbon-intensity", "400", "--pue", "1.2")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	near(t, "co2e_g overridden", o.energy[0].Footprint.Figures[record.FCO2eG], 480)
	near(t, "cost from config, PUE from the command line", o.energy[0].Footprint.Figures[record.FCost], 0.24)
}

// An estimated energy makes the derived figures estimates, in the summary too.
func TestFootprintEstimate(t *testing.T) {
	dir := t.TempDir()
	in := footprintRun(t, dir, "r1", "nvml", true, "")
	o, stderr, err := runAggregate(t, in, "--region", "DE")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	if !o.energy[0].Estimate || !o.energy[0].Footprint.Estimate || !o.summary[0].Footprint.Estimate {
		t.Errorf("estimate not carried: energy %v footprint %+v summary %+v", o.energy[0].Estimate, o.energy[0].Footprint, o.summary[0].Footprint)
	}
}

func TestFootprintBadOptions(t *testing.T) {
	for _, args := range [][]string{
		{"--region", "DE", "--carbon-intensity", "300"},
		{"--region", "XX"},
		{"--pue", "0.9"},
		{"--price", "0.3"},
		{"--price", "0.3", "--currency", "euro"},
		{"--carbon-intensity", "-1"},
	} {
		_, stderr, err := runAggregate(t, "", args...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: want exit 2 with one line, got %v %q", args, err, stderr)
		}
	}
}

package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	goldenfile "github.com/llem/llem/internal/golden"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/llem/llem/internal/cli"
)

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

func runCmd(t testing.TB, stdin []byte, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := cli.Run("llem-report", CommandContext(context.Background()), args, bytes.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// Recorded inputs: aggregate's golden study (three cycles of a GPU config, a
// run that failed while loading, a CPU-only estimate with a too-short window,
// a troubled GPU run) and the quickstart study as the pipeline produced it on
// a machine without GPU (estimates, real request events and samples).
var goldenInputs = []struct{ name, file, root string }{
	{"study", "testdata/study.ndjson", ""},
	{"quickstart", "testdata/quickstart/energy.ndjson", "testdata/quickstart/results"},
	// The quickstart runs aggregated again with carbon and cost assumptions
	// (llem-aggregate --region DE --pue 1.2 --price 0.30 --currency EUR).
	{"quickstart-footprint", "testdata/quickstart-footprint.ndjson", "testdata/quickstart/results"},
}

func TestGolden(t *testing.T) {
	for _, in := range goldenInputs {
		stream, err := os.ReadFile(in.file)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct{ format, ext string }{{"table", "txt"}, {"md", "md"}, {"csv", "csv"}, {"json", "json"}} {
			t.Run(in.name+"/"+f.format, func(t *testing.T) {
				out, stderr, code := runCmd(t, stream, "--format", f.format)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				golden(t, in.name+"."+f.ext, []byte(out))
			})
		}
	}
	// Options change what is shown.
	stream, _ := os.ReadFile("testdata/quickstart/energy.ndjson")
	out, stderr, code := runCmd(t, stream, "--by", "precision,native.batch_size", "--metrics", "j_per_output_token,output_tokens_per_s,itl_p99_s,energy_net_j", "--sort=-j_per_output_token", "--rows", "configs")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden(t, "quickstart-options.txt", []byte(out))
}

// The HTML report of the study with run directories (power, latency, provenance).
func TestGoldenHTML(t *testing.T) {
	stream, root := studyFixture(t)
	out, stderr, code := runCmd(t, stream, "--format", "html", "--root", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "could not be read") {
		t.Errorf("run directories not found under --root: %s", stderr)
	}
	golden(t, "study.html", []byte(out))
	checkSelfContained(t, out)
	for _, want := range []string{`data-plot="energy-per-token"`, `data-plot="pareto-throughput"`, `data-plot="pareto-latency"`, `data-plot="power"`,
		`data-plot="latency-ttft"`, `data-plot="latency-e2e"`, `id="flags-table"`, `id="provenance"`, "NVIDIA H100 80GB HBM3", "550.54.15",
		`data-series="device:GPU-6f1c2a7e-0000-4000-8000-000000000001"`, `data-series="phase:measure"`, `data-series="front"`, "CUDA out of memory"} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML lacks %s", want)
		}
	}
}

// checkSelfContained: no script, no external resource of any kind.
func checkSelfContained(t *testing.T, html string) {
	t.Helper()
	low := strings.ToLower(html)
	for _, bad := range []string{"<script", "<link", "@import", "url(", "src=", "href=\"http", "http://", "https://", "<iframe", "<img"} {
		if strings.Contains(low, bad) {
			t.Errorf("HTML contains %q: it must be self-contained", bad)
		}
	}
	if !strings.Contains(low, "prefers-color-scheme:dark") || !strings.Contains(low, "@media print") {
		t.Errorf("HTML lacks the dark scheme or the print layout")
	}
}

// The machine formats carry the figures exactly, with explicit estimate and
// flags columns, and null as empty (CSV) or null (JSON), never 0.
func TestMachineFormats(t *testing.T) {
	stream, _ := os.ReadFile("testdata/study.ndjson")
	out, _, code := runCmd(t, stream, "--format", "csv", "--metrics", "j_per_output_token,energy_net_j")
	if code != 0 {
		t.Fatal(code)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, h := range []string{"record", "run_id", "estimate", "flags", "error_type", "energy_per_output_token_j", "energy_per_output_token_j_ci95_lo", "energy_net_j"} {
		if _, ok := col[h]; !ok {
			t.Fatalf("no column %s in %v", h, rows[0])
		}
	}
	seen := 0
	for _, r := range rows[1:] {
		switch r[col["run_id"]] {
		case "1111222233334444-c1":
			seen++
			if r[col["estimate"]] != "true" || !strings.Contains(r[col["flags"]], "estimate_source") || r[col["energy_per_output_token_j"]] != "0.984375" {
				t.Errorf("estimated run: %v", r)
			}
		case "0f0e0d0c0b0a0908-c1":
			seen++
			if r[col["status"]] != "failed" || r[col["error_type"]] != "worker_error" || r[col["energy_per_output_token_j"]] != "" {
				t.Errorf("failed run: %v", r)
			}
		case "a1b2c3d4e5f60718-c1":
			seen++
			if r[col["energy_net_j"]] == "" || r[col["energy_net_j"]] == "0" {
				t.Errorf("net energy %q", r[col["energy_net_j"]])
			}
		}
	}
	if seen != 3 {
		t.Errorf("saw %d of 3 runs", seen)
	}
	out, _, _ = runCmd(t, stream, "--format", "json")
	var js struct {
		Configs []struct {
			ID       string
			Estimate bool
			Metrics  map[string]*struct{ Mean *float64 }
		}
		Runs []struct {
			RunID   string `json:"run_id"`
			Metrics map[string]*float64
		}
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Configs) != 4 || len(js.Runs) != 6 {
		t.Fatalf("%d configs, %d runs", len(js.Configs), len(js.Runs))
	}
	for _, r := range js.Runs {
		v, ok := r.Metrics["energy_per_output_token_j"]
		if !ok {
			t.Fatalf("run %s lacks energy_per_output_token_j", r.RunID)
		}
		if (r.RunID == "0f0e0d0c0b0a0908-c1") != (v == nil) {
			t.Errorf("run %s: energy per token %v", r.RunID, v)
		}
	}
	for _, c := range js.Configs {
		if c.ID == "1111222233334444" && !c.Estimate {
			t.Errorf("estimated config not marked")
		}
	}
}

// Text formats: estimates carry †, unknown shows —, failed runs show their error.
func TestTextMarkers(t *testing.T) {
	stream, _ := os.ReadFile("testdata/study.ndjson")
	for _, f := range []string{"table", "md"} {
		out, _, _ := runCmd(t, stream, "--format", f)
		est := regexp.MustCompile(`1111222233334444-c1.*984 mJ †`)
		if !est.MatchString(out) {
			t.Errorf("%s: estimated run without †", f)
		}
		failed := regexp.MustCompile(`0f0e0d0c0b0a0908-c1.*failed.*—`)
		if !failed.MatchString(out) {
			t.Errorf("%s: failed run without — figures", f)
		}
		if !strings.Contains(out, "worker_error (oom): CUDA out of memory while loading the model") {
			t.Errorf("%s: failed run's error missing", f)
		}
		if !strings.Contains(out, "† estimate") {
			t.Errorf("%s: no legend for †", f)
		}
		if strings.Contains(out, " 0 J") {
			t.Errorf("%s: a 0 J figure (unknown must be —)", f)
		}
	}
}

// --run picks the run whose power is plotted.
func TestRunOption(t *testing.T) {
	stream, root := studyFixture(t)
	out, stderr, code := runCmd(t, stream, "--format", "html", "--root", root, "--run", "5555666677778888-c1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "during run <code>5555666677778888-c1</code>") || !strings.Contains(out, `aria-label="Power over time, run 5555666677778888-c1"`) {
		t.Errorf("power plot is not of the chosen run")
	}
	// Without run directories the report still renders, and says why there is no trace.
	out, stderr, code = runCmd(t, stream, "--format", "html")
	if code != 0 || !strings.Contains(stderr, "6 of 6 run directories could not be read") || !strings.Contains(out, "No power trace") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// Carbon and cost in the HTML report: headline cards marked as derived (and
// as estimates where the energy is one), the assumptions in the provenance.
func TestFootprintHTML(t *testing.T) {
	stream, err := os.ReadFile("testdata/quickstart-footprint.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCmd(t, stream, "--format", "html", "--root", "testdata/quickstart/results")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkSelfContained(t, out)
	for _, want := range []string{
		`<div class="k">lowest CO2e/M out tok (derived)</div><div class="v">649 ± 861 mgCO2e †</div>`,
		`<div class="k">lowest cost/M out tok (derived)</div><div class="v">0.000512 ± 0.000679 EUR †</div>`,
		`<dt>carbon and cost</dt><dd>carbon intensity 380 gCO2e/kWh (Germany: Ember yearly electricity data, 2023); PUE 1.2 (--pue); price 0.3 EUR/kWh<br>derived from the measured energy and these assumptions, not measured</dd>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML lacks %s", want)
		}
	}
	// Without assumptions, none of it.
	plain, _ := os.ReadFile("testdata/quickstart/energy.ndjson")
	out, _, _ = runCmd(t, plain, "--format", "html", "--root", "testdata/quickstart/results")
	if strings.Contains(out, "CO2e") || strings.Contains(out, "carbon and cost") {
		t.Error("footprint shown for records without one")
	}
}

package aggregate

import (
	"bytes"
	"encoding/json"
	goldenfile "github.com/llem/llem/internal/golden"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

func runCmd(t *testing.T, stdin []byte, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := cli.Run("llem-aggregate", Command, args, bytes.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// The golden study: three cycles of one config on a GPU with RAPL, a run
// that failed while loading, a CPU-only estimate with a too-short window, and
// a troubled GPU run. Result directories were "moved": run records name
// /data/old/results/..., found again through --root.
func TestGoldenStudy(t *testing.T) {
	root := t.TempDir()
	stream := buildStudy(t, root)
	pq := filepath.Join(t.TempDir(), "energy.parquet")
	out, stderr, code := runCmd(t, stream, "--root", root, "--parquet", pq)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	counts, err := schemas.CheckNDJSON([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if counts["energy"] != 6 || counts["summary"] != 4 || counts["experiment"] != 1 {
		t.Fatalf("records %v, want 6 energy, 4 summary, 1 passed-through experiment", counts)
	}
	golden(t, "study.golden.ndjson", []byte(out))
	reqFile := filepath.Join(root, "demo-0123abcd", "runs", "a1b2c3d4e5f60718-c1", RequestsEnergyFile)
	rb, err := os.ReadFile(reqFile)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "requests_energy.golden.ndjson", rb)

	// Per-request parts add up to the window's energy.
	var e record.Energy
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[1]), &e); err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, line := range strings.Split(strings.TrimSpace(string(rb)), "\n") {
		var re RequestEnergy
		if err := json.Unmarshal([]byte(line), &re); err != nil {
			t.Fatal(err)
		}
		if math.Abs(re.PrefillJ+re.DecodeJ+re.IdleShareJ-re.EnergyJ) > 1e-9 {
			t.Errorf("request %d: parts do not add up", re.ID)
		}
		sum += re.EnergyJ
	}
	if want := *e.Metrics[record.MEnergyJ]; math.Abs(sum-want) > 1e-9*want {
		t.Errorf("per-request energy sums to %.9f J, window has %.9f J", sum, want)
	}
	if e.RequestsEnergy != RequestsEnergyFile {
		t.Errorf("requests_energy_file = %q", e.RequestsEnergy)
	}

	// The Parquet tables hold the same figures and carry the provenance.
	checkParquet(t, pq, 6, "energy")
	checkParquet(t, strings.TrimSuffix(pq, ".parquet")+".summary.parquet", 4*len(metricNames), "summary")
}

func checkParquet(t *testing.T, path string, rows int, kind string) {
	t.Helper()
	rd, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	md := rd.MetaData().KeyValueMetadata()
	if md.FindValue("llem.kind") == nil || *md.FindValue("llem.kind") != kind || md.FindValue("llem.provenance") == nil {
		t.Errorf("%s: metadata %v", path, md)
	}
	fr, err := pqarrow.NewFileReader(rd, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	if int(tbl.NumRows()) != rows {
		t.Errorf("%s: %d rows, want %d", path, tbl.NumRows(), rows)
	}
}

// The figures of the golden study, checked against what the simulation
// knows, so the golden file cannot silently hold wrong numbers.
func TestStudyFigures(t *testing.T) {
	root := t.TempDir()
	stream := buildStudy(t, root)
	out, stderr, code := runCmd(t, stream, "--root", root, "--no-request-files")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	es := map[string]*record.Energy{}
	sums := map[string]*record.Summary{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var h struct{ Kind string }
		json.Unmarshal([]byte(line), &h)
		switch h.Kind {
		case "energy":
			var e record.Energy
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			es[e.RunID] = &e
		case "summary":
			var s record.Summary
			json.Unmarshal([]byte(line), &s)
			sums[s.ID] = &s
		}
	}
	codes := func(e []record.Flag) map[string]bool {
		m := map[string]bool{}
		for _, f := range e {
			m[f.Code] = true
		}
		return m
	}
	a := es["a1b2c3d4e5f60718-c1"]
	if a.Basis != "gpu" || strings.Join(a.TotalScopes, ",") != "cpu_package,dram,gpu" {
		t.Errorf("basis %s total %v", a.Basis, a.TotalScopes)
	}
	m := a.Phases["measure"]
	for _, d := range m.Devices {
		if d.Method != "counter" || d.CounterJ == nil || d.IntegralJ == nil {
			t.Errorf("%s: method %s", d.Device, d.Method)
		}
	}
	// DRAM at a constant 8 W over 9 s: 72 J by both methods; idle 8 W → net 0.
	dram := m.Scopes["dram"]
	if math.Abs(*dram.GrossJ-72) > 1e-6 || *dram.NetJ != 0 {
		t.Errorf("dram gross %v net %v, want 72 and 0", *dram.GrossJ, *dram.NetJ)
	}
	tot := m.Scopes["total"]
	if math.Abs(*tot.GrossJ-(*m.Scopes["gpu"].GrossJ+*m.Scopes["cpu_package"].GrossJ+*m.Scopes["dram"].GrossJ)) > 1e-9 {
		t.Errorf("total is not the sum of its scopes")
	}
	if got := *a.Metrics[record.MJPerOutputToken] * *a.Metrics[record.MOutputTokens]; math.Abs(got-*a.Metrics[record.MEnergyJ]) > 1e-9 {
		t.Errorf("j_per_output_token × tokens = %v, energy %v", got, *a.Metrics[record.MEnergyJ])
	}
	if a.TTFT == nil || a.TTFT.N != 8 || a.ITL.N == 0 || *a.TTFT.P50 < 0.25 || *a.TTFT.P50 > 0.31 {
		t.Errorf("ttft %+v", a.TTFT)
	}
	if a.Metrics[record.MFLOPs] == nil || a.Metrics[record.MFLOPsAttention] == nil || a.FLOPsMethod == "" {
		t.Errorf("flops %v method %q", a.Metrics[record.MFLOPs], a.FLOPsMethod)
	}
	if len(a.Flags) != 0 {
		t.Errorf("clean run carries flags %v", a.Flags)
	}

	f := es["0f0e0d0c0b0a0908-c1"]
	if f.Status != "failed" || f.Error == nil || f.Metrics[record.MEnergyJ] != nil || !codes(f.Flags)[FlagRunNotOK] {
		t.Errorf("failed run: %+v", f)
	}
	if f.Phases["load"] == nil || f.Phases["load"].Scopes["gpu"].GrossJ == nil {
		t.Errorf("failed run lost its load phase")
	}

	c := es["1111222233334444-c1"]
	cc := codes(c.Flags)
	if !c.Estimate || c.Basis != "total" || !cc[FlagEstimate] || !cc[FlagShortWindow] || !cc[FlagFewSamples] {
		t.Errorf("cpu estimate run: estimate %v basis %s flags %v", c.Estimate, c.Basis, cc)
	}
	if c.Phases["measure"].Devices[0].CounterJ != nil || c.Phases["measure"].Devices[0].Method != "integral" {
		t.Errorf("estimate device should have integral only")
	}

	h := es["5555666677778888-c1"]
	hc := codes(h.Flags)
	for _, want := range []string{FlagPersistenceOff, FlagThermalDrift, FlagThrottling, FlagSampleGap, FlagCounterGap} {
		if !hc[want] {
			t.Errorf("troubled run lacks flag %s (has %v)", want, hc)
		}
	}

	s := sums["a1b2c3d4e5f60718"]
	if s.Runs != 3 || s.RunsOK != 3 || s.Metrics[record.MEnergyJ].N != 3 || s.Metrics[record.MEnergyJ].CI95 == nil {
		t.Errorf("summary %+v", s)
	}
	var vals []float64
	for _, id := range s.RunIDs {
		vals = append(vals, *es[id].Metrics[record.MEnergyJ])
	}
	mean := (vals[0] + vals[1] + vals[2]) / 3
	if math.Abs(*s.Metrics[record.MEnergyJ].Mean-mean) > 1e-9 {
		t.Errorf("summary mean %v, runs %v", *s.Metrics[record.MEnergyJ].Mean, vals)
	}
	if sf := sums["0f0e0d0c0b0a0908"]; sf.RunsOK != 0 || !codes(sf.Flags)[FlagSomeRunsNotOK] || sf.Metrics[record.MEnergyJ].Mean != nil {
		t.Errorf("failed-only summary %+v", sf)
	}
}

// Without --root the moved directories are not found: records still come
// out, with null figures and flags, and the exit code says something failed.
func TestMissingSamples(t *testing.T) {
	stream := buildStudy(t, t.TempDir())
	out, stderr, code := runCmd(t, stream)
	if code != 1 || !strings.Contains(stderr, "without readable samples") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if _, err := schemas.CheckNDJSON([]byte(out)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"code":"no_samples"`) || strings.Count(out, `"kind":"energy"`) != 6 {
		t.Errorf("output lacks the no_samples energy records")
	}
}

func TestBadInput(t *testing.T) {
	cases := map[string]string{
		"not json":     "{\"kind\":\"run\",\n",
		"wrong type":   `{"kind":"run","v":1,"cycle":"one"}`,
		"unknown name": `{"kind":"baseline","v":1,"id":"b","oops":1}`,
	}
	for name, in := range cases {
		_, stderr, code := runCmd(t, []byte(in))
		if code != 2 || !strings.Contains(stderr, "<stdin>:1:") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q", name, code, stderr)
		}
	}
	if _, stderr, code := runCmd(t, nil, "no-such-file.ndjson"); code != 2 || !strings.Contains(stderr, "no-such-file") {
		t.Errorf("missing file: exit %d %q", code, stderr)
	}
}

// --samples/--windows integrates any stream over any windows, one CSV line
// per window and device.
func TestWindowsMode(t *testing.T) {
	dir := t.TempDir()
	devs := []device{
		{name: "GPU-a", source: "nvml", counter: true, powerReading: true, power: func(int64) float64 { return 200 }},
		{name: "package-0", source: "rapl", counter: true, powerReading: true, power: func(t int64) float64 { return 50 + 10*sec(t) }},
	}
	writeSamples(t, filepath.Join(dir, "s.arrows"), "100", simulate(devs, 10000*ms, 100*ms, nil), 7)
	w := filepath.Join(dir, "w.csv")
	os.WriteFile(w, []byte("start_ns,end_ns\n"+
		itoa(t0+1000*ms)+","+itoa(t0+3000*ms)+"\n"+itoa(t0+2500*ms)+","+itoa(t0+9000*ms)+"\n"), 0o644)
	out, stderr, code := runCmd(t, nil, "--samples", filepath.Join(dir, "s.arrows"), "--windows", w)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || lines[0] != "window,start_ns,end_ns,device,scope,counter_j,integral_j,samples" {
		t.Fatalf("output:\n%s", out)
	}
	// GPU at 200 W for 2 s = 400 J; package ramp over 2.5–9 s = 50·6.5 + 5·(81−6.25) = 698.75 J
	for _, c := range []struct {
		line int
		want float64
	}{{1, 400}, {4, 50*6.5 + 5*(81-6.25)}} {
		f := strings.Split(lines[c.line], ",")
		for _, col := range []int{5, 6} {
			v, err := strconv.ParseFloat(f[col], 64)
			if err != nil || math.Abs(v-c.want) > 1e-6 {
				t.Errorf("line %d col %d: %s, want %v", c.line, col, f[col], c.want)
			}
		}
	}
	os.WriteFile(w, []byte("start_ns,end_ns\n5,x\n"), 0o644)
	if _, stderr, code := runCmd(t, nil, "--samples", filepath.Join(dir, "s.arrows"), "--windows", w); code != 2 || !strings.Contains(stderr, "w.csv:2:3: end_ns") {
		t.Errorf("bad windows file: exit %d %q", code, stderr)
	}
	os.WriteFile(w, []byte("1,2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.arrows"), []byte("not arrow at all"), 0o644)
	if _, stderr, code := runCmd(t, nil, "--samples", filepath.Join(dir, "bad.arrows"), "--windows", w); code != 2 || !strings.Contains(stderr, "not an Arrow IPC stream") {
		t.Errorf("bad samples file: exit %d %q", code, stderr)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// Streams merged from several files, the baseline arriving after the runs
// that need it: the same energy records as one ordered stream.
func TestMergedFiles(t *testing.T) {
	root := t.TempDir()
	stream := buildStudy(t, root)
	ref, _, code := runCmd(t, stream, "--root", root, "--no-request-files")
	if code != 0 {
		t.Fatal("reference run failed")
	}
	var runs, rest []byte
	for _, l := range strings.SplitAfter(string(stream), "\n") {
		if strings.Contains(l, `"kind":"run"`) {
			runs = append(runs, l...)
		} else {
			rest = append(rest, l...)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "runs.ndjson"), runs, 0o644)
	os.WriteFile(filepath.Join(dir, "rest.ndjson"), rest, 0o644)
	out, stderr, code := runCmd(t, nil, "--root", root, "--no-request-files", filepath.Join(dir, "runs.ndjson"), filepath.Join(dir, "rest.ndjson"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	pick := func(s, kind string) []string {
		var o []string
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, `"kind":"`+kind+`"`) {
				o = append(o, l)
			}
		}
		return o
	}
	for _, k := range []string{"energy", "summary", "experiment"} {
		a, b := pick(ref, k), pick(out, k)
		if strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("%s records differ when merged from files (%d vs %d)", k, len(a), len(b))
		}
	}
}

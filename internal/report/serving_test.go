package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Golden files of the serving report: the two-model sweep in every format,
// the sweeps without a rate meeting the SLO and without SLOs in the text ones.
func TestServingGolden(t *testing.T) {
	cases := []struct {
		name    string
		formats []string
	}{
		{"serving-sweep", []string{"table", "md", "csv", "json", "html"}},
		{"serving-nomeet", []string{"table", "md", "json"}},
		{"serving-noslo", []string{"table", "md", "csv"}},
	}
	ext := map[string]string{"table": "txt", "md": "md", "csv": "csv", "json": "json", "html": "html"}
	for _, c := range cases {
		stream := readFixture(t, c.name+".ndjson")
		for _, f := range c.formats {
			t.Run(c.name+"/"+f, func(t *testing.T) {
				out, stderr, code := runCmd(t, stream, "--format", f)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				golden(t, c.name+"."+ext[f], []byte(out))
				if f == "html" {
					checkSelfContained(t, out)
				}
			})
		}
	}
}

// The headline: the highest rate meeting the SLO per series, "no rate" when
// the lowest fails, nothing without an SLO.
func TestServingHeadline(t *testing.T) {
	for _, c := range []struct {
		file      string
		want, not []string
	}{
		{"serving-sweep.ndjson", []string{
			"Serving (llem-small): every SLO met up to 4 req/s (TTFT ≤ 500 ms, TPOT ≤ 50 ms for ≥ 90 % of requests), at 583 ± 66 mJ per output token",
			"Serving (llem-base): every SLO met up to 2 req/s (TTFT ≤ 500 ms, TPOT ≤ 50 ms for ≥ 90 % of requests), at 1.45 ± 0.06 J per output token",
		}, nil},
		{"serving-nomeet.ndjson", []string{"Serving: no rate meets the SLO (TTFT ≤ 40 ms, E2E ≤ 5000 ms for ≥ 90 % of requests); at the lowest, 1 req/s,"}, []string{"met up to"}},
		{"serving-noslo.ndjson", []string{"Serving sweep over serving.rate"}, []string{"Serving:", "Serving (", "met up to", " yes ", " no "}},
	} {
		out, stderr, code := runCmd(t, readFixture(t, c.file))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.file, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: no %q in\n%s", c.file, w, out)
			}
		}
		for _, n := range c.not {
			if strings.Contains(out, n) {
				t.Errorf("%s: unexpected %q", c.file, n)
			}
		}
	}
}

// buildFixture reads a fixture into a report model after edit changes the input.
func buildFixture(t *testing.T, stream []byte, edit func(*Input)) *Report {
	t.Helper()
	in := &Input{}
	if err := in.Read(context.Background(), bytes.NewReader(stream), "fixture"); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(in)
	}
	rp, err := Build(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// setAttainment sets the mean slo_attainment of llem-small at rate.
func setAttainment(in *Input, rate string, v *float64) {
	for _, s := range in.Summaries {
		if s.Model == "llem-small" && flatten(s.Config)[AxisRate] == rate {
			st := *s.Metrics[record.MSLOAttainment]
			st.Mean = v
			s.Metrics[record.MSLOAttainment] = &st
		}
	}
}

// A rate that meets the SLO above one that fails is not the headline; an
// unknown attainment stops it too, and at the lowest rate makes it unknown.
func TestServingHeadlineRule(t *testing.T) {
	stream := readFixture(t, "serving-sweep.ndjson")
	small := func(rp *Report) *servingSeries {
		for _, s := range rp.serving[0].Series {
			if s.Label == "llem-small" {
				return s
			}
		}
		t.Fatal("no llem-small series")
		return nil
	}
	rp := buildFixture(t, stream, func(in *Input) { setAttainment(in, "2", fp(0.85)) })
	if s := small(rp); s.Verdict != VerdictMet || s.Best.XText != "1" || !*s.Points[2].Met {
		t.Errorf("a failing rate 2 below a meeting rate 4: verdict %s, best %s", s.Verdict, s.Best.XText)
	}
	rp = buildFixture(t, stream, func(in *Input) { setAttainment(in, "4", nil) })
	if s := small(rp); s.Best.XText != "2" || s.Points[2].Met != nil {
		t.Errorf("unknown attainment at 4 req/s: best %s, met %v", s.Best.XText, s.Points[2].Met)
	}
	rp = buildFixture(t, stream, func(in *Input) { setAttainment(in, "1", nil) })
	s := small(rp)
	if s.Verdict != VerdictUnknown || s.Best != nil {
		t.Errorf("unknown attainment at the lowest rate: verdict %s", s.Verdict)
	}
	if l := rp.serving[0].headlineText(s); !strings.Contains(l, "attainment unknown at the lowest rate, 1 req/s") {
		t.Errorf("headline %q", l)
	}
	// Exactly at the target counts as met.
	rp = buildFixture(t, stream, func(in *Input) { setAttainment(in, "8", fp(SLOTarget)) })
	if s := small(rp); s.Best.XText != "8" {
		t.Errorf("attainment of exactly %g at 8 req/s: best %s", SLOTarget, s.Best.XText)
	}
}

// A closed-loop sweep over serving.concurrency is a sweep too: its own axis
// words, no goodput = rate line.
func TestServingConcurrency(t *testing.T) {
	s := string(readFixture(t, "serving-nomeet.ndjson"))
	s = strings.ReplaceAll(s, `"concurrency":null`, `"RATE":null`)
	s = strings.ReplaceAll(s, `"rate":`, `"concurrency":`)
	s = strings.ReplaceAll(s, `"RATE":null`, `"rate":null`)
	out, stderr, code := runCmd(t, []byte(s))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"Serving sweep over serving.concurrency", "no concurrency meets the SLO", "at the lowest, concurrency 1,", "concurrency            offered"} {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in\n%s", w, out)
		}
	}
	page, _, _ := runCmd(t, []byte(s), "--format", "html")
	for _, w := range []string{`data-plot="serving-concurrency-energy"`, `data-plot="serving-concurrency-goodput"`, "concurrency (requests kept in flight, serving.concurrency)"} {
		if !strings.Contains(page, w) {
			t.Errorf("HTML lacks %s", w)
		}
	}
	if strings.Contains(page, `data-series="ideal"`) {
		t.Error("goodput = rate line on a concurrency sweep")
	}
}

// Unknown serving figures are empty in CSV and null in JSON, never 0; the
// CSV's serving columns carry the headline.
func TestServingMachineFormats(t *testing.T) {
	out, _, code := runCmd(t, readFixture(t, "serving-noslo.ndjson"), "--format", "csv")
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
	for _, r := range rows[1:] {
		for _, h := range []string{"goodput_rps", "slo_attainment", "slo_met", "sweep_headline_value", "slo_ttft_ms"} {
			if r[col[h]] != "" {
				t.Errorf("%s %s: %s = %q, want empty (unknown)", r[0], r[col["id"]], h, r[col[h]])
			}
		}
		if r[col["sweep_value"]] == "" || r[col["ttft_p90_s"]] == "" {
			t.Errorf("%s %s: sweep value or TTFT p90 missing", r[0], r[col["id"]])
		}
	}
	out, _, _ = runCmd(t, readFixture(t, "serving-sweep.ndjson"), "--format", "json")
	var js struct {
		Serving []struct {
			SweepKey string `json:"sweep_key"`
			Series   []struct {
				Label    string
				Headline *struct {
					Verdict    string
					SweepValue *float64 `json:"sweep_value"`
				}
				Points []struct {
					SweepValue float64 `json:"sweep_value"`
					SLOMet     *bool   `json:"slo_met"`
					Metrics    map[string]*record.Stat
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatal(err)
	}
	if len(js.Serving) != 1 || js.Serving[0].SweepKey != AxisRate || len(js.Serving[0].Series) != 2 {
		t.Fatalf("serving section %+v", js.Serving)
	}
	small := js.Serving[0].Series[0]
	if small.Label != "llem-small" || small.Headline == nil || small.Headline.Verdict != VerdictMet || *small.Headline.SweepValue != 4 || len(small.Points) != 5 {
		t.Errorf("llem-small: %+v", small)
	}
	if p := small.Points[3]; p.SweepValue != 8 || p.SLOMet == nil || *p.SLOMet || p.Metrics["goodput_rps"].N != 3 {
		t.Errorf("8 req/s: %+v", p)
	}
}

// Batch reports carry none of the serving additions.
func TestServingAbsentFromBatch(t *testing.T) {
	stream, root := studyFixture(t)
	for _, f := range []string{"table", "csv", "json", "html"} {
		out, _, _ := runCmd(t, stream, "--format", f, "--root", root)
		for _, bad := range []string{"Serving", "serving", "sweep_key", "slo-line"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s: batch report contains %q", f, bad)
			}
		}
	}
}

// The serving flags have their one-line meaning.
func TestServingFlagsDescribed(t *testing.T) {
	for _, c := range []string{"generator_lagged", "saturated", "request_errors", "window_too_short"} {
		if flagDescriptions[c] == "" {
			t.Errorf("serving flag %q has no description", c)
		}
	}
	out, _, _ := runCmd(t, readFixture(t, "serving-sweep.ndjson"))
	if !strings.Contains(out, "generator_lagged     1        0  the load generator sent late") {
		t.Errorf("flags table lacks generator_lagged's meaning")
	}
}

// An estimated energy figure carries † in the serving table and the headline.
func TestServingEstimateMarked(t *testing.T) {
	rp := buildFixture(t, readFixture(t, "serving-sweep.ndjson"), func(in *Input) {
		for _, s := range in.Summaries {
			if s.Model == "llem-small" && flatten(s.Config)[AxisRate] == "4" {
				s.Estimate = true
			}
		}
	})
	g := rp.servingGrid(rp.serving[0])
	energyCol := -1
	for i, h := range g.Head {
		if h == metricByName[record.MJPerOutputToken].Label {
			energyCol = i
		}
	}
	if g.Rows[2][0] != "llem-small" || g.Rows[2][1] != "4" {
		t.Fatalf("row 2 is %v, want llem-small at 4 req/s", g.Rows[2][:2])
	}
	for i, row := range g.Rows {
		if got := strings.HasSuffix(row[energyCol], " "+EstMark); got != (i == 2) {
			t.Errorf("row %d %v: energy %q", i, row[:2], row[energyCol])
		}
		if strings.HasSuffix(row[energyCol+1], EstMark) {
			t.Errorf("row %d: a latency marked as an estimate", i)
		}
	}
	if l := rp.servingHeadlines()[0]; !strings.Contains(l, " J "+EstMark+" per output token") && !strings.Contains(l, "mJ "+EstMark+" per output token") {
		t.Errorf("headline without †: %s", l)
	}
}

package report

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/record"
)

func TestFormatSI(t *testing.T) {
	for _, c := range []struct {
		v    *float64
		unit string
		want string
	}{
		{nil, "J", "—"},
		{fp(0.0055078), "J", "5.51 mJ"},
		{fp(5.147), "J", "5.15 J"},
		{fp(2349.35), "J", "2.35 kJ"},
		{fp(999.7), "J", "1.00 kJ"},
		{fp(0.000423), "s", "423 µs"},
		{fp(0.0146), "s", "14.6 ms"},
		{fp(3627.86), "tok/s", "3.63 ktok/s"},
		{fp(2546073600), "FLOP", "2.55 GFLOP"},
		{fp(512), "count", "512"},
		{fp(0.0101), "rel", "1.01 %"},
		{fp(0), "J", "0 J"},
		{fp(-0.25), "J", "-250 mJ"},
		{fp(math.NaN()), "J", "—"},
	} {
		if got := FormatSI(c.v, c.unit); got != c.want {
			t.Errorf("FormatSI(%v, %s) = %q, want %q", c.v, c.unit, got, c.want)
		}
	}
	for _, c := range []struct {
		m, h *float64
		unit string
		want string
	}{
		{fp(5.147), fp(0.1987), "J", "5.15 ± 0.20 J"},
		{fp(0.006289), fp(0.006439), "J", "6.29 ± 6.44 mJ"},
		{fp(261.04), fp(25.2), "W", "261 ± 25 W"},
		{fp(50.7), fp(0.004), "tok/s", "50.7 ± 0.004 tok/s"},
		{fp(0.984), nil, "J", "984 mJ"},
		{nil, fp(1), "J", "—"},
		{fp(0), fp(0), "J", "0 J"},
	} {
		if got := FormatCI(c.m, c.h, c.unit); got != c.want {
			t.Errorf("FormatCI(%v, %v) = %q, want %q", c.m, c.h, got, c.want)
		}
	}
}

func TestParetoFront(t *testing.T) {
	pts := []*paretoPoint{{x: 1, y: 10}, {x: 2, y: 30}, {x: 3, y: 20}, {x: 4, y: 40}, {x: 2, y: 30}, {x: 5, y: 5}}
	front := paretoFront(pts, true)
	var got []float64
	for _, p := range front {
		got = append(got, p.x)
	}
	// (3,20) is beaten by (2,30); (5,5) by all; the duplicate (2,30) points do not beat each other.
	if want := []float64{1, 2, 2, 4}; len(got) != len(want) || got[0] != 1 || got[1] != 2 || got[3] != 4 {
		t.Errorf("front %v, want %v", got, want)
	}
	if pts[2].front || pts[5].front {
		t.Errorf("dominated points on the front")
	}
	// Minimising both: (1,10) beats everything with more energy and more latency.
	front = paretoFront([]*paretoPoint{{x: 1, y: 10}, {x: 2, y: 5}, {x: 3, y: 7}}, false)
	if len(front) != 2 || front[1].x != 2 {
		t.Errorf("min/min front %+v", front)
	}
}

// Bad input: one line naming file:line:col and the field, exit 2, no panic.
func TestBadInput(t *testing.T) {
	good, _ := os.ReadFile("testdata/study.ndjson")
	lines := strings.SplitN(string(good), "\n", 3)
	for _, c := range []struct {
		name, in, want string
	}{
		{"type", lines[0] + "\n" + `{"kind":"energy","v":1,"run_id":"x-c1","id":"x","cycle":"two"}` + "\n", "<stdin>:2:"},
		{"field", `{"kind":"summary","v":1,"id":"x","metrics":{"energy_j":{"mean":"high"}}}` + "\n", "field metrics.energy_j.mean"},
		{"syntax", `{"kind":"energy",` + "\n", "<stdin>:1:"},
		{"not object", "[1,2]\n", "<stdin>:1:1: not a JSON object"},
		{"no id", `{"kind":"energy","v":1}` + "\n", `<stdin>:1:1: energy record without "run_id" or "id"`},
		{"empty", "", "no energy or summary records"},
		{"runs only", `{"kind":"run","v":1}` + "\n", "pipe run records through llem-aggregate first"},
	} {
		out, stderr, code := runCmd(t, []byte(c.in))
		if code != cli.ExitUsage || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 || out != "" {
			t.Errorf("%s: exit %d, stderr %q, stdout %q; want exit 2 and %q", c.name, code, stderr, out, c.want)
		}
		if strings.Contains(stderr, "panic") || strings.Contains(stderr, "internal error") {
			t.Errorf("%s: %s", c.name, stderr)
		}
	}
	// A file that does not exist, and bad options.
	for _, args := range [][]string{{"/nonexistent/e.ndjson"}, {"--by", "nosuchkey", "testdata/study.ndjson"}, {"--metrics", "watts", "testdata/study.ndjson"},
		{"--sort", "nosuch", "testdata/study.ndjson"}, {"--format", "pdf"}, {"--rows", "some"}, {"--format", "html", "--run", "nosuch-c1", "testdata/study.ndjson"}} {
		_, stderr, code := runCmd(t, nil, args...)
		if code != cli.ExitUsage || stderr == "" {
			t.Errorf("%v: exit %d %q, want 2", args, code, stderr)
		}
	}
	_, stderr, _ := runCmd(t, nil, "--by", "nosuchkey", "testdata/study.ndjson")
	if !strings.Contains(stderr, "--by nosuchkey") || !strings.Contains(stderr, "try") {
		t.Errorf("unknown --by: %q", stderr)
	}
}

func TestHelpAndOutput(t *testing.T) {
	out, _, code := runCmd(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "Exit codes: 0 ok, 1 runtime failure, 2 usage or input error") || !strings.Contains(out, "130 interrupted") || !strings.Contains(out, "--format") {
		t.Fatalf("--help: %d %s", code, out)
	}
	// -o picks the format from the extension and writes the file whole.
	dir := t.TempDir()
	for ext, marker := range map[string]string{"html": "<!DOCTYPE html>", "md": "# llem report", "csv": "record,study", "json": `"kind": "report"`, "txt": "Configs (mean"} {
		path := filepath.Join(dir, "r."+ext)
		_, stderr, code := runCmd(t, nil, "-o", path, "testdata/study.ndjson")
		if code != 0 {
			t.Fatalf("%s: exit %d %s", ext, code, stderr)
		}
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(b)), strings.Split(marker, "\n")[0]) && !strings.Contains(string(b), marker) {
			t.Errorf("%s: %v %.80q", ext, err, b)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 5 {
		t.Errorf("temporary files left: %v", ents)
	}
	// Other kinds are counted on stderr; a replaced run is counted once.
	in, _ := os.ReadFile("testdata/study.ndjson")
	lines := strings.Split(strings.TrimSpace(string(in)), "\n")
	_, stderr, code := runCmd(t, []byte(strings.Join(append(lines, lines[1]), "\n")), "--format", "json")
	if code != 0 || !strings.Contains(stderr, "ignored records of other kinds: experiment 1") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// A signal while stdin is blocked ends the command with exit 130.
func TestInterrupt(t *testing.T) {
	r, w, _ := os.Pipe()
	defer w.Close()
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Run("llem-report", CommandContext(ctx), nil, r, &strings.Builder{}, &strings.Builder{})
	}()
	w.Write([]byte(`{"kind":"experiment","v":1}` + "\n"))
	cancel()
	select {
	case code := <-done:
		if code != cli.ExitInterrupted {
			t.Errorf("exit %d, want 130", code)
		}
	case <-time.After(5 * time.Minute): // a hang, not a slow machine
		t.Fatal("not interrupted")
	}
}

// Estimates and flags show up in the model: the config of an estimated run is estimated.
func TestBuild(t *testing.T) {
	in := &Input{}
	f, _ := os.Open("testdata/quickstart/energy.ndjson")
	defer f.Close()
	if err := in.Read(context.Background(), f, "q"); err != nil {
		t.Fatal(err)
	}
	rp, err := Build(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rp.Configs) != 2 || len(rp.Runs) != 4 || strings.Join(rp.By, ",") != "native.batch_size" {
		t.Fatalf("%d configs, %d runs, by %v", len(rp.Configs), len(rp.Runs), rp.By)
	}
	if rp.Configs[0].Keys[0] != "1" || rp.Configs[1].Keys[0] != "4" || !rp.Configs[0].Estimate {
		t.Errorf("configs %+v", rp.Configs[0])
	}
	if rp.Label(rp.Configs[1]) != "batch_size=4" {
		t.Errorf("label %q", rp.Label(rp.Configs[1]))
	}
	rp, _ = Build(in, Options{Sort: []string{"-" + record.MOutputTokensPerS}})
	if rp.Configs[0].Keys[0] != "4" {
		t.Errorf("sorted by throughput descending: %v first", rp.Configs[0].Keys)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// buildTools builds the named commands of this module into one directory.
func buildTools(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	for _, n := range names {
		args = append(args, "../"+n)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// pipe runs bin with args, stdin in, and returns stdout; stderr is logged.
func pipe(t *testing.T, in []byte, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("%s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), stderr.String())
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(bin), err)
	}
	return out
}

// TestQuickstartPipeline runs the README's main job for real: the quickstart
// study expanded, executed with the native backend (real inference in a worker
// process, the estimate sampler of a machine without sensors, an idle
// baseline) and aggregated. Every record validates against its schema.
func TestQuickstartPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs 4 real native-backend runs")
	}
	bin := buildTools(t, "llem-expand", "llem-exec", "llem-aggregate")
	out := t.TempDir()

	exps := pipe(t, nil, filepath.Join(bin, "llem-expand"), "../../examples/quickstart.yaml")
	runs := pipe(t, exps, filepath.Join(bin, "llem-exec"), "--out", out)
	energy := pipe(t, runs, filepath.Join(bin, "llem-aggregate"))

	for name, stream := range map[string][]byte{"experiments": exps, "runs": runs, "energy": energy} {
		if _, err := schemas.CheckNDJSON(stream); err != nil {
			t.Fatalf("%s stream: %v", name, err)
		}
	}
	kinds := func(stream []byte) map[string][]json.RawMessage {
		m := map[string][]json.RawMessage{}
		for _, l := range bytes.Split(bytes.TrimSpace(stream), []byte("\n")) {
			var h struct{ Kind string }
			if err := json.Unmarshal(l, &h); err != nil {
				t.Fatalf("%v: %s", err, l)
			}
			m[h.Kind] = append(m[h.Kind], l)
		}
		return m
	}
	rk := kinds(runs)
	if len(rk["run"]) != 4 || len(rk["baseline"]) != 1 {
		t.Fatalf("want 4 runs and 1 baseline, got %d and %d", len(rk["run"]), len(rk["baseline"]))
	}
	// The idle baseline lasts what the study's baseline section says (5 s).
	var bl record.Baseline
	if err := json.Unmarshal(rk["baseline"][0], &bl); err != nil || bl.DurationS < 5 || bl.DurationS > 7 {
		t.Fatalf("baseline: %v, %.2f s, want the study's 5 s", err, bl.DurationS)
	}
	for _, raw := range rk["run"] {
		var r record.Run
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != record.StatusOK || r.Backend != "native" || r.BaselineID == "" {
			t.Fatalf("run %s: status %s backend %s baseline %q", r.RunID, r.Status, r.Backend, r.BaselineID)
		}
		if r.Totals == nil || r.Totals.Requests != 64 || r.Totals.OutputTokens != 64*128 {
			t.Fatalf("run %s: totals %+v, want 64 requests of 128 output tokens", r.RunID, r.Totals)
		}
		if r.Phases.Measure == nil || r.Phases.Measure.EndNS <= r.Phases.Measure.StartNS {
			t.Fatalf("run %s: no measure window: %+v", r.RunID, r.Phases)
		}
		for _, f := range []string{"experiment.json", "events.ndjson", "samples.arrows", "worker.log", "run.json"} {
			if _, err := os.Stat(filepath.Join(r.RunDir, f)); err != nil {
				t.Errorf("run %s: %v", r.RunID, err)
			}
		}
	}
	ek := kinds(energy)
	if len(ek["energy"]) != 4 || len(ek["summary"]) != 2 {
		t.Fatalf("want 4 energy and 2 summary records, got %d and %d", len(ek["energy"]), len(ek["summary"]))
	}
	for _, raw := range ek["energy"] {
		var e record.Energy
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		// This machine has no power sensor: the figures are the labelled
		// estimate, and say so.
		if !e.Estimate || !hasFlag(e.Flags, "estimate_source") {
			t.Errorf("energy %s: estimate %v flags %v: an estimate must say it is one", e.RunID, e.Estimate, e.Flags)
		}
		if hasFlag(e.Flags, "short_window") || hasFlag(e.Flags, "few_samples") {
			t.Errorf("energy %s: the quickstart's windows should be long enough: %v", e.RunID, e.Flags)
		}
		jpt := e.Metrics["j_per_output_token"]
		if jpt == nil || *jpt <= 0 {
			t.Errorf("energy %s: j_per_output_token = %v", e.RunID, jpt)
		}
	}
}

func hasFlag(fs []record.Flag, code string) bool {
	for _, f := range fs {
		if f.Code == code {
			return true
		}
	}
	return false
}

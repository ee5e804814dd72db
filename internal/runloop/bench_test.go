package runloop

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llem/llem/internal/record"
)

// BenchmarkRunOverhead measures llem-exec's cost per run beyond the worker's
// own: it times b.N runs through Run and subtracts the time of starting the
// same worker directly on the same experiment.json b.N times. Journal fsyncs,
// atomic writes, event parsing, process-group handling are all in the figure.
func BenchmarkRunOverhead(b *testing.B) {
	out := b.TempDir()
	var sb strings.Builder
	for i := 0; i < b.N; i++ {
		sb.WriteString(expLine(i, "succeed"))
	}
	o := opts(out)
	b.ResetTimer()
	t0 := time.Now()
	err := Run(b.Context(), o, []*record.Reader{record.NewReader(strings.NewReader(sb.String()), "-")}, io.Discard, io.Discard)
	total := time.Since(t0)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	// The worker alone, on the first run's input.
	dir := filepath.Join(out, "t-01234567", "runs", "r000-c1")
	t1 := time.Now()
	for i := 0; i < b.N; i++ {
		c := exec.Command(testWorker)
		c.Env = append(os.Environ(), "LLEM_EXPERIMENT="+filepath.Join(dir, "experiment.json"), "LLEM_RUN_DIR="+b.TempDir())
		c.Stdout = io.Discard
		if err := c.Run(); err != nil {
			b.Fatal(err)
		}
	}
	worker := time.Since(t1)
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "ms/run")
	b.ReportMetric(float64(worker.Microseconds())/1e3/float64(b.N), "worker-ms/run")
	b.ReportMetric(float64((total-worker).Microseconds())/1e3/float64(b.N), "overhead-ms/run")
}

// BenchmarkPythonRunFloor is the peer figure beside BenchmarkRunOverhead: the
// original starts a fresh Python interpreter per experiment, so its floor per
// run is at least one interpreter start importing its config libraries
// (pydantic, yaml) — before any of torch's import time. Skipped without them.
// The interpreter is resolved once (sys.executable): where python3 on PATH is
// a version manager's shim (pyenv's is a bash script), timing it would count
// the shim's start-up as the peer's.
func BenchmarkPythonRunFloor(b *testing.B) {
	shim, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("no python3")
	}
	out, err := exec.Command(shim, "-c", "import pydantic, yaml, sys; print(sys.executable)").Output()
	if err != nil {
		b.Skip("python3 lacks pydantic or yaml")
	}
	py := strings.TrimSpace(string(out))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := exec.Command(py, "-c", "import json, sys, pydantic, yaml").Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/run")
}

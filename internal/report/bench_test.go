package report

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/llem/llem/internal/cli"
)

var synthOut = flag.String("synth", "", "write the synthetic 500-run study (energy.ndjson and run directories) into this folder, for timing the binary")

// synth500: 5 models × 4 precisions × 5 batch sizes = 100 configs × 5 cycles.
func synth500(t testing.TB, root string) []byte { return synthStudy(t, 5, 4, 5, 5, root) }

// TestWriteSynthetic writes the 500-run study for the whole-process
// measurement in docs/report.md:
//
//	go test ./internal/report -run WriteSynthetic -synth /tmp/synth500
func TestWriteSynthetic(t *testing.T) {
	if *synthOut == "" {
		t.Skip("-synth DIR not given")
	}
	stream := synth500(t, *synthOut)
	if err := os.WriteFile(filepath.Join(*synthOut, "energy.ndjson"), stream, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes) and its run directories", filepath.Join(*synthOut, "energy.ndjson"), len(stream))
}

// BenchmarkReport500 renders a 500-run study (100 configs × 5 cycles, each
// run with its run directory) in every format, reading the records as the
// tool does. It reports the output's size.
//
//	go test ./internal/report -run XXX -bench Report500 -benchtime 5x
func BenchmarkReport500(b *testing.B) {
	root := b.TempDir()
	stream := synth500(b, root)
	for _, format := range []string{"table", "md", "csv", "json", "html"} {
		b.Run(format, func(b *testing.B) {
			var out bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				var errb bytes.Buffer
				code := cli.Run("llem-report", CommandContext(context.Background()), []string{"--format", format, "--root", root}, bytes.NewReader(stream), &out, &errb)
				if code != 0 {
					b.Fatalf("exit %d: %s", code, errb.String())
				}
			}
			b.ReportMetric(float64(out.Len()), "bytes/report")
		})
	}
}

// The 500-run report holds every run and config and stays well-formed
// (the browser test checks a smaller sweep in chromium).
func TestSynthetic500(t *testing.T) {
	root := t.TempDir()
	stream := synth500(t, root)
	out, stderr, code := runCmd(t, stream, "--format", "html", "--root", root)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkSelfContained(t, out)
	if n := bytes.Count([]byte(out), []byte(`data-series="mean"`)); n != 100 {
		t.Errorf("%d bars, want 100", n)
	}
	if n := bytes.Count([]byte(out), []byte(`-c5</td><td class="num">5</td>`)); n != 100 {
		t.Errorf("%d cycle-5 rows, want 100", n)
	}
}

package study

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

func seq(a, b int) string {
	s := make([]string, 0, b-a)
	for i := a; i < b; i++ {
		s = append(s, fmt.Sprint(i))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// millionStudy is a sweep of 100 × 100 × 100 = 1,000,000 configs.
func millionStudy(cycles int, order string) []byte {
	return []byte(fmt.Sprintf("name: million\nmodel: llem-tiny\nsweep:\n  n: %s\n  max_output_tokens: %s\n  random_seed: %s\nexecution: {n_cycles: %d, cycle_order: %s}\n",
		seq(1, 101), seq(1, 101), seq(1, 101), cycles, order))
}

// BenchmarkMillionRuns expands a million-run sweep to NDJSON (discarded):
// both passes, every config built, validated, hashed and written.
func BenchmarkMillionRuns(b *testing.B) {
	data := millionStudy(1, "sequential")
	for i := 0; i < b.N; i++ {
		s, err := Expand("million.yaml", data, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.WriteNDJSON(io.Discard, false); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(s.Unique*s.NCycles)/b.Elapsed().Seconds()*float64(i+1), "runs/s")
	}
}

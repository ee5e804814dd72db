package report

import (
	"os"
	"strings"
	"testing"
)

// Whatever the input, llem-report answers with a report (exit 0) or a usage
// error (exit 2), in every format: never a panic, never a hang.
func FuzzReport(f *testing.F) {
	for _, file := range []string{"testdata/study.ndjson", "testdata/quickstart/energy.ndjson"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f.Add([]byte(line))
		}
	}
	f.Add([]byte(`{"kind":"energy","v":1,"id":"a","run_id":"a-c1","status":"ok","metrics":{"j_per_output_token":1e300,"output_tokens_per_s":-5,"e2e_p50_s":1e-300},"estimate":true}` + "\n" +
		`{"kind":"summary","v":1,"id":"a","metrics":{"j_per_output_token":{"n":2,"mean":1e20,"ci95_lo":-1e21,"ci95_hi":1e21,"ci95_half_width":1e21},"output_tokens_per_s":{"mean":1e20},"e2e_p50_s":{"mean":1.00000000000001e20}}}`))
	f.Add([]byte(`{"kind":"summary","v":1,"id":"b","config":{"a":{"b":[1,2]},"c":null}}` + "\n" + `{"kind":"summary","v":1,"id":"c","config":{"a":{"b":[1,3]},"c":"x"}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, format := range []string{"table", "md", "csv", "json", "html"} {
			_, stderr, code := runCmd(t, in, "--format", format, "--root", t.TempDir())
			if code != 0 && code != 2 {
				t.Fatalf("%s: exit %d: %s", format, code, stderr)
			}
			if strings.Contains(stderr, "internal error") {
				t.Fatalf("%s: %s", format, stderr)
			}
		}
	})
}

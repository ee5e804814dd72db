package aggregate

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llem/llem/internal/atomicfile"
	"github.com/llem/llem/internal/record"
)

// checkNoPartial: the final name holds the previous content and nothing
// else was left in dir.
func checkNoPartial(t *testing.T, name, dir, final, old string) {
	t.Helper()
	if b, err := os.ReadFile(final); err != nil || string(b) != old {
		t.Errorf("%s: %s holds %d bytes (%v), want the previous %q", name, final, len(b), err, old)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("%s: %d files in the directory, want only %s", name, len(es), filepath.Base(final))
	}
}

// A writer of final files that fails mid-way (the disk fills, a value
// cannot be encoded) returns the error and leaves no part of its file
// under the final name.
func TestFinalFilesNeverPartial(t *testing.T) {
	reqs := make([]RequestEnergy, 2000)
	for i := range reqs {
		reqs[i] = RequestEnergy{Kind: "request_energy", V: 1, RunID: "r", ID: i, EnergyJ: float64(i)}
	}
	nan := append([]RequestEnergy(nil), reqs...)
	nan[1500].EnergyJ = math.NaN() // json cannot encode it
	recs := []*record.Energy{}
	for i := 0; i < 200; i++ {
		recs = append(recs, &record.Energy{Kind: record.KindEnergy, V: record.Version, RunID: strings.Repeat("r", 100) + string(rune('a'+i%26))})
	}
	for _, c := range []struct {
		name  string
		fail  int64 // bytes before the disk fails; -1: it does not
		write func(path string) error
		want  error
	}{
		{"requests, disk full", 10_000, func(p string) error { return writeRequests(p, reqs) }, atomicfile.ErrInjected},
		{"requests, unencodable", -1, func(p string) error { return writeRequests(p, nan) }, nil},
		{"parquet, disk full", 1000, func(p string) error {
			return WriteParquet(p, "energy", EnergyTable(recs), Provenance{Tool: "llem-aggregate"})
		}, atomicfile.ErrInjected},
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, "out")
		os.WriteFile(p, []byte("previous"), 0o644)
		if c.fail >= 0 {
			restore := atomicfile.FailAfter(c.fail)
			err := c.write(p)
			restore()
			if !errors.Is(err, c.want) {
				t.Errorf("%s: error %v, want %v", c.name, err, c.want)
			}
		} else if err := c.write(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming %s", c.name, err, p)
		}
		checkNoPartial(t, c.name, dir, p, "previous")
	}
}

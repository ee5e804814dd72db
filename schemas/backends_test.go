package schemas

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/llem/llem/internal/config"
)

// The record schemas that enumerate backends list exactly config.Backends,
// in its order, so that a new backend cannot be added to one and not the
// other.
func TestBackendEnumsMatchConfig(t *testing.T) {
	for _, name := range []string{"experiment.schema.json", "run.schema.json"} {
		b, err := files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Properties struct {
				Backend struct {
					Enum []string `json:"enum"`
				} `json:"backend"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := s.Properties.Backend.Enum; !slices.Equal(got, config.Backends) {
			t.Errorf("%s: backend enum %v, want config.Backends %v", name, got, config.Backends)
		}
	}
}

package schemas

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/llem/llem/internal/record"
)

// TestErrorTypesEnum keeps the schema's enum of error.type and the Go
// constants (record.ErrorTypes) the same list, and the enum is enforced: a
// run record with another type is rejected.
func TestErrorTypesEnum(t *testing.T) {
	b, err := files.ReadFile("defs.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Defs struct {
			Error struct {
				Properties struct {
					Type struct {
						Enum []string `json:"enum"`
					} `json:"type"`
				} `json:"properties"`
			} `json:"error"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if got := doc.Defs.Error.Properties.Type.Enum; !reflect.DeepEqual(got, record.ErrorTypes) {
		t.Fatalf("schema enum %v\nrecord.ErrorTypes %v", got, record.ErrorTypes)
	}
	run := func(typ string) []byte {
		r := record.Run{Experiment: record.Experiment{Kind: "run", V: 1, Study: "s", StudyHash: "0123456789abcdef", ID: "fedcba9876543210",
			Cycle: 1, NCycles: 1, RunID: "fedcba9876543210-c1", Backend: "native", Model: "m",
			Config: json.RawMessage(`{"model":"m","backend":"native"}`), Runner: record.Runner{Type: "local"}},
			Status: record.StatusFailed, Error: &record.Error{Type: typ, Message: "m"}, RunDir: "/r", SampleFile: "s", EventsFile: "e",
			Host: record.Host{Hostname: "h", OS: "linux", Arch: "amd64", CPUs: 1}}
		b, _ := json.Marshal(r)
		return b
	}
	for _, typ := range record.ErrorTypes {
		if err := Validate("run", run(typ)); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
	if err := Validate("run", run("worker_crashed")); err == nil {
		t.Error("an error type outside the enum was accepted")
	}
}

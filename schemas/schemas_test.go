package schemas

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/llem/llem/internal/record"
)

func ptr[T any](v T) *T { return &v }

func TestValidRecords(t *testing.T) {
	exp := record.Experiment{Kind: "experiment", V: 1, Study: "s", StudyHash: "0123456789abcdef", ID: "fedcba9876543210",
		Seq: 0, Cycle: 1, NCycles: 3, RunID: "fedcba9876543210-c1", Backend: "native", Model: "llem-tiny",
		Config: json.RawMessage(`{"model":"llem-tiny","backend":"native"}`), Runner: record.Runner{Type: "local"}}
	run := record.Run{Experiment: exp, Status: "failed", Error: &record.Error{Type: "crash", Message: "exited 1"},
		RunDir: "/r", SampleFile: "samples.arrows", EventsFile: "events.ndjson", Host: record.Host{Hostname: "h", OS: "linux", Arch: "amd64", CPUs: 2}}
	run.Kind = "run"
	en := record.Energy{Kind: "energy", V: 1, Study: "s", StudyHash: "0123456789abcdef", ID: exp.ID, RunID: exp.RunID, Backend: "native", Model: "m",
		Status: "ok", Basis: "total", Metrics: map[string]*float64{record.MEnergyJ: ptr(1.5), record.MFLOPs: nil},
		Phases: map[string]*record.PhaseEnergy{"measure": {Devices: []record.DeviceEnergy{{Device: "cpu", Scope: "cpu_estimate", Source: "estimate", Estimate: true, Method: "integral"}}}}}
	sum := record.Summary{Kind: "summary", V: 1, Study: "s", StudyHash: "0123456789abcdef", ID: exp.ID, Backend: "native", Model: "m",
		Metrics: map[string]*record.Stat{record.MEnergyJ: {N: 3, Mean: ptr(1.0)}}}
	base := record.Baseline{Kind: "baseline", V: 1, ID: "baseline-1", Host: "h", Method: "measured", SampleFile: "b.arrows",
		Devices: []record.BaselineDevice{{Device: "cpu", Source: "estimate", Scope: "cpu_estimate", PowerW: ptr(3.0), Samples: 10, Estimate: true}}}
	ev := record.Event{Event: "request", T: 5, Request: &record.RequestEvent{ID: 1, InputTokens: 3, OutputTokens: 4, TStartNS: 1, TFirstNS: 2, TEndNS: 3, ITLNS: []int64{1, 2, 3}}}
	var buf []byte
	for _, v := range []any{exp, run, en, sum, base, ev} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(append(buf, b...), '\n')
	}
	counts, err := CheckNDJSON(buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 6 {
		t.Fatalf("checked kinds %v, want 6", counts)
	}
}

func TestInvalidRecords(t *testing.T) {
	cases := map[string]string{
		"unknown field":            `{"kind":"baseline","v":1,"id":"b","host":"h","method":"measured","window":{"start_ns":1,"end_ns":2},"duration_s":1,"sample_file":"x","devices":[],"oops":1}`,
		"bad id":                   `{"kind":"experiment","v":1,"study":"s","study_hash":"XYZ","id":"1","seq":0,"cycle":1,"n_cycles":1,"run_id":"a","backend":"native","model":"m","gap_before_s":0,"config":{"model":"m","backend":"native"},"runner":{"type":"local"}}`,
		"escaping run id":          `{"kind":"experiment","v":1,"study":"s","study_hash":"0123456789abcdef","id":"0123456789abcdef","seq":0,"cycle":1,"n_cycles":1,"run_id":"../x","backend":"native","model":"m","gap_before_s":0,"config":{"model":"m","backend":"native"},"runner":{"type":"local"}}`,
		"event without phase":      `{"event":"phase","t":1,"edge":"start"}`,
		"unknown kind":             `{"kind":"nope"}`,
		"ok request, no token":     `{"kind":"request","v":1,"id":0,"input_tokens":null,"output_tokens":0,"tokens_source":"counted","max_tokens":4,"t_scheduled":null,"send_lag_ns":null,"t_start":1,"t_first_token":null,"t_end":2,"itl_ns":[],"status":"ok","http_status":200,"error":null}`,
		"failed request, no error": `{"kind":"request","v":1,"id":0,"input_tokens":null,"output_tokens":0,"tokens_source":"counted","max_tokens":4,"t_scheduled":null,"send_lag_ns":null,"t_start":1,"t_first_token":null,"t_end":2,"itl_ns":[],"status":"timeout","http_status":null,"error":null}`,
		"http error, no status":    `{"kind":"request","v":1,"id":0,"input_tokens":null,"output_tokens":0,"tokens_source":"counted","max_tokens":4,"t_scheduled":null,"send_lag_ns":null,"t_start":1,"t_first_token":null,"t_end":2,"itl_ns":[],"status":"http_error","http_status":null,"error":"x"}`,
	}
	for name, line := range cases {
		if _, err := CheckNDJSON([]byte(line)); err == nil {
			t.Errorf("%s: accepted %s", name, line)
		}
	}
}

// TestSchemasMatchTypes keeps the Go record types and the schemas in step:
// every JSON field of a type is a property of its schema and vice versa.
func TestSchemasMatchTypes(t *testing.T) {
	types := map[string]reflect.Type{
		"experiment.schema.json#":                   reflect.TypeOf(record.Experiment{}),
		"run.schema.json#":                          reflect.TypeOf(record.Run{}),
		"skipped.schema.json#":                      reflect.TypeOf(record.Skipped{}),
		"baseline.schema.json#":                     reflect.TypeOf(record.Baseline{}),
		"energy.schema.json#":                       reflect.TypeOf(record.Energy{}),
		"summary.schema.json#":                      reflect.TypeOf(record.Summary{}),
		"request.schema.json#":                      reflect.TypeOf(record.Request{}),
		"defs.schema.json#/$defs/window":            reflect.TypeOf(record.Window{}),
		"defs.schema.json#/$defs/totals":            reflect.TypeOf(record.Totals{}),
		"defs.schema.json#/$defs/warmup":            reflect.TypeOf(record.Warmup{}),
		"defs.schema.json#/$defs/model_facts":       reflect.TypeOf(record.ModelFacts{}),
		"defs.schema.json#/$defs/memory":            reflect.TypeOf(record.Memory{}),
		"defs.schema.json#/$defs/gpu":               reflect.TypeOf(record.GPU{}),
		"defs.schema.json#/$defs/host":              reflect.TypeOf(record.Host{}),
		"defs.schema.json#/$defs/worker":            reflect.TypeOf(record.Worker{}),
		"defs.schema.json#/$defs/container":         reflect.TypeOf(record.Container{}),
		"defs.schema.json#/$defs/error":             reflect.TypeOf(record.Error{}),
		"defs.schema.json#/$defs/flag":              reflect.TypeOf(record.Flag{}),
		"defs.schema.json#/$defs/problem":           reflect.TypeOf(record.Problem{}),
		"defs.schema.json#/$defs/device_energy":     reflect.TypeOf(record.DeviceEnergy{}),
		"defs.schema.json#/$defs/scope_energy":      reflect.TypeOf(record.ScopeEnergy{}),
		"defs.schema.json#/$defs/phase_energy":      reflect.TypeOf(record.PhaseEnergy{}),
		"defs.schema.json#/$defs/latency":           reflect.TypeOf(record.Latency{}),
		"defs.schema.json#/$defs/stat":              reflect.TypeOf(record.Stat{}),
		"defs.schema.json#/$defs/request_event":     reflect.TypeOf(record.RequestEvent{}),
		"defs.schema.json#/$defs/phases":            reflect.TypeOf(record.Phases{}),
		"defs.schema.json#/$defs/runner":            reflect.TypeOf(record.Runner{}),
		"defs.schema.json#/$defs/footprint":         reflect.TypeOf(record.Footprint{}),
		"defs.schema.json#/$defs/summary_footprint": reflect.TypeOf(record.SummaryFootprint{}),
	}
	for loc, typ := range types {
		file, ptr, _ := strings.Cut(loc, "#")
		b, err := files.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		node := any(doc)
		for _, seg := range strings.Split(strings.Trim(ptr, "/"), "/") {
			if seg != "" {
				node = node.(map[string]any)[seg]
			}
		}
		props, _ := node.(map[string]any)["properties"].(map[string]any)
		var inSchema, inGo []string
		for p := range props {
			inSchema = append(inSchema, p)
		}
		inGo = jsonFields(typ)
		sort.Strings(inSchema)
		sort.Strings(inGo)
		if !reflect.DeepEqual(inSchema, inGo) {
			t.Errorf("%s: schema properties %v\n  Go type %s fields %v", loc, inSchema, typ, inGo)
		}
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			for _, n := range jsonFields(f.Type) {
				if !contains(out, n) {
					out = append(out, n)
				}
			}
			continue
		}
		tag := strings.Split(f.Tag.Get("json"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if !contains(out, tag) {
			out = append(out, tag)
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

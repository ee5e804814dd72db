package runloop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/internal/runner/local"
	"github.com/llem/llem/internal/sampler"
	"github.com/llem/llem/schemas"
)

var testWorker string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llem-exec-test")
	if err != nil {
		panic(err)
	}
	testWorker = filepath.Join(dir, "testworker")
	out, err := exec.Command("go", "build", "-o", testWorker, "./testdata/testworker").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build testworker: %v\n%s", err, out)
		os.Exit(1)
	}
	if err := buildStandin(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func expLine(seq int, behave string) string {
	e := record.Experiment{Kind: "experiment", V: 1, Study: "t", StudyHash: "0123456789abcdef",
		ID: fmt.Sprintf("%016x", seq), Seq: seq, Cycle: 1, NCycles: 1, RunID: fmt.Sprintf("r%03d-c1", seq),
		Backend: "native", Model: "m", Runner: record.Runner{Type: "local"},
		Config: json.RawMessage(fmt.Sprintf(`{"model":"m","backend":"native","behave":%q}`, behave))}
	b, _ := json.Marshal(e)
	return string(b) + "\n"
}

func opts(out string) Options {
	return Options{Out: out, Workers: map[string][]string{"native": {testWorker}},
		Runners: map[string]runner.Runner{"local": local.New()}, Timeout: 10 * time.Minute,
		Grace: 300 * time.Millisecond, Host: HostFacts()}
}

func runStream(t *testing.T, o Options, stream string) ([]record.Run, []byte, int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), o, []*record.Reader{record.NewReader(strings.NewReader(stream), "-")}, &out, &errb)
	var runs []record.Run
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		var r record.Run
		if json.Unmarshal([]byte(l), &r) == nil && r.Kind == "run" {
			runs = append(runs, r)
		}
	}
	return runs, out.Bytes(), cli.Code(err)
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestBehaviours(t *testing.T) {
	cases := []struct {
		behave, status, errType, msg, flag string
	}{
		{"succeed", "ok", "", "", ""},
		{"error", "failed", "worker_error", "CUDA out of memory", ""},
		{"crash", "failed", "crash", "exited with code 2", ""},
		{"exit3", "failed", "crash", `code 3 without an error event (last stderr line: "giving up")`, ""},
		{"nodone", "failed", "no_done", "without a done event", ""},
		{"hang", "timeout", "timeout", "exceeded the timeout", ""},
		{"ignoreterm", "timeout", "timeout", "exceeded the timeout", ""},
		{"garbage", "ok", "", "", "worker_garbage_output"},
		{"outoforder", "ok", "", "", "events_out_of_order"},
		{"huge", "ok", "", "", "worker_garbage_output"},
		{"grandchild", "ok", "", "", ""},
	}
	// The workers that never end run on their own with a 1 s timeout (any
	// timeout gives them the same outcome); the others with opts' long one,
	// which no slow machine reaches.
	var stream, forever string
	for i, c := range cases {
		if c.behave == "hang" || c.behave == "ignoreterm" {
			forever += expLine(i, c.behave)
		} else {
			stream += expLine(i, c.behave)
		}
	}
	out := t.TempDir()
	o := opts(out)
	o.LogMax = 16 << 20
	runs, raw, code := runStream(t, o, stream)
	of := opts(t.TempDir())
	of.Timeout = time.Second
	fruns, fraw, fcode := runStream(t, of, forever)
	if code != cli.ExitSomeFailed || fcode != cli.ExitSomeFailed {
		t.Errorf("exit %d and %d (never-ending workers), want 3", code, fcode)
	}
	runs, raw = append(runs, fruns...), append(raw, fraw...)
	sort.Slice(runs, func(i, j int) bool { return runs[i].Seq < runs[j].Seq })
	if _, err := schemas.CheckNDJSON(raw); err != nil {
		t.Errorf("schema: %v", err)
	}
	if len(runs) != len(cases) {
		t.Fatalf("%d run records, want %d", len(runs), len(cases))
	}
	for i, c := range cases {
		r := runs[i]
		if r.Status != c.status {
			t.Errorf("%s: status %s, want %s (error %+v)", c.behave, r.Status, c.status, r.Error)
		}
		if c.errType != "" && (r.Error == nil || r.Error.Type != c.errType || !strings.Contains(r.Error.Message, c.msg)) {
			t.Errorf("%s: error %+v, want %s containing %q", c.behave, r.Error, c.errType, c.msg)
		}
		if c.errType == "" && r.Error != nil {
			t.Errorf("%s: unexpected error %+v", c.behave, r.Error)
		}
		if c.flag != "" {
			found := false
			for _, f := range r.Warnings {
				found = found || f.Code == c.flag
			}
			if !found {
				t.Errorf("%s: no %s warning in %+v", c.behave, c.flag, r.Warnings)
			}
		}
		if c.status == "ok" && (r.Phases.Measure == nil || r.Totals == nil || r.Totals.OutputTokens != 2) {
			t.Errorf("%s: phases %+v totals %+v", c.behave, r.Phases, r.Totals)
		}
		b, _ := os.ReadFile(filepath.Join(r.RunDir, "pids"))
		for _, p := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(p)
			if alive(pid) {
				t.Errorf("%s: pid %d still running", c.behave, pid)
			}
		}
		if _, err := os.Stat(filepath.Join(r.RunDir, "run.json")); err != nil {
			t.Errorf("%s: %v", c.behave, err)
		}
	}
	if e := runs[1].Error; e != nil && (e.Code != "oom" || e.Hint != "lower batch_size") {
		t.Errorf("worker error not surfaced as is: %+v", e)
	}
	if fi, err := os.Stat(filepath.Join(runs[9].RunDir, "worker.log")); err != nil || fi.Size() > 17<<20 {
		t.Errorf("huge worker.log not capped: %v %v", fi.Size(), err)
	}
}

func TestResumeAndDryRun(t *testing.T) {
	out := t.TempDir()
	stream := expLine(0, "succeed") + expLine(1, "exit3") + expLine(2, "succeed")
	runs, _, code := runStream(t, opts(out), stream)
	if code != 3 || len(runs) != 3 {
		t.Fatalf("first pass: exit %d, %d runs", code, len(runs))
	}
	// Dry run: done for ok runs, planned for the failed one.
	o := opts(out)
	o.DryRun = true
	runs, raw, code := runStream(t, o, stream)
	if code != 0 || runs[0].Status != "done" || runs[1].Status != "planned" || runs[2].Status != "done" {
		t.Errorf("dry run: exit %d %v", code, runs)
	}
	if _, err := schemas.CheckNDJSON(raw); err != nil {
		t.Errorf("schema: %v", err)
	}
	// Resume with the failing run fixed: only it runs again.
	stream2 := expLine(0, "succeed") + expLine(1, "succeed") + expLine(2, "succeed")
	runs, _, code = runStream(t, opts(out), stream2)
	if code != 0 || len(runs) != 3 {
		t.Fatalf("resume: exit %d, %d runs", code, len(runs))
	}
	if runs[1].Attempt != 2 || runs[0].Attempt != 1 {
		t.Errorf("attempts %d %d", runs[0].Attempt, runs[1].Attempt)
	}
	j, _ := os.ReadFile(filepath.Join(out, "t-01234567", "journal.ndjson"))
	if n := strings.Count(string(j), `"status":"ok"`); n != 3 {
		t.Errorf("%d ok lines in journal, want 3:\n%s", n, j)
	}
}

// TestSamplerAndBaseline runs two runs with the internal sampler's CPU
// estimate: one baseline record first, both runs reference it, samples exist;
// a resume re-emits the baseline before the re-emitted runs.
func TestSamplerAndBaseline(t *testing.T) {
	out := t.TempDir()
	o := opts(out)
	o.Sampler = &InternalSampler{Opts: sampler.Options{Sources: []string{"estimate"}, Interval: 10 * time.Millisecond}}
	o.Baseline, o.BaselineTTL = 200*time.Millisecond, time.Hour
	stream := expLine(0, "succeed") + expLine(1, "succeed")
	for pass := 0; pass < 2; pass++ {
		_, raw, code := runStream(t, o, stream)
		if code != 0 {
			t.Fatalf("pass %d: exit %d", pass, code)
		}
		counts, err := schemas.CheckNDJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		if counts["baseline"] != 1 || counts["run"] != 2 || !strings.HasPrefix(string(raw), `{"kind":"baseline"`) {
			t.Fatalf("pass %d: %v\n%s", pass, counts, raw)
		}
		var b record.Baseline
		json.Unmarshal(raw[:bytes.IndexByte(raw, '\n')], &b)
		if len(b.Devices) == 0 || b.Devices[0].PowerW == nil || b.Devices[0].Samples < 5 {
			t.Errorf("baseline devices %+v", b.Devices)
		}
		if !strings.Contains(string(raw), `"baseline_id":"`+b.ID+`"`) {
			t.Errorf("runs do not reference %s", b.ID)
		}
		if fi, err := os.Stat(filepath.Join(out, "t-01234567", "runs", "r001-c1", "samples.arrows")); err != nil || fi.Size() == 0 {
			t.Errorf("samples.arrows: %v", err)
		}
	}
}

// TestRunCPUTime: each run's samples carry its CPU time beside the
// machine's (a cgroup of its own where cgroup v2 is writable, else its
// process tree), the run record says where it came from, and a run's
// cgroup is gone after the run.
func TestRunCPUTime(t *testing.T) {
	out := t.TempDir()
	o := opts(out)
	o.Sampler = &InternalSampler{Opts: sampler.Options{Sources: []string{"estimate"}, Interval: 10 * time.Millisecond}}
	_, raw, code := runStream(t, o, expLine(0, "succeed"))
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := schemas.CheckNDJSON(raw); err != nil {
		t.Fatal(err)
	}
	var run record.Run
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		if bytes.Contains(l, []byte(`"kind":"run"`)) {
			json.Unmarshal(l, &run)
		}
	}
	dir, isGroup := strings.CutPrefix(run.CPUTime, "cgroup:")
	if !isGroup && run.CPUTime != "process-tree" {
		t.Fatalf("cpu_time %q", run.CPUTime)
	}
	if _, err := os.Stat(dir); isGroup && !os.IsNotExist(err) {
		t.Errorf("cgroup %s left behind (%v)", dir, err)
	}
	r, err := power.Open(filepath.Join(out, "t-01234567", "runs", "r000-c1", "samples.arrows"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Meta().Attribution != run.CPUTime {
		t.Errorf("stream attribution %q, run record %q", r.Meta().Attribution, run.CPUTime)
	}
	rows := 0
	for r.Next() {
		b := r.Batch()
		for i := 0; i < b.N; i++ {
			if b.RunCPUOK != nil && !b.RunCPUOK[i] || b.RunCPU == nil || b.MachineCPU[i] <= 0 {
				t.Fatalf("row %d has no CPU time", rows)
			}
			rows++
		}
	}
	if rows == 0 {
		t.Error("no rows")
	}
}

// TestBaselineFromConfig: with Options.Baseline < 0 (llem-exec's default,
// --baseline config) the idle measurement lasts as long as the experiment's
// baseline.duration_seconds says, and baseline.enabled false measures none.
func TestBaselineFromConfig(t *testing.T) {
	line := func(seq int, baseline string) string {
		l := expLine(seq, "succeed")
		return strings.Replace(l, `"behave":`, `"baseline":`+baseline+`,"behave":`, 1)
	}
	for _, c := range []struct {
		baseline string
		want     float64 // seconds; 0 = no baseline record
	}{{`{"enabled":true,"duration_seconds":0.3}`, 0.3}, {`{"enabled":false,"duration_seconds":5}`, 0}} {
		o := opts(t.TempDir())
		o.Sampler = &InternalSampler{Opts: sampler.Options{Sources: []string{"estimate"}, Interval: 10 * time.Millisecond}}
		o.Baseline, o.BaselineTTL = -1, time.Hour
		runs, raw, code := runStream(t, o, line(0, c.baseline))
		if code != 0 || len(runs) != 1 {
			t.Fatalf("%s: exit %d, %d runs\n%s", c.baseline, code, len(runs), raw)
		}
		var b record.Baseline
		json.Unmarshal(raw[:bytes.IndexByte(raw, '\n')], &b)
		switch {
		case c.want == 0 && (b.Kind != "run" || runs[0].BaselineID != ""):
			t.Errorf("%s: a baseline was measured: %s", c.baseline, raw)
		case c.want > 0 && (b.Kind != "baseline" || b.DurationS < c.want || b.DurationS > c.want+2 || runs[0].BaselineID != b.ID):
			t.Errorf("%s: baseline %+v, run baseline_id %q", c.baseline, b, runs[0].BaselineID)
		}
	}
}

func TestShardSelectLockTruncated(t *testing.T) {
	var stream string
	for i := 0; i < 6; i++ {
		stream += expLine(i, "succeed")
	}
	o := opts(t.TempDir())
	o.DryRun = true
	o.Shard = [2]int{2, 3}
	runs, _, _ := runStream(t, o, stream)
	if len(runs) != 2 || runs[0].Seq != 1 || runs[1].Seq != 4 {
		t.Errorf("shard 2/3: %v", runs)
	}
	o.Shard = [2]int{}
	sel, err := ParseSelect("0-1,r005-c1")
	if err != nil {
		t.Fatal(err)
	}
	o.Select = sel
	runs, _, _ = runStream(t, o, stream)
	if len(runs) != 3 || runs[2].RunID != "r005-c1" {
		t.Errorf("select: %v", runs)
	}
	if _, err := ParseSelect("a/b"); err == nil {
		t.Error("unsafe select accepted")
	}

	// A held lock refuses a second writer.
	out := t.TempDir()
	dir := filepath.Join(out, "t-01234567")
	os.MkdirAll(dir, 0o755)
	lk, err := takeLock(filepath.Join(dir, "lock"), "h")
	if err != nil {
		t.Fatal(err)
	}
	var ob, eb bytes.Buffer
	err = Run(context.Background(), opts(out), []*record.Reader{record.NewReader(strings.NewReader(stream), "-")}, &ob, &eb)
	if err == nil || !strings.Contains(err.Error(), "held by another llem-exec") || !strings.Contains(err.Error(), `"pid":`) {
		t.Errorf("locked dir: %v", err)
	}
	lk.release()

	// A journal cut mid-line is reported as file:line and tolerated.
	j := filepath.Join(dir, "journal.ndjson")
	os.WriteFile(j, []byte(`{"t":1,"op":"open","pid":1}`+"\n"+`{"t":2,"op":"state","run_id":"r000-c1","status":"runn`), 0o644)
	runs, _, code := runStream(t, opts(out), stream)
	if code != 0 || len(runs) != 6 {
		t.Fatalf("after truncated journal: exit %d, %d runs", code, len(runs))
	}
}

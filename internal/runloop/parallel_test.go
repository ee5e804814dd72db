package runloop

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// fakeGPUs stand for a node's GPUs: nothing here has one, and the run loop
// only passes UUIDs around (CUDA_VISIBLE_DEVICES, Spec.GPUs, the sampler).
var fakeGPUs = []string{"GPU-00000000-0000-0000-0000-00000000000a", "GPU-00000000-0000-0000-0000-00000000000b",
	"GPU-00000000-0000-0000-0000-00000000000c", "GPU-00000000-0000-0000-0000-00000000000d"}

// gpuExpLine is a vllm experiment needing tp GPUs (tensor_parallel_size) run
// by the test worker, which reports what it was given and sleeps sleepMS.
// tp 0 makes it a native (CPU) one.
func gpuExpLine(seq, tp, sleepMS int) string { return gpuExpLineAt(seq, tp, sleepMS, "", 0) }

// gpuExpLineAt is gpuExpLine for a run that meets meet runs at the barrier
// folder (testworker) before it sleeps: they are all in flight together.
func gpuExpLineAt(seq, tp, sleepMS int, barrier string, meet int) string {
	meeting := ""
	if barrier != "" {
		meeting = fmt.Sprintf(`,"barrier":%q,"meet":%d`, barrier, meet)
	}
	backend, cfg := "vllm", fmt.Sprintf(`{"model":"m","backend":"vllm","behave":"report","sleep_ms":%d%s,"vllm":{"engine":{"tensor_parallel_size":%d}}}`, sleepMS, meeting, tp)
	if tp == 0 {
		backend, cfg = "native", fmt.Sprintf(`{"model":"m","backend":"native","behave":"report","sleep_ms":%d%s}`, sleepMS, meeting)
	}
	e := record.Experiment{Kind: "experiment", V: 1, Study: "p", StudyHash: "fedcba9876543210",
		ID: fmt.Sprintf("%016x", seq), Seq: seq, Cycle: 1, NCycles: 1, RunID: fmt.Sprintf("r%03d-c1", seq),
		Backend: backend, Model: "m", Runner: record.Runner{Type: "local"}, GapBeforeS: 5, Config: json.RawMessage(cfg)}
	b, _ := json.Marshal(e)
	return string(b) + "\n"
}

type report struct {
	CVD     string `json:"cuda_visible_devices"`
	Set     bool   `json:"set"`
	StartNS int64  `json:"start_ns"`
	EndNS   int64  `json:"end_ns"`
}

func readReport(t *testing.T, r record.Run) report {
	t.Helper()
	var rep report
	if err := readJSON(filepath.Join(r.RunDir, "report.json"), &rep); err != nil {
		t.Fatalf("%s: %v", r.RunID, err)
	}
	return rep
}

func gpuList(cvd string) []string {
	if cvd == "" {
		return nil
	}
	return strings.Split(cvd, ",")
}

// recSampler records which GPUs each recording was restricted to.
type recSampler struct {
	mu   sync.Mutex
	runs map[string][]string // run dir → GPUs
	all  int                 // unrestricted recordings (the baseline)
}

type recSession struct{ gpus []string }

func (s *recSampler) Start(path string) (SamplerSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all++
	return &recSession{gpus: fakeGPUs}, nil
}

func (s *recSampler) StartGPUs(path string, gpus []string) (SamplerSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = map[string][]string{}
	}
	s.runs[filepath.Dir(path)] = append([]string{}, gpus...)
	return &recSession{gpus: gpus}, nil
}

func (s *recSession) Stop() (SampleInfo, error) { return SampleInfo{Devices: s.gpus}, nil }

// TestParallelGPUs runs a mixed study with --parallel 3 on four fake GPUs:
// every run gets exactly the GPUs its config needs, runs that overlap in time
// never share one, a CPU run sees none, a run needing more than the node has
// fails at once with not_enough_gpus, and every run is ok exactly once.
func TestParallelGPUs(t *testing.T) {
	tps := []int{1, 2, 1, 0, 8, 1, 2, 4, 1, 1}
	var stream string
	// The first two (3 GPUs of 4) meet at a barrier: at least one pair
	// overlaps, however slowly the machine starts them.
	barrier := t.TempDir()
	for i, tp := range tps {
		if i < 2 {
			stream += gpuExpLineAt(i, tp, 250, barrier, 2)
		} else {
			stream += gpuExpLine(i, tp, 250)
		}
	}
	out := t.TempDir()
	o := opts(out)
	o.Workers["vllm"] = []string{testWorker}
	o.GPUs, o.Parallel = fakeGPUs, 3
	rec := &recSampler{}
	o.Sampler = rec
	t0 := time.Now()
	runs, raw, code := runStream(t, o, stream)
	wall := time.Since(t0)
	if code != cli.ExitSomeFailed {
		t.Fatalf("exit %d, want 3 (the run needing 8 GPUs fails)", code)
	}
	if _, err := schemas.CheckNDJSON(raw); err != nil {
		t.Fatalf("schema: %v", err)
	}
	if len(runs) != len(tps) {
		t.Fatalf("%d run records, want %d", len(runs), len(tps))
	}
	type span struct {
		id         string
		gpus       []string
		start, end int64
	}
	var spans []span
	for _, r := range runs {
		tp := tps[r.Seq]
		if tp > len(fakeGPUs) {
			if r.Status != "failed" || r.Error == nil || r.Error.Type != record.ErrNotEnoughGPUs || !strings.Contains(r.Error.Message, "needs 8 GPU(s)") || r.Error.Hint == "" {
				t.Errorf("%s: %s %+v, want failed with %s", r.RunID, r.Status, r.Error, record.ErrNotEnoughGPUs)
			}
			continue
		}
		if r.Status != "ok" {
			t.Errorf("%s: %s %+v", r.RunID, r.Status, r.Error)
			continue
		}
		rep := readReport(t, r)
		got := gpuList(rep.CVD)
		if len(got) != tp {
			t.Errorf("%s needs %d GPUs, was given %q", r.RunID, tp, rep.CVD)
		}
		if tp == 0 && (!rep.Set || rep.CVD != "") {
			t.Errorf("%s (CPU) should see no GPU: CUDA_VISIBLE_DEVICES=%q set %v", r.RunID, rep.CVD, rep.Set)
		}
		for _, g := range got {
			if !slices.Contains(fakeGPUs, g) {
				t.Errorf("%s was given %s, not a GPU of the node", r.RunID, g)
			}
		}
		if !slices.Equal(rec.runs[r.RunDir], got) || (tp > 0 && !slices.Equal(r.Devices, got)) {
			t.Errorf("%s sampled on %v (devices %v), ran on %v", r.RunID, rec.runs[r.RunDir], r.Devices, got)
		}
		spans = append(spans, span{r.RunID, got, rep.StartNS, rep.EndNS})
	}
	overlaps, maxAt := 0, 0
	for i, a := range spans {
		at := 1
		for j, b := range spans {
			if i == j || a.start >= b.end || b.start >= a.end {
				continue
			}
			if j > i {
				overlaps++
			}
			if a.start >= b.start && a.start < b.end {
				at++
			}
			for _, g := range a.gpus {
				if slices.Contains(b.gpus, g) {
					t.Errorf("%s and %s ran at the same time on %s", a.id, b.id, g)
				}
			}
		}
		maxAt = max(maxAt, at)
	}
	if overlaps == 0 || maxAt > 3 {
		t.Errorf("%d overlapping pairs, at most %d at once; want some, and never more than --parallel 3", overlaps, maxAt)
	}
	_, oks := journalStates(t, filepath.Join(out, "p-fedcba98", "journal.ndjson"))
	for i, tp := range tps {
		if want := map[bool]int{true: 1, false: 0}[tp <= len(fakeGPUs)]; oks[fmt.Sprintf("r%03d-c1", i)] != want {
			t.Errorf("r%03d-c1 ok %d times in the journal, want %d", i, oks[fmt.Sprintf("r%03d-c1", i)], want)
		}
	}
	t.Logf("10 runs of 250 ms, --parallel 3 on 4 GPUs: %s wall, %d overlapping pairs, up to %d at once", wall.Round(time.Millisecond), overlaps, maxAt)
}

// TestParallelOverlap: with --parallel 4 and four one-GPU runs, all four are
// in flight at one moment, each on its own GPU: they meet at a barrier that
// only four runs side by side pass (one at a time would never end).
func TestParallelOverlap(t *testing.T) {
	var stream string
	barrier := t.TempDir()
	for i := 0; i < 4; i++ {
		stream += gpuExpLineAt(i, 1, 0, barrier, 4)
	}
	o := opts(t.TempDir())
	o.Workers["vllm"] = []string{testWorker}
	o.GPUs, o.Parallel = fakeGPUs, 4
	t0 := time.Now()
	runs, _, code := runStream(t, o, stream)
	wall := time.Since(t0)
	if code != 0 || len(runs) != 4 {
		t.Fatalf("exit %d, %d runs", code, len(runs))
	}
	var lastStart, firstEnd int64 = 0, 1 << 62
	var given []string
	for _, r := range runs {
		rep := readReport(t, r)
		lastStart, firstEnd = max(lastStart, rep.StartNS), min(firstEnd, rep.EndNS)
		given = append(given, rep.CVD)
	}
	sort.Strings(given)
	if !slices.Equal(given, fakeGPUs) {
		t.Errorf("GPUs given %v, want one each of %v", given, fakeGPUs)
	}
	if lastStart >= firstEnd {
		t.Errorf("the four runs were never all in flight: last start %d ns after the first end", lastStart-firstEnd)
	}
	t.Logf("4 runs, --parallel 4: %s wall, all four in flight together for %s", wall.Round(time.Millisecond), time.Duration(firstEnd-lastStart).Round(time.Millisecond))
}

// TestParallelInterruptResume interrupts a --parallel 3 study with runs in
// flight, then resumes it: the interrupted runs run again, none twice ok.
func TestParallelInterruptResume(t *testing.T) {
	var stream string
	for i := 0; i < 9; i++ {
		stream += gpuExpLine(i, 1, 400)
	}
	out := t.TempDir()
	o := opts(out)
	o.Workers["vllm"] = []string{testWorker}
	o.GPUs, o.Parallel = fakeGPUs[:3], 3
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(600*time.Millisecond, cancel)
	var ob, eb strings.Builder
	err := Run(ctx, o, []*record.Reader{record.NewReader(strings.NewReader(stream), "-")}, &ob, &eb)
	if cli.Code(err) != cli.ExitInterrupted {
		t.Fatalf("first pass: exit %d (%v)\n%s", cli.Code(err), err, eb.String())
	}
	journal := filepath.Join(out, "p-fedcba98", "journal.ndjson")
	last, _ := journalStates(t, journal)
	intr := 0
	for _, st := range last {
		if st == record.StatusRunning {
			t.Errorf("a run is left running in the journal after an orderly interrupt: %v", last)
		}
		if st == record.StatusInterrupted {
			intr++
		}
	}
	if intr == 0 {
		t.Errorf("no run was interrupted in flight: %v", last)
	}
	runs, raw, code := runStream(t, o, stream)
	if code != 0 || len(runs) != 9 {
		t.Fatalf("resume: exit %d, %d runs", code, len(runs))
	}
	if _, err := schemas.CheckNDJSON(raw); err != nil {
		t.Fatal(err)
	}
	last, oks := journalStates(t, journal)
	for i := 0; i < 9; i++ {
		id := fmt.Sprintf("r%03d-c1", i)
		if oks[id] != 1 || last[id] != record.StatusOK {
			t.Errorf("%s: ok %d times, last %s", id, oks[id], last[id])
		}
	}
	b, _ := os.ReadFile(journal)
	if !strings.Contains(string(b), `"reason":"interrupted"`) {
		t.Errorf("no close line with reason interrupted:\n%s", b)
	}
	t.Logf("%d runs interrupted in flight, all 9 ok once after the resume", intr)
}

// TestSamplerCmdGPUs: --sampler-cmd's "{gpus}" is the run's GPUs (none for a
// CPU run), and every GPU for the idle baseline.
func TestSamplerCmdGPUs(t *testing.T) {
	dir := t.TempDir()
	logf := filepath.Join(dir, "gpus.log")
	o := opts(t.TempDir())
	o.Workers["vllm"] = []string{testWorker}
	o.GPUs, o.NoGaps = fakeGPUs[:3], true
	// The sampler writes a byte to the run's samples once it has logged its
	// GPUs, and the workers wait for it: a run never ends before its
	// sampler has logged, however slowly the machine starts it.
	o.Sampler = &CmdSampler{Cmd: "echo [{gpus}] >> " + shellQuote(logf) + "; echo; exec cat >/dev/null", Grace: time.Minute, GPUs: o.GPUs}
	await := func(l string) string {
		return strings.Replace(l, `"behave":"report"`, `"behave":"report","await_samples":true`, 1)
	}
	runs, _, code := runStream(t, o, await(gpuExpLine(0, 1, 0))+await(gpuExpLine(1, 2, 0))+await(gpuExpLine(2, 0, 0)))
	if code != 0 || len(runs) != 3 {
		t.Fatalf("exit %d, %d runs", code, len(runs))
	}
	// Outside a run (the idle baseline's recording): every GPU.
	if s, err := o.Sampler.Start(filepath.Join(dir, "idle.arrows")); err != nil {
		t.Fatal(err)
	} else {
		waitUntil(t, "the baseline's {gpus} line", func() bool {
			b, _ := os.ReadFile(logf)
			return strings.Count(string(b), "\n") == 4
		})
		s.Stop()
	}
	b, _ := os.ReadFile(logf)
	want := fmt.Sprintf("[%s]\n[%s]\n[]\n[%s]\n", fakeGPUs[0], strings.Join(fakeGPUs[:2], ","), strings.Join(fakeGPUs[:3], ","))
	if string(b) != want {
		t.Errorf("{gpus} per recording:\n%s\nwant:\n%s", b, want)
	}
}

// TestSIGKILLResumeParallel SIGKILLs the built llem-exec --parallel 3 at 12
// seeded moments of a 24-run study on fake GPUs (--gpus, taken as given where
// there is no NVML), resuming each time: the journal never has a run ok twice,
// a run directory is always either ok with its run.json or running in the
// journal, several runs are caught in flight at once, and at the end every
// run is ok exactly once, in the journal and in the stream.
func TestSIGKILLResumeParallel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildExec(t)
	args := []string{"--worker", "vllm=" + testWorker, "--worker", "native=" + testWorker, "--grace", "200ms",
		"--sampler", "none", "--parallel", "3", "--gpus", strings.Join(fakeGPUs, ",")}
	if err := exec.Command(bin, append(args, "--dry-run", "--out", t.TempDir())...).Run(); err != nil {
		t.Skipf("SKIPPED: this machine has NVML, so --gpus must name its real GPUs: %v", err)
	}
	const nRuns = 24
	var stream string
	for i := 0; i < nRuns; i++ {
		stream += gpuExpLine(i, []int{1, 2, 0, 1}[i%4], 80)
	}
	out := t.TempDir()
	args = append(args, "--out", out)
	study := filepath.Join(out, "p-fedcba98")
	rng := rand.New(rand.NewSource(20261202))
	maxRunning := 0
	check := func(kill int) {
		last, oks := journalStates(t, filepath.Join(study, "journal.ndjson"))
		for id, n := range oks {
			if n > 1 {
				t.Errorf("kill %d: run %s ok %d times in the journal", kill, id, n)
			}
		}
		running := 0
		dirs, _ := os.ReadDir(filepath.Join(study, "runs"))
		for _, d := range dirs {
			switch last[d.Name()] {
			case record.StatusOK:
				var r record.Run
				if err := readJSON(filepath.Join(study, "runs", d.Name(), "run.json"), &r); err != nil || r.Status != "ok" {
					t.Errorf("kill %d: %s is ok in the journal but run.json is %v", kill, d.Name(), err)
				}
			case record.StatusRunning:
				running++
			default:
				t.Errorf("kill %d: run dir %s exists with journal state %q", kill, d.Name(), last[d.Name()])
			}
		}
		maxRunning = max(maxRunning, running)
	}
	stdout := killAndResume(t, bin, args, stream, filepath.Join(study, "journal.ndjson"), 12, 60*time.Millisecond, rng, check, func() bool { return maxRunning >= 2 })
	check(-1)
	if maxRunning < 2 {
		t.Errorf("no kill caught two runs in flight at once (at most %d): --parallel did not run side by side", maxRunning)
	}
	last, oks := journalStates(t, filepath.Join(study, "journal.ndjson"))
	seen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var r record.Run
		if json.Unmarshal([]byte(l), &r) == nil && r.Kind == "run" && r.Status == "ok" {
			seen[r.RunID]++
		}
	}
	for i := 0; i < nRuns; i++ {
		id := fmt.Sprintf("r%03d-c1", i)
		if oks[id] != 1 || last[id] != record.StatusOK || seen[id] != 1 {
			t.Errorf("%s: ok %d times in the journal (last %s), %d times in the stream", id, oks[id], last[id], seen[id])
		}
	}
	t.Logf("12 kills of llem-exec --parallel 3, up to %d runs caught in flight at once; all %d runs ok once", maxRunning, nRuns)
}

// TestParallelFailFast: with --parallel 2 and --fail-fast, the first run not
// ok stops the launching; the run beside it finishes, none is left running.
func TestParallelFailFast(t *testing.T) {
	var stream string
	for i := 0; i < 8; i++ {
		l := gpuExpLine(i, 1, 300)
		if i == 1 {
			l = strings.Replace(l, `"behave":"report"`, `"behave":"exit3"`, 1)
		}
		stream += l
	}
	out := t.TempDir()
	o := opts(out)
	o.Workers["vllm"] = []string{testWorker}
	o.GPUs, o.Parallel, o.FailFast = fakeGPUs[:2], 2, true
	runs, _, code := runStream(t, o, stream)
	if code != cli.ExitSomeFailed || len(runs) < 2 || len(runs) > 4 {
		t.Fatalf("exit %d, %d runs (want 3, 2 to 4 runs)", code, len(runs))
	}
	last, _ := journalStates(t, filepath.Join(out, "p-fedcba98", "journal.ndjson"))
	for id, st := range last {
		if st == record.StatusRunning {
			t.Errorf("%s left running", id)
		}
	}
	if last["r001-c1"] != record.StatusFailed || last["r000-c1"] != record.StatusOK || last["r007-c1"] != record.StatusPending {
		t.Errorf("journal states %v", last)
	}
	b, _ := os.ReadFile(filepath.Join(out, "p-fedcba98", "journal.ndjson"))
	if !strings.Contains(string(b), `"reason":"fail-fast"`) {
		t.Errorf("journal not closed fail-fast:\n%s", b)
	}
}

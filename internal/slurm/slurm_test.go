package slurm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runloop"
)

// root is the repository root, seen from this package's folder (go test's
// working directory).
const root = "../.."

var submit = filepath.Join(root, "scripts", "slurm", "llem-slurm-submit")

// loud frames a message so that it is not lost in a long CI log.
func loud(lines ...string) string {
	bar := strings.Repeat("!", 78)
	return "\n" + bar + "\n!!! " + strings.Join(lines, "\n!!! ") + "\n" + bar
}

// requireSlurm skips (loudly) when no Slurm cluster answers here, and fails
// under CI=true, where scripts/test-setup.d/slurm.sh must have started one.
func requireSlurm(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the cluster test needs Slurm")
	}
	why := ""
	for _, c := range []string{"sbatch", "squeue", "scontrol", "scancel", "sinfo"} {
		if _, err := exec.LookPath(c); err != nil {
			why = c + " is not installed"
			break
		}
	}
	if why == "" {
		// The set-up waited for the node; a minute covers a slurmd that is
		// still registering on a busy machine.
		state := ""
		for i := 0; i < 120; i++ {
			out, err := exec.Command("sinfo", "-h", "-N", "-o", "%T").CombinedOutput()
			state = strings.TrimSpace(string(out))
			if err == nil && regexp.MustCompile(`(?m)^(idle|mixed|allocated)`).MatchString(state) {
				return
			}
			if err != nil {
				state = fmt.Sprintf("%s (%v)", state, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		why = "no Slurm node is up: sinfo says " + fmt.Sprintf("%q", state)
	}
	msg := loud("Slurm NOT reachable: "+why+".",
		"internal/slurm's cluster test (array job, scancel, resume) did not run.",
		"Fix: run scripts/test-setup.sh as root (its slurm.sh part starts a one-node cluster).")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "\nCI=true: a missing Slurm cluster is a failure")
	}
	t.Skip(msg)
}

var (
	toolsOnce sync.Once
	toolsDir  string
	toolsErr  error
)

// TestMain removes the tools that tools() built for the whole package.
func TestMain(m *testing.M) {
	code := m.Run()
	if toolsDir != "" {
		os.RemoveAll(toolsDir)
	}
	os.Exit(code)
}

// tools builds llem-expand, llem-exec, llem-aggregate and llem-report once
// for every test of the package, and returns their folder.
func tools(t *testing.T) string {
	t.Helper()
	toolsOnce.Do(func() {
		if toolsDir, toolsErr = os.MkdirTemp("", "llem-slurm-tools"); toolsErr != nil {
			return
		}
		args := []string{"build", "-o", toolsDir + "/"}
		for _, tl := range []string{"llem-expand", "llem-exec", "llem-aggregate", "llem-report"} {
			args = append(args, "./cmd/"+tl)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			toolsErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return toolsDir
}

// cluster tracks the jobs a test submitted, so that it cancels what is left
// of them whatever happens (the daemons belong to the set-up and stay up).
type cluster struct {
	t    *testing.T
	jobs []string
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t}
	t.Cleanup(func() {
		var live []string
		for _, j := range c.jobs {
			if j != "-" {
				live = append(live, j)
			}
		}
		if len(live) > 0 {
			exec.Command("scancel", live...).Run()
			// Wait for them to go, so that none writes into the temporary
			// folders while they are removed.
			for i := 0; i < 300; i++ {
				out, err := exec.Command("squeue", "-h", "-j", strings.Join(live, ","), "-o", "%i").CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) == "" {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	})
	return c
}

// submit runs llem-slurm-submit and returns the array and merge job ids it
// prints ("-" for one not submitted) and its stderr.
func (c *cluster) submit(args ...string) (array, merge, stderr string) {
	c.t.Helper()
	cmd := exec.Command(submit, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("llem-slurm-submit %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	f := strings.Fields(out.String())
	if len(f) != 2 {
		c.t.Fatalf("llem-slurm-submit printed %q, want ARRAY_ID MERGE_ID", out.String())
	}
	c.jobs = append(c.jobs, f...)
	c.t.Logf("submitted array %s, merge %s: %s", f[0], f[1], strings.TrimSpace(errb.String()))
	return f[0], f[1], errb.String()
}

// longWait bounds the waits for jobs to end: only a hang reaches it, however
// busy the machine.
const longWait = 15 * time.Minute

// waitEnded polls squeue until none of the jobs (array jobs with all their
// tasks) is pending, running or completing. There is no accounting daemon on
// the test cluster, so squeue and scontrol are what can be asked.
func (c *cluster) waitEnded(timeout time.Duration, ids ...string) {
	c.t.Helper()
	var live []string
	for _, id := range ids {
		if id != "-" {
			live = append(live, id)
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command("squeue", "-h", "-j", strings.Join(live, ","), "-o", "%i %T").CombinedOutput()
		s := strings.TrimSpace(string(out))
		if err == nil && s == "" || err != nil && strings.Contains(s, "Invalid job id") {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("jobs %v still queued after %s:\n%s", live, timeout, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// job is what `scontrol show job -o` says about each job (or array task) of id.
func (c *cluster) job(id string) []map[string]string {
	c.t.Helper()
	out, err := exec.Command("scontrol", "show", "job", "-o", id).CombinedOutput()
	if err != nil {
		c.t.Fatalf("scontrol show job %s: %v\n%s", id, err, out)
	}
	var jobs []map[string]string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		m := map[string]string{}
		for _, f := range strings.Fields(l) {
			if k, v, ok := strings.Cut(f, "="); ok {
				m[k] = v
			}
		}
		jobs = append(jobs, m)
	}
	return jobs
}

// mergeExit checks the merge job ended COMPLETED or FAILED with the exit code
// want (llem-merge.sbatch: 0 all ok, 3 runs left).
func (c *cluster) mergeExit(id string, want int, dir string) {
	c.t.Helper()
	j := c.job(id)[0]
	state := "COMPLETED"
	if want != 0 {
		state = "FAILED"
	}
	if j["JobState"] != state || j["ExitCode"] != fmt.Sprintf("%d:0", want) {
		c.t.Errorf("merge job %s: JobState=%s ExitCode=%s, want %s %d:0\n%s", id, j["JobState"], j["ExitCode"], state, want, logs(dir))
	}
}

func logs(dir string) string {
	var b strings.Builder
	fs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, f := range fs {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "==> %s <==\n%s", f, data)
	}
	return b.String()
}

// journal reads the journal of shard i (its only study directory).
func journal(t *testing.T, dir string, i int) []runloop.Entry {
	t.Helper()
	js, _ := filepath.Glob(filepath.Join(dir, "shards", fmt.Sprint(i), "*", "journal.ndjson"))
	if len(js) != 1 {
		return nil
	}
	f, err := os.Open(js[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var es []runloop.Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e runloop.Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			es = append(es, e)
		}
	}
	return es
}

// records reads the NDJSON file and returns its records of the given kind.
func records(t *testing.T, path, kind string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rs []map[string]any
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		if m["kind"] == kind {
			rs = append(rs, m)
		}
	}
	return rs
}

// checkAllOK asserts what resubmission promises: every run of the study is
// `ok` exactly once over all the shards' journals and in exactly one shard;
// the merged stream has each run once, ok; the aggregate has one energy
// record per run. It returns each shard's journal.
func checkAllOK(t *testing.T, dir string, tasks, nRuns int) map[int][]runloop.Entry {
	t.Helper()
	oks, shardOf := map[string]int{}, map[string]int{}
	js := map[int][]runloop.Entry{}
	for i := 1; i <= tasks; i++ {
		js[i] = journal(t, dir, i)
		for _, e := range js[i] {
			if e.Op != "state" {
				continue
			}
			if s, seen := shardOf[e.RunID]; seen && s != i {
				t.Errorf("run %s is in the journals of shards %d and %d", e.RunID, s, i)
			}
			shardOf[e.RunID] = i
			if e.Status == record.StatusOK {
				oks[e.RunID]++
			}
		}
	}
	if len(shardOf) != nRuns {
		t.Errorf("journals name %d runs, want %d", len(shardOf), nRuns)
	}
	for id := range shardOf {
		if oks[id] != 1 {
			t.Errorf("run %s is ok %d times in the journals, want once", id, oks[id])
		}
	}
	runs := records(t, filepath.Join(dir, "runs.ndjson"), "run")
	seen := map[string]int{}
	for _, r := range runs {
		id, _ := r["run_id"].(string)
		seen[id]++
		if r["status"] != record.StatusOK {
			t.Errorf("merged run %s: status %v", id, r["status"])
		}
	}
	if len(runs) != nRuns || len(seen) != nRuns {
		t.Errorf("merged stream: %d run records, %d distinct, want %d", len(runs), len(seen), nRuns)
	}
	for id, n := range seen {
		if n != 1 || shardOf[id] == 0 {
			t.Errorf("merged run %s: %d times, shard %d", id, n, shardOf[id])
		}
	}
	en := records(t, filepath.Join(dir, "energy.ndjson"), "energy")
	eseen := map[string]bool{}
	for _, e := range en {
		eseen[e["run_id"].(string)] = true
	}
	if len(en) != nRuns || len(eseen) != nRuns {
		t.Errorf("energy.ndjson: %d energy records for %d runs, want %d", len(en), len(eseen), nRuns)
	}
	if t.Failed() {
		t.Log(logs(dir))
	}
	return js
}

const studyA = `name: slurm-a
model: llem-tiny
backend: native
n: 8
max_output_tokens: 16
dataset: {input_len: 32, output_len: 16}
native: {threads: 1}
warmup: {n_warmup: 1, thermal_floor_seconds: 0}
sweep:
  native.batch_size: [1, 2, 4]
execution:
  n_cycles: 4
  cycle_order: interleaved
  experiment_gap_seconds: 0
  cycle_gap_seconds: 0
`

// 6 configs × 2 cycles; the test holds the runs it catches in progress.
const studyB = `name: slurm-b
model: llem-tiny
backend: native
n: 8
max_output_tokens: 16
dataset: {output_len: 16}
native: {threads: 1}
warmup: {n_warmup: 1, thermal_floor_seconds: 0}
sweep:
  native.batch_size: [1, 2]
  dataset.input_len: [16, 32, 48]
execution:
  n_cycles: 2
  cycle_order: interleaved
  experiment_gap_seconds: 0
  cycle_gap_seconds: 0
`

// TestArrayJob runs studies as array jobs on the cluster: a 12-run study as
// 4 tasks by seq, merged and aggregated; then a 12-run study as 4 tasks by
// config with one task cancelled mid-run by scancel and one requeued mid-run
// (it restarts and resumes by itself), resubmitted, and every run ok exactly
// once at the end.
func TestArrayJob(t *testing.T) {
	requireSlurm(t)
	start := time.Now()
	tmp := t.TempDir() // one node: a local folder is the shared filesystem
	bin := tools(t)
	t.Logf("built the tools in %s", time.Since(start).Round(time.Millisecond))
	c := newCluster(t)
	write := func(name, s string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// 1. 12 runs by seq over 4 tasks, 1 s idle baseline each; the bin folder
	// has llem-report, so the merge ends with its table in report.txt.
	t0 := time.Now()
	dirA := filepath.Join(tmp, "a")
	aFile := write("a.yaml", studyA)
	arr, merge, _ := c.submit("--bin", bin, "--tasks", "4", "--exec-arg=--baseline=1s", aFile, dirA)
	if code, _, errs := helper(t, "--bin", bin, aFile, dirA); code != 2 || !strings.Contains(errs, "still queued or running") {
		t.Errorf("resubmission while the jobs are queued: exit %d (%s), want 2 and a refusal", code, errs)
	}
	c.waitEnded(longWait, arr, merge)
	for _, j := range c.job(arr) {
		if j["JobState"] != "COMPLETED" {
			t.Errorf("array task %s: %s %s", j["JobId"], j["JobState"], j["ExitCode"])
		}
	}
	c.mergeExit(merge, 0, dirA)
	js := checkAllOK(t, dirA, 4, 12)
	for i := 1; i <= 4; i++ {
		var seqs []int
		for _, e := range js[i] {
			if e.Op == "state" && e.Status == record.StatusOK {
				seqs = append(seqs, *e.Seq)
			}
		}
		if len(seqs) != 3 || !sort.IntsAreSorted(seqs) || seqs[0]%4 != i-1 {
			t.Errorf("shard %d/4 by seq ran seqs %v, want 3 ascending with seq %% 4 = %d", i, seqs, i-1)
		}
	}
	if b := records(t, filepath.Join(dirA, "runs.ndjson"), "baseline"); len(b) != 4 {
		t.Errorf("merged stream: %d baseline records, want one per task (4)", len(b))
	}
	if s := records(t, filepath.Join(dirA, "energy.ndjson"), "summary"); len(s) != 3 {
		t.Errorf("energy.ndjson: %d summary records, want 3 (one per config)", len(s))
	}
	if b, err := os.ReadFile(filepath.Join(dirA, "report.txt")); err != nil || len(bytes.TrimSpace(b)) == 0 {
		t.Errorf("report.txt of the merge: %d bytes (%v), want llem-report's table\n%s", len(b), err, logs(dirA))
	}
	t.Logf("12 runs as 4 tasks, merged and aggregated, in %s", time.Since(t0).Round(time.Millisecond))
	// The DIR belongs to that stream and that layout: another study, or
	// another array size or shard key, is refused before anything is submitted.
	for _, args := range [][]string{
		{"--bin", bin, write("other.yaml", studyB), dirA},
		{"--bin", bin, "--tasks", "3", aFile, dirA},
		{"--bin", bin, "--shard-by", "config", aFile, dirA},
	} {
		if code, out, errs := helper(t, args...); code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %q (%s); want 2 and no job", args, code, out, errs)
		}
	}

	// 2. 12 runs (6 configs × 2 cycles) by config over 4 tasks (tasks 1 and
	// 2 have two configs, four runs), from a bin folder without llem-report.
	t0 = time.Now()
	bin2 := filepath.Join(tmp, "bin2")
	os.Mkdir(bin2, 0o755)
	for _, tl := range []string{"llem-expand", "llem-exec", "llem-aggregate"} {
		if err := os.Symlink(filepath.Join(bin, tl), filepath.Join(bin2, tl)); err != nil {
			t.Fatal(err)
		}
	}
	dirB := filepath.Join(tmp, "b")
	studyFile := write("b.yaml", studyB)
	// The second run of tasks 1 and 2 is held (testdata/hold-worker.sh): it
	// is in progress, for sure, when task 1 is cancelled (scancel) and task 2
	// requeued (scontrol requeue, as a requeueing preemption or a node
	// failure would), each after one run ok.
	gate := holds(t, tmp, "b", "hold-1-2", "hold-2-2")
	args := []string{"--bin", bin2, "--tasks", "4", "--shard-by", "config", "--exec-arg=--baseline=0",
		"--exec-arg=--worker=native=" + holdWorker(t), "--exec-arg=--grace=2s", studyFile, dirB}
	arr, merge, _ = c.submit(args...)
	caught := map[int]string{}
	for i := 1; i <= 2; i++ {
		waitFile(t, filepath.Join(gate, fmt.Sprintf("started-%d-2", i)), dirB)
		es := journal(t, dirB, i)
		ok := 0
		for _, e := range es {
			if e.Op == "state" && e.Status == record.StatusOK {
				ok++
			}
		}
		// llem-exec journals a run running before it starts its worker.
		if n := len(es); n == 0 || ok != 1 || es[n-1].Status != record.StatusRunning {
			t.Fatalf("task %d holds its second run, but its journal is %+v", i, es)
		}
		caught[i] = es[len(es)-1].RunID
		task := fmt.Sprintf("%s_%d", arr, i)
		cmd := []string{"scancel", task}
		if i == 2 {
			cmd = []string{"scontrol", "requeue", task}
		}
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
		t.Logf("%s while %s ran", strings.Join(cmd, " "), caught[i])
	}
	// A requeued job waits about two minutes (BeginTime) before it may start
	// again; once it is pending, StartTime=now lifts that for the test.
	task2 := arr + "_2"
	for deadline := time.Now().Add(longWait); ; {
		out, _ := exec.Command("squeue", "-h", "-j", task2, "-o", "%T %r").CombinedOutput()
		if st := strings.TrimSpace(string(out)); st == "PENDING BeginTime" {
			if out, err := exec.Command("scontrol", "update", "JobId="+task2, "StartTime=now").CombinedOutput(); err != nil {
				t.Fatalf("scontrol update JobId=%s StartTime=now: %v\n%s", task2, err, out)
			}
		} else if st == "RUNNING" || st == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requeued task %s did not start again within %s", task2, longWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.waitEnded(longWait, arr, merge)
	// interrupted checks that the journal's first session ended with one run
	// interrupted and a close line saying so, and returns that run's id.
	interrupted := func(i int, es []runloop.Entry) string {
		for k, e := range es {
			if e.Op == "close" {
				if e.Reason != "interrupted" || k == 0 || es[k-1].Status != record.StatusInterrupted {
					t.Errorf("task %d: the first session ends %+v then %+v, want a run interrupted and a close line with reason interrupted", i, es[max(k-1, 0)], e)
					return ""
				}
				if es[k-1].RunID != caught[i] {
					t.Errorf("task %d: %s was interrupted, but %s was the run held", i, es[k-1].RunID, caught[i])
				}
				return es[k-1].RunID
			}
		}
		t.Errorf("task %d: the journal has no close line", i)
		return ""
	}
	victims := []string{interrupted(1, journal(t, dirB, 1))}
	es2 := journal(t, dirB, 2)
	victims = append(victims, interrupted(2, es2))
	if l := es2[len(es2)-1]; l.Op != "close" || l.Reason != "done" {
		t.Errorf("task 2 was requeued but its journal ends %+v, want a close line with reason done", l)
	}
	if b, _ := os.ReadFile(filepath.Join(dirB, "logs", "task-2.log")); bytes.Count(b, []byte("llem-task: ")) != 2 || !bytes.Contains(b, []byte("restart 1")) {
		t.Errorf("task 2's log (--open-mode=append) does not show both attempts:\n%s", b)
	}
	for _, j := range c.job(arr) {
		want, restarts := "COMPLETED", "0"
		switch j["ArrayTaskId"] {
		case "1":
			want = "CANCELLED"
		case "2":
			restarts = "1"
		}
		if j["JobState"] != want || j["Restarts"] != restarts {
			t.Errorf("array task %s: %s, restarts %s; want %s, restarts %s", j["ArrayTaskId"], j["JobState"], j["Restarts"], want, restarts)
		}
	}
	// The first merge found task 1 unfinished: it merged what there was and
	// exited 3.
	c.mergeExit(merge, 3, dirB)

	// Resubmitted with the same command: only task 1 is submitted, resumes
	// from its journal, and the merge is complete.
	arr, merge, errs := c.submit(args...)
	if !strings.Contains(errs, "submitting tasks 1, ") {
		t.Errorf("resubmission: %q, want only task 1 submitted", errs)
	}
	c.waitEnded(longWait, arr, merge)
	c.mergeExit(merge, 0, dirB)
	js = checkAllOK(t, dirB, 4, 12)
	// By config: each shard holds whole configs, and runs their cycles in order.
	for i := 1; i <= 4; i++ {
		cycles := map[string][]string{}
		for _, e := range js[i] {
			if e.Op == "state" && e.Status == record.StatusOK {
				cycles[e.ID] = append(cycles[e.ID], e.RunID)
			}
		}
		want := 1
		if i <= 2 {
			want = 2 // 6 configs over 4 tasks: 2, 2, 1, 1
		}
		if len(cycles) != want {
			t.Errorf("shard %d/4 by config has %d configs, want %d", i, len(cycles), want)
		}
		for id, rs := range cycles {
			if len(rs) != 2 || rs[0] != id+"-c1" || rs[1] != id+"-c2" {
				t.Errorf("shard %d/4: config %s ran %v, want cycles 1 then 2", i, id, rs)
			}
		}
	}
	attempts := map[string]int{}
	for _, r := range records(t, filepath.Join(dirB, "runs.ndjson"), "run") {
		attempts[r["run_id"].(string)] = int(r["attempt"].(float64))
	}
	for _, v := range victims {
		if attempts[v] != 2 {
			t.Errorf("the interrupted run %s finished on attempt %d, want 2", v, attempts[v])
		}
	}
	if _, err := os.Stat(filepath.Join(dirB, "report.txt")); err == nil {
		t.Error("report.txt written although the bin folder has no llem-report")
	}
	if b, _ := os.ReadFile(filepath.Join(dirB, "logs", "merge-"+merge+".log")); !bytes.Contains(b, []byte("no llem-report")) {
		t.Errorf("merge log does not say llem-report is missing:\n%s", b)
	}
	t.Logf("cancel, resubmit and resume in %s", time.Since(t0).Round(time.Millisecond))

	// 3. The early warning before the time limit (--signal=B:TERM@S from
	// --warn-time) goes to the batch shell only; the task script exec's
	// llem-exec, so llem-exec gets it and journals the run in progress (held:
	// it would never end). Slurm sends the warning from a check every 30 s,
	// up to a minute early: with a 3-minute limit and a 1-minute warning it
	// comes 1 to 2 minutes after the start, when the task runs. Had it come
	// before the batch shell existed, Slurm would have dropped it, and the
	// time limit's own SIGTERM would stop llem-exec (TIMEOUT), which journals
	// the run just the same; a warning before the exec stops the task
	// script, and one before llem-exec's handler kills it, with nothing
	// started (TestTaskEarlySignal). Whichever, no run is lost: it is
	// journalled interrupted, or it never started, and it is still to do.
	t0 = time.Now()
	dirC := filepath.Join(tmp, "c")
	holds(t, tmp, "c", "hold-1-1")
	arr, _, _ = c.submit("--bin", bin2, "--tasks", "1", "--no-merge", "--warn-time", "60", "--exec-arg=--baseline=0",
		"--exec-arg=--worker=native="+holdWorker(t), "--exec-arg=--grace=2s", write("c.yaml", studyC), dirC, "--", "--time=3")
	c.waitEnded(longWait, arr)
	checkWarned(t, c.job(arr)[0], bin, dirC)
	t.Logf("time-limit warning in %s; whole test %s", time.Since(t0).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// checkWarned checks what the time-limit warning left of the one-task,
// one-run study in dir: its run is either journalled interrupted (FAILED
// with llem-exec's 130 after the warning, or TIMEOUT where the warning was
// dropped and the limit stopped it) or never started (130 from the task
// script, or killed by the signal before llem-exec had its handler); in
// both cases the run is still pending.
func checkWarned(t *testing.T, j map[string]string, bin, dir string) {
	t.Helper()
	es := journal(t, dir, 1)
	var runs []runloop.Entry
	for _, e := range es {
		if e.Op == "state" {
			runs = append(runs, e)
		}
	}
	n := len(es)
	state := j["JobState"] + " " + j["ExitCode"]
	switch {
	case len(runs) > 0:
		if state != "FAILED 130:0" && j["JobState"] != "TIMEOUT" || es[n-1].Op != "close" || es[n-1].Reason != "interrupted" || es[n-2].Status != record.StatusInterrupted {
			t.Errorf("a run started before the time-limit warning: %s, journal %+v; want FAILED 130:0 (or TIMEOUT), the run interrupted, then close interrupted\n%s", state, es, logs(dir))
		} else if j["JobState"] == "TIMEOUT" {
			t.Logf("the warning was dropped (it came before the batch shell existed); the time limit stopped the run, journalled interrupted")
		}
	case state == "FAILED 130:0" || state == "FAILED 0:15":
		t.Logf("the warning came before a run started (%s, journal %+v)", state, es)
	default:
		t.Errorf("no run started, but the task ended %s, want FAILED 130:0 or 0:15 (signal 15)\n%s", state, logs(dir))
	}
	out, err := exec.Command(filepath.Join(bin, "llem-exec"), "--print", "pending", "--shard", "1/1",
		"--out", filepath.Join(dir, "shards", "1"), filepath.Join(dir, "study.ndjson")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("llem-exec --print pending after the warning: %q (%v), want 1: the run is still to do", out, err)
	}
}

// holdWorker is the absolute path of testdata/hold-worker.sh.
func holdWorker(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "hold-worker.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// holds makes a gate folder for testdata/hold-worker.sh with the given hold
// files, and exports it (LLEM_TEST_GATE) to the jobs submitted next.
func holds(t *testing.T, tmp, name string, files ...string) string {
	t.Helper()
	g := filepath.Join(tmp, "gate-"+name)
	if err := os.Mkdir(g, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(g, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("LLEM_TEST_GATE", g)
	return g
}

// waitFile waits for the file a held worker writes when it starts; only a
// hang reaches the bound.
func waitFile(t *testing.T, path, dir string) {
	t.Helper()
	for deadline := time.Now().Add(longWait); ; {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s\n%s", path, longWait, logs(dir))
		}
		time.Sleep(50 * time.Millisecond) // polling for the file, not a timing
	}
}

// A study of one short run, held by the test's worker.
const studyC = `name: slurm-c
model: llem-tiny
backend: native
n: 4
max_output_tokens: 8
dataset: {input_len: 16, output_len: 8}
native: {threads: 1}
warmup: {n_warmup: 1, thermal_floor_seconds: 0}
execution: {n_cycles: 1}
`

// TestTaskEarlySignal sends the task script its SIGTERM (the time-limit
// warning, a scancel) before it has exec'd llem-exec, without a cluster:
// array.conf is a FIFO, so the script is surely past its trap and not yet
// at the exec while it reads it. The script must stop with 130 and say
// that nothing ran, and llem-exec must not start.
func TestTaskEarlySignal(t *testing.T) {
	dir, bin := t.TempDir(), t.TempDir()
	started := filepath.Join(dir, "llem-exec-started")
	if err := os.WriteFile(filepath.Join(bin, "llem-exec"), []byte("#!/bin/sh\n: >'"+started+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "array.conf")
	if err := syscall.Mkfifo(conf, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "slurm", "llem-task.sbatch"))
	cmd.Env = append(os.Environ(), "LLEM_DIR="+dir, "LLEM_BIN="+bin, "SLURM_ARRAY_TASK_ID=1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- cmd.Wait() }()
	opened := make(chan *os.File, 1)
	go func() {
		// Returns once the script has opened the FIFO to read it.
		f, err := os.OpenFile(conf, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
		}
		opened <- f
	}()
	var f *os.File
	select {
	case f = <-opened:
	case err := <-ended:
		// Unblock the opener: a reader of our own.
		if r, e := os.OpenFile(conf, os.O_RDONLY|syscall.O_NONBLOCK, 0); e == nil {
			defer r.Close()
		}
		t.Fatalf("the task script ended (%v) before it read array.conf:\n%s", err, errb.String())
	}
	if f == nil {
		t.FailNow()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	f.WriteString("tasks=1\nshard_by=seq\n") // the script may be gone: errors do not matter
	f.Close()
	err := <-ended
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 || !strings.Contains(errb.String(), "SIGTERM before llem-exec started: nothing ran") {
		t.Errorf("task script signalled before the exec: %v, stderr %q; want exit 130 and a line saying nothing ran", err, errb.String())
	}
	if _, err := os.Stat(started); err == nil {
		t.Error("llem-exec started after the task script was signalled")
	}
}

// helper runs llem-slurm-submit and returns its exit code, stdout and stderr.
func helper(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(submit, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

const gpuStudy = `name: gpu-study
model: facebook/opt-125m
backend: vllm
vllm:
  engine:
    tensor_parallel_size: 2
    pipeline_parallel_size: 2
sweep:
  precision: [fp16, bf16]
execution:
  n_cycles: 3
`

// TestSubmitDryRun checks, without a cluster, how the helper sizes the array
// and asks for GPUs (from the study, through llem-exec --print), and its
// usage errors. --dry-run prints the sbatch commands and writes nothing.
func TestSubmitDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the tools")
	}
	bin := tools(t)
	tmp := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gpu, a := write("gpu.yaml", gpuStudy), write("a.yaml", studyA)
	dir := filepath.Join(tmp, "d")
	for _, c := range []struct {
		args []string
		want []string // in the printed sbatch commands
		not  []string
	}{
		// 6 runs of vllm tp 2 × pp 2: 4 GPUs a task; ceil(6 / 4) = 2 tasks.
		{[]string{gpu, dir}, []string{"--gres=gpu:4 ", "--signal=B:TERM@120 ", "--array=1-2 ", "--dependency=afterany:DRYRUN"}, nil},
		{[]string{"--gpus", "0", "--warn-time", "0", "--per-task", "1", gpu, dir}, []string{"--array=1-6 "}, []string{"--gres", "--signal"}},
		// By config: at most one task per config (2).
		{[]string{"--shard-by", "config", "--per-task", "1", gpu, dir}, []string{"--array=1-2 "}, nil},
		{[]string{"--tasks", "50", "--max-running", "2", a, dir}, []string{"--array=1-12%2 "}, []string{"--gres"}},
		{[]string{"--no-merge", a, dir, "--", "--partition=gpu", "--time=1:00:00"}, []string{"--array=1-3 ", "--partition=gpu --time=1:00:00 "}, []string{"llem-merge"}},
	} {
		code, out, errs := helper(t, append([]string{"--dry-run", "--bin", bin}, c.args...)...)
		if code != 0 {
			t.Errorf("%v: exit %d\n%s", c.args, code, errs)
			continue
		}
		if strings.TrimSpace(out) != "DRYRUN DRYRUN" && strings.TrimSpace(out) != "DRYRUN -" {
			t.Errorf("%v: stdout %q", c.args, out)
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%v: no %q in\n%s", c.args, w, errs)
			}
		}
		for _, w := range c.not {
			if strings.Contains(errs, w) {
				t.Errorf("%v: %q in\n%s", c.args, w, errs)
			}
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("--dry-run created %s", dir)
	}
	for _, args := range [][]string{
		{},
		{a},
		{"--bogus", a, dir},
		{"--tasks", "0", a, dir},
		{"--warn-time", "-1", a, dir},
		{"--tasks"},
		{"--shard-by", "hash", a, dir},
		{"--exec-arg=--out=x", a, dir},
		{"--exec-arg", "--shard", a, dir},
		{"--bin", filepath.Join(tmp, "nowhere"), a, dir},
		{"--bin", bin, filepath.Join(tmp, "missing.yaml"), dir},
	} {
		if code, _, errs := helper(t, append([]string{"--dry-run"}, args...)...); code != 2 || errs == "" {
			t.Errorf("%v: exit %d (%q), want 2 with a message", args, code, errs)
		}
	}
}

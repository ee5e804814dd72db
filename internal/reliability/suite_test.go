package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runloop"
)

var (
	execBin, expandBin, aggBin, sampleBin, workerBin string

	long = os.Getenv("LLEM_RELIABILITY") == "long"
)

const (
	studyHash = "0123456789abcdef"
	studySub  = "rel-01234567" // <study>-<hash8> under --out
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// The suite builds the tools and kills, floods and fills them for a
		// minute or more: not part of the quick loop (make check).
		fmt.Println("-short: the reliability suite is skipped (run it without -short)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "llem-reliability")
	if err != nil {
		panic(err)
	}
	build := func(out string, pkgs ...string) {
		args := append([]string{"build", "-o", out}, pkgs...)
		if b, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %s: %v\n%s", strings.Join(args, " "), err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	build(dir+"/", "../../cmd/llem-exec", "../../cmd/llem-expand", "../../cmd/llem-aggregate", "../../cmd/llem-sample")
	build(filepath.Join(dir, "faultworker"), "./testdata/faultworker")
	execBin, expandBin = filepath.Join(dir, "llem-exec"), filepath.Join(dir, "llem-expand")
	aggBin, sampleBin = filepath.Join(dir, "llem-aggregate"), filepath.Join(dir, "llem-sample")
	workerBin = filepath.Join(dir, "faultworker")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func mode() string {
	if long {
		return "long"
	}
	return "short"
}

// figure records what a test tried and survived: in the test log, and in
// $LLEM_RELIABILITY_OUT/suite.ndjson for scripts/reliability/run.sh.
func figure(t *testing.T, kv map[string]any) {
	t.Helper()
	kv["test"], kv["mode"] = t.Name(), mode()
	b, _ := json.Marshal(kv)
	t.Logf("figures: %s", b)
	if d := os.Getenv("LLEM_RELIABILITY_OUT"); d != "" {
		f, err := os.OpenFile(filepath.Join(d, "suite.ndjson"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(append(b, '\n'))
		f.Close()
	}
}

// exp is one experiment record of the suite's study; cfg is extra config
// fields (the fault worker's behaviour).
func exp(seq int, cfg string) string {
	if cfg != "" {
		cfg = "," + cfg
	}
	e := record.Experiment{Kind: "experiment", V: 1, Study: "rel", StudyHash: studyHash,
		ID: fmt.Sprintf("%016x", seq), Seq: seq, Cycle: 1, NCycles: 1, RunID: fmt.Sprintf("r%04d-c1", seq),
		Backend: "native", Model: "m", Runner: record.Runner{Type: "local"},
		Config: json.RawMessage(`{"model":"m","backend":"native"` + cfg + `}`)}
	b, _ := json.Marshal(e)
	return string(b) + "\n"
}

func execArgs(out string, extra ...string) []string {
	return append([]string{"--out", out, "--worker", "native=" + workerBin, "--grace", "200ms",
		"--timeout", "10m", "--sampler", "none", "--baseline", "0"}, extra...)
}

type result struct {
	stdout, stderr string
	code           int
	dur            time.Duration
	cpu            time.Duration // user + system: unlike dur, not longer on a busy machine
	maxRSS         int64         // KiB
}

// run runs a binary to its end.
func run(t *testing.T, stdin string, env []string, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), dur: time.Since(t0)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss
	}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r
}

// runsOf parses the run records of a stream by run id, failing on any
// line that is not a record.
func runsOf(t *testing.T, stdout string) (map[string][]record.Run, int) {
	t.Helper()
	runs := map[string][]record.Run{}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, record.MaxLineBytes)
	for sc.Scan() {
		var r record.Run
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("stdout line is not a record: %v: %.200q", err, sc.Text())
		}
		if r.Kind == record.KindRun {
			runs[r.RunID] = append(runs[r.RunID], r)
			n++
		}
	}
	return runs, n
}

// journal reads a study's journal.ndjson: last state and ok count per run,
// and how many times each was started.
func journal(t *testing.T, dir string) (last map[string]string, oks, starts map[string]int) {
	t.Helper()
	last, oks, starts = map[string]string{}, map[string]int{}, map[string]int{}
	b, _ := os.ReadFile(filepath.Join(dir, "journal.ndjson"))
	for _, l := range strings.Split(string(b), "\n") {
		var e runloop.Entry
		if json.Unmarshal([]byte(l), &e) != nil || e.Op != "state" {
			continue
		}
		last[e.RunID] = e.Status
		switch e.Status {
		case record.StatusOK:
			oks[e.RunID]++
		case record.StatusRunning:
			starts[e.RunID]++
		}
	}
	return last, oks, starts
}

// checkStudy asserts the promises a study directory keeps at any moment,
// even right after a SIGKILL: no run is ok twice in the journal; every run
// the journal calls finished has a whole run.json saying the same; a run
// directory without a finished state is one the journal says is running
// (resume reruns it); no temporary file is left. It returns the number of
// runs the journal calls ok and of run directories caught half-done.
func checkStudy(t *testing.T, dir string) (ok, half int) {
	t.Helper()
	last, oks, _ := journal(t, dir)
	for id, n := range oks {
		if n > 1 {
			t.Errorf("%s is ok %d times in the journal", id, n)
		}
	}
	for id, st := range last {
		if st == record.StatusOK {
			ok++
			b, err := os.ReadFile(filepath.Join(dir, "runs", id, "run.json"))
			var r record.Run
			if err != nil || json.Unmarshal(b, &r) != nil || r.Status != record.StatusOK || r.RunID != id {
				t.Errorf("%s is ok in the journal but its run.json is not a whole ok record (%v)", id, err)
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "runs"))
	for _, d := range ents {
		switch st := last[d.Name()]; st {
		case record.StatusOK:
		case record.StatusRunning:
			half++
		case record.StatusFailed, record.StatusTimeout, record.StatusInterrupted:
			b, err := os.ReadFile(filepath.Join(dir, "runs", d.Name(), "run.json"))
			var r record.Run
			if err != nil || json.Unmarshal(b, &r) != nil || r.Status != st {
				t.Errorf("%s is %s in the journal but its run.json says otherwise (%v)", d.Name(), st, err)
			}
		default:
			t.Errorf("run directory %s has journal state %q", d.Name(), st)
		}
	}
	// A kill mid-write may leave a temporary file in a run that is still
	// running (resume removes that directory); a finished run has none.
	tmp, _ := filepath.Glob(filepath.Join(dir, "runs", "*", "*.tmp-*"))
	for _, p := range tmp {
		if id := filepath.Base(filepath.Dir(p)); last[id] != record.StatusRunning {
			t.Errorf("temporary file %s left in a %s run", p, last[id])
		}
	}
	return ok, half
}

// checkComplete: the final stream has every run once, ok, and the journal
// has each ok once.
func checkComplete(t *testing.T, stdout, dir string, n int) {
	t.Helper()
	runs, _ := runsOf(t, stdout)
	_, oks, _ := journal(t, dir)
	lost, dup := 0, 0
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("r%04d-c1", i)
		switch {
		case len(runs[id]) == 0 || oks[id] == 0:
			lost++
			t.Errorf("%s: %d times in the stream, ok %d times in the journal", id, len(runs[id]), oks[id])
		case len(runs[id]) > 1 || oks[id] > 1:
			dup++
			t.Errorf("%s: %d times in the stream, ok %d times in the journal", id, len(runs[id]), oks[id])
		case runs[id][0].Status != record.StatusOK:
			t.Errorf("%s: %s", id, runs[id][0].Status)
		}
	}
	if len(runs) != n {
		t.Errorf("%d distinct runs in the stream, want %d", len(runs), n)
	}
}

// oneLine asserts a tool's stderr is one line naming the tool, with the
// wanted words, and returns it.
func oneLine(t *testing.T, r result, tool string, want ...string) string {
	t.Helper()
	s := strings.TrimRight(r.stderr, "\n")
	if strings.Count(s, "\n") != 0 || !strings.HasPrefix(s, tool+": ") || len(s) > 600 {
		t.Errorf("stderr is not one short line starting %q: %.600q", tool+": ", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("stderr %.600q lacks %q", s, w)
		}
	}
	return s
}

// mountTmpfs mounts a tmpfs of size at a fresh directory. Without the
// right to mount it skips, loudly, except under CI=true, where it fails
// (CI runs as root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs (%v: %s); run as root to test a full or read-only disk", err, bytes.TrimSpace(b))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if b, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v %s", dir, opts, err, b)
	}
}

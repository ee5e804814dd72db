package runloop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llem/llem/internal/record"
)

func buildExec(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "llem-exec")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/llem-exec").CombinedOutput(); err != nil {
		t.Fatalf("build llem-exec: %v\n%s", err, out)
	}
	return bin
}

// killAndResume starts bin on stream `kills` times, SIGKILLs it at a seeded
// random moment each time and calls check(k) after each kill; then runs it
// to the end and returns its stdout (check(-1) is the caller's). The moments
// are random on purpose (they are the faults) but taken from what llem-exec
// does, in its journal, rather than from the clock: a quarter of the kills
// come within 15 ms of the start, the others within span after the 1st to
// 3rd run it starts, however slowly a busy machine runs it. Until enough()
// says the kills exercised what the test needs, it kills on, up to four
// times as often.
func killAndResume(t *testing.T, bin string, args []string, stream, journal string, kills int, span time.Duration, rng *rand.Rand, check func(kill int), enough func() bool) string {
	t.Helper()
	running := func() int { b, _ := os.ReadFile(journal); return bytes.Count(b, []byte(`"status":"running"`)) }
	for k := 0; k < kills || !enough() && k < 4*kills; k++ {
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stream)
		cmd.Stdout, cmd.Stderr = new(bytes.Buffer), new(bytes.Buffer)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if rng.Intn(4) == 0 {
			time.Sleep(time.Duration(rng.Intn(15000)) * time.Microsecond) // a moment of the start-up
		} else {
			n, extra := 1+rng.Intn(3), time.Duration(rng.Int63n(int64(span)))
		poll:
			for base := running(); running() < base+n; {
				select {
				case <-exited:
					break poll
				default:
				}
				time.Sleep(time.Millisecond) // polling the journal
			}
			time.Sleep(extra) // a moment of the run
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		check(k)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stream)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("final run: %v\n%s", err, stderr.String())
	}
	return stdout.String()
}

// journalStates returns the last status per run id and the ok count per run id.
func journalStates(t *testing.T, path string) (map[string]string, map[string]int) {
	t.Helper()
	last, oks := map[string]string{}, map[string]int{}
	b, err := os.ReadFile(path)
	if err != nil {
		return last, oks
	}
	for _, l := range strings.Split(string(b), "\n") {
		var e Entry
		if json.Unmarshal([]byte(l), &e) != nil || e.Op != "state" {
			continue
		}
		last[e.RunID] = e.Status
		if e.Status == record.StatusOK {
			oks[e.RunID]++
		}
	}
	return last, oks
}

// TestSIGKILLResume kills llem-exec with SIGKILL at 32 moments chosen by a
// seeded generator over a 48-run study, resuming each time, then lets it finish.
func TestSIGKILLResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildExec(t)
	const nRuns = 48
	var stream string
	for i := 0; i < nRuns; i++ {
		stream += expLine(i, "slow")
	}
	out := t.TempDir()
	study := filepath.Join(out, "t-01234567")
	rng := rand.New(rand.NewSource(20261128))
	args := []string{"--out", out, "--worker", "native=" + testWorker, "--grace", "200ms", "--sampler", "none"}
	midRun := 0 // kill points that caught a run half-done
	check := func(kill int) {
		last, oks := journalStates(t, filepath.Join(study, "journal.ndjson"))
		for id, n := range oks {
			if n > 1 {
				t.Errorf("kill %d: run %s ok %d times in the journal", kill, id, n)
			}
		}
		dirs, _ := os.ReadDir(filepath.Join(study, "runs"))
		for _, d := range dirs {
			st := last[d.Name()]
			switch st {
			case record.StatusOK:
				b, err := os.ReadFile(filepath.Join(study, "runs", d.Name(), "run.json"))
				var r record.Run
				if err != nil || json.Unmarshal(b, &r) != nil || r.Status != "ok" {
					t.Errorf("kill %d: %s is ok in the journal but run.json is %v", kill, d.Name(), err)
				}
			case record.StatusRunning:
				// Half-written, and the journal says so: resume reruns it.
				midRun++
			default:
				t.Errorf("kill %d: run dir %s exists with journal state %q", kill, d.Name(), st)
			}
		}
	}
	stdout := killAndResume(t, bin, args, stream, filepath.Join(study, "journal.ndjson"), 32, 20*time.Millisecond, rng, check, func() bool { return midRun >= 16 })
	if midRun < 16 {
		t.Errorf("only %d kills caught a run in progress, want 16; the kill points do not exercise resume", midRun)
	}
	t.Logf("%d kills caught a run in progress", midRun)
	check(-1)
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var r record.Run
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Kind != "run" {
			t.Fatalf("bad line %q", sc.Text())
		}
		if r.Status != "ok" {
			t.Errorf("%s: %s", r.RunID, r.Status)
		}
		seen[r.RunID]++
	}
	_, oks := journalStates(t, filepath.Join(study, "journal.ndjson"))
	for i := 0; i < nRuns; i++ {
		id := fmt.Sprintf("r%03d-c1", i)
		if seen[id] != 1 || oks[id] != 1 {
			t.Errorf("%s: %d times in the stream, %d ok in the journal; want 1 and 1", id, seen[id], oks[id])
		}
	}
}

// TestSIGINTBinary interrupts a built llem-exec while a worker hangs.
func TestSIGINTBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildExec(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "--out", out, "--worker", "native="+testWorker, "--grace", "500ms", "--sampler", "none")
	cmd.Stdin = strings.NewReader(expLine(0, "succeed") + expLine(1, "ignoreterm") + expLine(2, "succeed"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(out, "t-01234567", "runs", "r001-c1", "pids")
	waitUntil(t, "the worker's pids file", func() bool { b, _ := os.ReadFile(pidFile); return len(b) > 0 })
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130\n%s", err, stderr.String())
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if alive(pid) {
		t.Errorf("worker %d still running", pid)
	}
	last, _ := journalStates(t, filepath.Join(out, "t-01234567", "journal.ndjson"))
	if last["r001-c1"] != "interrupted" || last["r002-c1"] != "pending" {
		t.Errorf("journal states %v", last)
	}
	j, _ := os.ReadFile(filepath.Join(out, "t-01234567", "journal.ndjson"))
	if !bytes.Contains(j, []byte(`"op":"close","pid"`)) || !bytes.Contains(j, []byte(`"reason":"interrupted"`)) {
		t.Errorf("journal not closed as interrupted:\n%s", j)
	}
	if !strings.Contains(stdout.String(), `"status":"interrupted"`) {
		t.Errorf("no interrupted run record:\n%s", stdout.String())
	}
}

// TestSamplerCmd records with llem-sample through --sampler-cmd's contract.
func TestSamplerCmd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds llem-sample")
	}
	bin := filepath.Join(t.TempDir(), "llem-sample")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/llem-sample").CombinedOutput(); err != nil {
		t.Fatalf("build llem-sample: %v\n%s", err, out)
	}
	// CmdSampler stops a sampler by closing its stdin and sending SIGINT at
	// once; on a busy machine the SIGINT can come before llem-sample has its
	// handler (Go's default then kills it, and the 300 ms baseline has no
	// samples). Started with SIGINT ignored, llem-sample ignores it until its
	// handler is in place, and stops on stdin's end either way.
	for _, cmd := range []string{"trap '' INT; exec " + bin + " --sources estimate --interval 10ms -o {}", "trap '' INT; exec " + bin + " --sources estimate --interval 10ms"} {
		o := opts(t.TempDir())
		// A long grace: it only bounds how long the sampler may take to
		// write its last batch and trailer once stopped.
		o.Sampler = &CmdSampler{Cmd: cmd, Grace: time.Minute}
		o.Baseline = 300 * time.Millisecond
		runs, raw, code := runStream(t, o, expLine(0, "sampled"))
		if code != 0 || len(runs) != 1 {
			t.Fatalf("%s: exit %d", cmd, code)
		}
		if len(runs[0].Samplers) != 1 || runs[0].Samplers[0] != "estimate" || runs[0].BaselineID == "" || !bytes.Contains(raw, []byte(`"power_w":`)) {
			t.Errorf("%s: samplers %v baseline %q\n%s", cmd, runs[0].Samplers, runs[0].BaselineID, raw)
		}
	}
}

// TestSecondSIGINTAndGap: an interrupt during a gap ends with 130 without
// waiting for the gap (an hour: the test would hang) and without starting
// the next run; a second SIGINT kills a worker that ignores SIGTERM without
// its grace (an hour too).
func TestSecondSIGINTAndGap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildExec(t)
	out := t.TempDir()
	gap := strings.Replace(expLine(1, "succeed"), `"gap_before_s":0`, `"gap_before_s":3600`, 1)
	cmd := exec.Command(bin, "--out", out, "--worker", "native="+testWorker, "--sampler", "none")
	cmd.Stdin = strings.NewReader(expLine(0, "succeed") + gap)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(out, "t-01234567", "journal.ndjson")
	// Run 0 ok: llem-exec is in the gap before run 1 (or about to be).
	waitUntil(t, "run 0 ok in the journal", func() bool { last, _ := journalStates(t, journal); return last["r000-c1"] == "ok" })
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("gap interrupt: %v\n%s", err, stderr.String())
	}
	if last, _ := journalStates(t, journal); last["r001-c1"] != "pending" {
		t.Errorf("run 1 is %q after an interrupt in the gap before it, want pending", last["r001-c1"])
	}

	out = t.TempDir()
	cmd = exec.Command(bin, "--out", out, "--worker", "native="+testWorker, "--grace", "1h", "--sampler", "none")
	cmd.Stdin = strings.NewReader(expLine(0, "ignoreterm"))
	errp, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(out, "t-01234567", "runs", "r000-c1", "pids")
	waitUntil(t, "the worker's pids file", func() bool { b, _ := os.ReadFile(pidFile); return len(b) > 0 })
	cmd.Process.Signal(syscall.SIGINT)
	// Two signals sent at once may arrive as one: the second goes once
	// llem-exec says it has the first.
	sc := bufio.NewScanner(errp)
	for sc.Scan() && !strings.Contains(sc.Text(), "llem-exec: interrupt: stopping the current run") {
	}
	cmd.Process.Signal(syscall.SIGINT)
	io.Copy(io.Discard, errp) // to EOF: llem-exec has exited
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Errorf("second SIGINT: %v", err)
	}
	b, _ := os.ReadFile(pidFile)
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid == 0 || alive(pid) {
		t.Errorf("worker pid %q alive or unknown", b)
	}
}

// TestBadInput: a malformed experiment record is exit 2 naming file:line:col.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildExec(t)
	cmd := exec.Command(bin, "--out", t.TempDir(), "--sampler", "none")
	cmd.Stdin = strings.NewReader(`{"kind":"other","x":1}` + "\n" + `{"kind":"experiment","v":1,"seq":"x"}` + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit %v", err)
	}
	if !strings.HasPrefix(stderr.String(), "llem-exec: <stdin>:2:") || !strings.Contains(stderr.String(), "seq") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q", stderr.String())
	}
	if stdout.String() != `{"kind":"other","x":1}`+"\n" {
		t.Errorf("passthrough %q", stdout.String())
	}
}

// waitUntil polls cond until it holds: waiting on an event (a file, a journal
// line), not on a time. Only a hang reaches the bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 minutes for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling, not a timing
	}
}

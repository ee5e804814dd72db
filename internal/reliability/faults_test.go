package reliability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
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
	"github.com/llem/llem/internal/runloop"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/internal/runner/local"
)

// TestKillResume SIGKILLs llem-exec at random moments (a quarter of them in
// its first 15 ms: start-up, journal replay, the pending entries), checks
// the study directory after every kill, resumes, and at the end wants every
// run exactly once. The short form makes 24 kills, the long form 200; the
// seed is fixed (LLEM_RELIABILITY_SEED overrides it) so a failure replays.
// The kill moments are random on purpose (they are the faults), and taken
// from what llem-exec does rather than from the clock (killAt), so that a
// busy machine moves them with the work; should a third of them still not
// have caught a run half-done, it kills on, up to four times as often.
func TestKillResume(t *testing.T) {
	trials := 24
	if long {
		trials = 200
	}
	seed := int64(20261202)
	if s := os.Getenv("LLEM_RELIABILITY_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	nRuns := 4*trials + 16
	var stream strings.Builder
	for i := 0; i < nRuns; i++ {
		stream.WriteString(exp(i, `"behave":"succeed","sleep_s":0.03`))
	}
	out := t.TempDir()
	dir := filepath.Join(out, studySub)
	rng := rand.New(rand.NewSource(seed))
	half, tails, early := 0, 0, 0
	k := 0
	for ; k < trials || half < trials/3 && k < 4*trials; k++ {
		cmd := exec.Command(execBin, execArgs(out)...)
		cmd.Stdin = strings.NewReader(stream.String())
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = new(bytes.Buffer), &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		d, isEarly := killAt(rng, filepath.Join(dir, "journal.ndjson"), exited)
		if isEarly {
			early++
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		tails += strings.Count(errb.String(), "truncated record ignored")
		_, h := checkStudy(t, dir)
		half += h
		if t.Failed() {
			t.Fatalf("after kill %d (%s, seed %d)", k, d, seed)
		}
	}
	r := run(t, stream.String(), nil, execBin, execArgs(out)...)
	if r.code != 0 {
		t.Fatalf("final run: exit %d\n%s", r.code, r.stderr)
	}
	tails += strings.Count(r.stderr, "truncated record ignored")
	checkStudy(t, dir)
	checkComplete(t, r.stdout, dir, nRuns)
	if half < trials/3 {
		t.Errorf("only %d of %d kills caught a run half-done: the kill points do not exercise resume", half, k)
	}
	figure(t, map[string]any{"trials": k, "runs": nRuns, "seed": seed, "kills_mid_run": half,
		"kills_in_first_15ms": early, "journal_tails_cut": tails, "lost": 0, "duplicated": 0, "ok": !t.Failed()})
}

// hang is the config of a worker that never ends.
const hang = `"behave":"hang"`

// TestWorkerFaults runs one study through llem-exec whose workers crash,
// fail, hang, step their clock back, flood warnings, plant symlinks and a
// FIFO in place of llem-exec's files, and fill worker.log; each ends in the
// status and error it should, no run record grows past 256 KiB, nothing is
// written through the planted links, and llem-aggregate reads the lot
// without hanging.
func TestWorkerFaults(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside.txt")
	// Every case but the hang runs with the suite's generous timeout; the
	// hang, whose worker never ends, runs alone with --timeout 1s: any
	// timeout gives it the same outcome, and none cuts a slow good run.
	cases := []struct {
		cfg, status, errType, flag string
	}{
		{`"behave":"succeed"`, "ok", "", ""},
		{`"behave":"crash"`, "failed", "crash", ""},
		{`"behave":"error"`, "failed", "worker_error", ""},
		{hang, "timeout", "timeout", ""},
		{`"behave":"backwards","sleep_s":0.05`, "ok", "", "events_out_of_order"},
		{`"behave":"warnflood"`, "ok", "", "worker_warnings_dropped"},
		{`"behave":"plant-symlink","target":"` + outside + `"`, "failed", "run_dir_tampered", ""},
		{`"behave":"plant-fifo"`, "failed", "run_dir_tampered", ""},
		{`"behave":"fill","bytes":300000`, "ok", "", ""},
	}
	var stream, hangStream string
	for i, c := range cases {
		if c.cfg == hang {
			hangStream = exp(i, c.cfg)
		} else {
			stream += exp(i, c.cfg)
		}
	}
	out, hangOut := t.TempDir(), t.TempDir()
	r := run(t, stream, nil, execBin, execArgs(out)...)
	rh := run(t, hangStream, nil, execBin, append(execArgs(hangOut), "--timeout", "1s")...)
	if r.code != 3 || rh.code != 3 {
		t.Errorf("exit %d and %d (hang), want 3 (some runs failed)\n%s\n%s", r.code, rh.code, r.stderr, rh.stderr)
	}
	r.stdout += rh.stdout
	runs, _ := runsOf(t, r.stdout)
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if len(line) > 256<<10 {
			t.Errorf("a run record of %d bytes", len(line))
		}
	}
	for i, c := range cases {
		id := fmt.Sprintf("r%04d-c1", i)
		if len(runs[id]) != 1 {
			t.Fatalf("%s: %d records", c.cfg, len(runs[id]))
		}
		got := runs[id][0]
		if got.Status != c.status || (c.errType != "") != (got.Error != nil) || got.Error != nil && got.Error.Type != c.errType {
			t.Errorf("%s: status %s error %+v, want %s %s", c.cfg, got.Status, got.Error, c.status, c.errType)
		}
		if c.flag != "" {
			found := false
			for _, f := range got.Warnings {
				found = found || f.Code == c.flag
			}
			if !found {
				t.Errorf("%s: no %s flag in %+v", c.cfg, c.flag, got.Warnings)
			}
		}
	}
	if len(runs["r0005-c1"]) == 1 {
		w := runs["r0005-c1"][0].Warnings
		if len(w) > 110 {
			t.Errorf("warnflood: %d warnings in the run record", len(w))
		}
		for _, f := range w {
			if len(f.Message) > 1100 {
				t.Errorf("warnflood: a warning of %d bytes in the run record", len(f.Message))
			}
		}
	}
	if _, err := os.Lstat(outside); err == nil {
		t.Errorf("something was written through the planted symlink to %s", outside)
	}
	dir := filepath.Join(out, studySub)
	filepath.WalkDir(filepath.Join(dir, "runs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&(fs.ModeSymlink|fs.ModeNamedPipe) != 0 {
			t.Errorf("%s left in the run directory (%v)", p, d.Type())
		}
		return nil
	})
	checkStudy(t, dir)
	checkStudy(t, filepath.Join(hangOut, studySub))
	// llem-aggregate over runs whose directories were tampered with must
	// end (a FIFO would have blocked its read: the test would hang), with
	// one energy per run.
	a := run(t, r.stdout, nil, aggBin)
	if n := strings.Count(a.stdout, `"kind":"energy"`); n != len(cases) {
		t.Errorf("llem-aggregate: %d energy records, want %d (exit %d)\n%s", n, len(cases), a.code, a.stderr)
	}
	figure(t, map[string]any{"faults": len(cases), "kinds": "crash,error,hang,clock-back,warning-flood,planted-symlinks,planted-fifo,log-fill", "ok": !t.Failed()})
}

// TestEventFlood: a worker that writes protocol events without end is
// stopped once events.ndjson reaches its limit, and its run fails as
// worker_flood, not timeout: nothing waits for the (long) timeout.
func TestEventFlood(t *testing.T) {
	out := t.TempDir()
	o := runloop.Options{Out: out, Workers: map[string][]string{"native": {workerBin}},
		Runners: map[string]runner.Runner{"local": local.New()}, Timeout: 10 * time.Minute,
		Grace: 300 * time.Millisecond, Host: runloop.HostFacts(), EventsMax: 1 << 20}
	var stdout, stderr bytes.Buffer
	t0 := time.Now()
	runloop.Run(context.Background(), o, []*record.Reader{record.NewReader(strings.NewReader(exp(0, `"behave":"flood"`)), "-")}, &stdout, &stderr)
	took := time.Since(t0)
	runs, _ := runsOf(t, stdout.String())
	r := runs["r0000-c1"]
	if len(r) != 1 || r[0].Status != "failed" || r[0].Error == nil || r[0].Error.Type != "worker_flood" {
		t.Fatalf("flood: %+v\n%s", r, stderr.String())
	}
	fi, err := os.Stat(filepath.Join(r[0].RunDir, "events.ndjson"))
	if err != nil || fi.Size() > 1<<20 {
		t.Errorf("events.ndjson: %v, size %d over the 1 MiB limit", err, fi.Size())
	}
	figure(t, map[string]any{"limit_bytes": 1 << 20, "stopped_after_s": took.Seconds(), "ok": !t.Failed()})
}

// TestDiskFull fills a 2 MiB tmpfs mid-study: llem-exec stops with a clear
// error, the runs it had finished stay whole, and after space is freed a
// resume finishes the study without running a finished run again.
func TestDiskFull(t *testing.T) {
	out := mountTmpfs(t, "2m")
	const n = 10
	var stream string
	for i := 0; i < n; i++ {
		stream += exp(i, `"behave":"fill","bytes":300000`)
	}
	r := run(t, stream, nil, execBin, execArgs(out)...)
	if r.code == 0 || r.code == 3 {
		t.Fatalf("a full disk: exit %d\n%s", r.code, r.stderr)
	}
	last := strings.TrimSpace(r.stderr[strings.LastIndex(strings.TrimRight(r.stderr, "\n"), "\n")+1:])
	if !strings.HasPrefix(last, "llem-exec: ") || !strings.Contains(last, "no space left on device") {
		t.Errorf("last stderr line %q does not say the disk is full", last)
	}
	dir := filepath.Join(out, studySub)
	okBefore, half := checkStudy(t, dir)
	if okBefore == 0 || okBefore >= n {
		t.Errorf("%d runs finished before the disk filled; the test does not fill it mid-study", okBefore)
	}
	_, _, startsBefore := journal(t, dir)
	remount(t, out, "size=64m")
	r2 := run(t, stream, nil, execBin, execArgs(out)...)
	if r2.code != 0 {
		t.Fatalf("resume: exit %d\n%s", r2.code, r2.stderr)
	}
	checkStudy(t, dir)
	checkComplete(t, r2.stdout, dir, n)
	last2, _, starts := journal(t, dir)
	rerun := 0
	for id, st := range last2 {
		if st == record.StatusOK && starts[id] > startsBefore[id] && startsBefore[id] > 0 {
			rerun++
		}
	}
	// Only the run cut by the full disk may start again.
	if rerun > 1 {
		t.Errorf("%d runs started again after the resume, want at most the one the disk cut", rerun)
	}
	figure(t, map[string]any{"tmpfs": "2m", "runs": n, "ok_before_full": okBefore, "cut_by_full_disk": half,
		"error": last, "lost": 0, "duplicated": 0, "ok": !t.Failed()})
}

// TestReadOnlyOutput: an output directory remounted read-only between two
// passes makes llem-exec stop at once with the path and the reason, having
// changed nothing; a fresh --out on a read-only mount likewise; after the
// remount read-write the resume finishes.
func TestReadOnlyOutput(t *testing.T) {
	out := mountTmpfs(t, "16m")
	s1 := exp(0, "") + exp(1, "") + exp(2, "")
	s2 := s1 + exp(3, "") + exp(4, "")
	if r := run(t, s1, nil, execBin, execArgs(out)...); r.code != 0 {
		t.Fatalf("first pass: exit %d\n%s", r.code, r.stderr)
	}
	before := snapshot(t, out)
	remount(t, out, "ro")
	r := run(t, s2, nil, execBin, execArgs(out)...)
	if r.code == 0 {
		t.Fatal("llem-exec succeeded on a read-only output directory")
	}
	msg := oneLine(t, r, "llem-exec", "read-only file system", out)
	if after := snapshot(t, out); after != before {
		t.Error("files changed on a read-only mount")
	}
	r3 := run(t, s2, nil, execBin, execArgs(filepath.Join(out, "fresh"))...)
	msg3 := oneLine(t, r3, "llem-exec", "read-only file system")
	if r3.code == 0 {
		t.Error("a fresh --out on a read-only mount: exit 0")
	}
	remount(t, out, "rw")
	r2 := run(t, s2, nil, execBin, execArgs(out)...)
	if r2.code != 0 {
		t.Fatalf("resume: exit %d\n%s", r2.code, r2.stderr)
	}
	dir := filepath.Join(out, studySub)
	checkStudy(t, dir)
	checkComplete(t, r2.stdout, dir, 5)
	_, _, starts := journal(t, dir)
	for i := 0; i < 3; i++ {
		if id := fmt.Sprintf("r%04d-c1", i); starts[id] != 1 {
			t.Errorf("%s started %d times; it had finished before the read-only pass", id, starts[id])
		}
	}
	figure(t, map[string]any{"errors": []string{msg, msg3}, "ok": !t.Failed()})
}

// snapshot hashes every file's path, mode and content under dir.
func snapshot(t *testing.T, dir string) string {
	h := sha256.New()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		fmt.Fprintf(h, "%s %v %d\n", p, fi.Mode(), fi.Size())
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestTwoExecs: a second llem-exec on a study directory another one is
// writing stops at once, naming the holder, while the first holds a run in
// progress (its worker waits for a file the test writes only after the
// second has ended: a second that waited for the lock would never end); the
// first finishes; a third, afterwards, runs nothing again.
func TestTwoExecs(t *testing.T) {
	out, gate := t.TempDir(), t.TempDir()
	inRun, release := filepath.Join(gate, "in-run"), filepath.Join(gate, "release")
	stream := exp(0, `"behave":"succeed","touch":"`+inRun+`","wait_for":"`+release+`"`) + exp(1, "")
	a := exec.Command(execBin, execArgs(out)...)
	a.Stdin = strings.NewReader(stream)
	var aout, aerr bytes.Buffer
	a.Stdout, a.Stderr = &aout, &aerr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, studySub)
	waitFile(t, inRun)
	b := run(t, stream, nil, execBin, execArgs(out)...)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if b.code == 0 {
		t.Errorf("second llem-exec: exit %d", b.code)
	}
	msg := oneLine(t, b, "llem-exec", "held by another llem-exec", fmt.Sprintf(`"pid":%d`, a.Process.Pid))
	if b.stdout != "" {
		t.Errorf("second llem-exec wrote records: %q", b.stdout)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("first llem-exec: %v\n%s", err, aerr.String())
	}
	checkComplete(t, aout.String(), dir, 2)
	c := run(t, stream, nil, execBin, execArgs(out)...)
	checkComplete(t, c.stdout, dir, 2)
	if _, _, starts := journal(t, dir); starts["r0000-c1"] != 1 || starts["r0001-c1"] != 1 {
		t.Errorf("runs started again: %v", starts)
	}
	figure(t, map[string]any{"error": msg, "ok": !t.Failed()})
}

// TestSamplerDeath: the sampler program is SIGKILLed while the run is in
// its measurement (the worker says when it has started it, and goes on
// once the sampler is dead). The run record says so (sampler_failed), and
// llem-aggregate flags the energy figures of the part without samples
// instead of reporting them as whole.
func TestSamplerDeath(t *testing.T) {
	out, gate := t.TempDir(), t.TempDir()
	inRun, dead := filepath.Join(gate, "in-run"), filepath.Join(gate, "sampler-dead")
	cmd := sampleBin + " --sources estimate --interval 10ms -o {} & p=$!; " +
		"until [ -e " + inRun + " ]; do sleep 0.01; done; kill -KILL $p; wait $p; : >" + dead + "; exit 137"
	r := run(t, exp(0, `"behave":"succeed","sleep_s":0.1,"touch":"`+inRun+`","wait_for":"`+dead+`"`), nil, execBin,
		append(execArgs(out), "--sampler-cmd", cmd)...)
	runs, _ := runsOf(t, r.stdout)
	got := runs["r0000-c1"]
	if len(got) != 1 {
		t.Fatalf("exit %d, runs %v\n%s", r.code, runs, r.stderr)
	}
	var warn string
	for _, f := range got[0].Warnings {
		if f.Code == "sampler_failed" {
			warn = f.Message
		}
	}
	if warn == "" || !strings.Contains(warn, "ended before the run did") {
		t.Errorf("no sampler_failed warning saying the sampler died: %+v", got[0].Warnings)
	}
	a := run(t, r.stdout, nil, aggBin)
	var e record.Energy
	for _, l := range strings.Split(a.stdout, "\n") {
		if strings.Contains(l, `"kind":"energy"`) {
			json.Unmarshal([]byte(l), &e)
		}
	}
	var codes []string
	for _, f := range e.Flags {
		codes = append(codes, f.Code)
	}
	flagged := strings.Contains(strings.Join(codes, ","), "no_samples") || strings.Contains(strings.Join(codes, ","), "edge_samples_missing") || strings.Contains(strings.Join(codes, ","), "sample_gap") ||
		strings.Contains(strings.Join(codes, ","), "samples_truncated")
	if !flagged {
		t.Errorf("energy of a run whose sampler died is not flagged: %v\n%s", codes, a.stderr)
	}
	figure(t, map[string]any{"run_warning": warn, "energy_flags": codes, "ok": !t.Failed()})
}

// waitFile waits for a file a worker writes when its run is in progress.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond) // polling for the file, not a timing
	}
}

// killAt waits for the moment of a kill and says what it was: for a quarter
// of the kills up to 15 ms after the start (start-up, journal replay, the
// pending entries), for the others up to 20 ms after the 1st to 3rd run
// llem-exec starts, as the journal shows it, so that most catch a run
// half-done however slowly the machine starts llem-exec. It returns early
// if llem-exec has exited.
func killAt(rng *rand.Rand, journal string, exited <-chan struct{}) (string, bool) {
	if rng.Intn(4) == 0 {
		d := time.Duration(rng.Intn(15000)) * time.Microsecond
		time.Sleep(d) // a random moment of the start-up: the fault itself
		return fmt.Sprintf("%s after the start", d), true
	}
	n, extra := 1+rng.Intn(3), time.Duration(rng.Intn(20000))*time.Microsecond
	running := func() int { b, _ := os.ReadFile(journal); return bytes.Count(b, []byte(`"status":"running"`)) }
	for base := running(); running() < base+n; {
		select {
		case <-exited:
			return "after llem-exec ended", false
		default:
		}
		time.Sleep(time.Millisecond) // polling the journal
	}
	time.Sleep(extra) // a random moment of the run: the fault itself
	return fmt.Sprintf("%s after the start of run %d", extra, n), false
}

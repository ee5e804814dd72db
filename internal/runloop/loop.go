// Package runloop is llem-exec's run loop: it reads experiment records, runs
// each in a fresh worker through a runner.Runner, writes the run directory,
// journals every state change (fsync'd) so a killed study resumes without
// losing or repeating a finished run, and emits one run record per run.
//
// loop.go holds the loop over the stream (type loop), run.go one run of one
// experiment (runOne), cmd.go the llem-exec command.
package runloop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/cpuattr"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/internal/worker/python"
)

// Sampler records power into a file around each worker.
type Sampler interface {
	Start(path string) (SamplerSession, error)
}

// SamplerSession is one recording.
type SamplerSession interface {
	Stop() (SampleInfo, error)
}

// SampleInfo is what a recording covered.
type SampleInfo struct {
	Sources  []string
	Devices  []string
	Estimate bool
	Idle     []record.BaselineDevice // mean power per device over the recording
}

// Options configure a Run.
type Options struct {
	Out     string
	Workers map[string][]string // backend → argv
	// ServerPrograms are where the programs a serving run's local server
	// command names are (llem-serve → beside llem-exec); one not here is
	// looked up on PATH.
	ServerPrograms map[string]string
	Runners        map[string]runner.Runner
	Sampler        Sampler // nil: no samples
	// Baseline is how long to measure idle power before the first run (0
	// skips); it is measured again once older than BaselineTTL. Negative:
	// as the experiment's config says (baseline.enabled, .duration_seconds).
	Baseline    time.Duration
	BaselineTTL time.Duration
	Timeout     time.Duration
	Grace       time.Duration
	NoGaps      bool
	SkipFailed  bool
	FailFast    bool
	DryRun      bool
	Shard       [2]int // i/n, 1-based; zero = all
	// ShardBy is what --shard divides: "seq" (or "") takes a run when
	// seq % n == i-1; "config" gives every config id, with all its cycles, to
	// one share (see shardKeys).
	ShardBy string
	// Print, when set, runs nothing: Run writes one number about the runs it
	// would take (runs, configs, gpus, pending) and returns (see printPlan).
	Print  string
	Select func(record.Experiment) bool
	Host   record.Host
	// GPUs are the UUIDs of the GPUs runs may use. Each run gets exactly
	// config.GPUsNeeded of them (none for CPU backends), disjoint from those
	// of the runs beside it, in Spec.GPUs, and is sampled on those only.
	GPUs []string
	// Parallel is how many runs may be in flight at once (<= 1: one at a
	// time). Runs side by side take no thermal gaps.
	Parallel int
	// CacheDir is where the embedded Python workers are extracted for local
	// runs of a backend Workers does not name ("" = python.DefaultCacheDir).
	CacheDir    string
	Kill        <-chan struct{} // closed on a second interrupt
	Interrupted func() bool     // true once the first interrupt came
	Progress    io.Writer
	prompts     func(record.Experiment) ([]string, error)
	env         []string      // added to the run's worker environment
	cpuPaths    cpuattr.Paths // where run cgroups and /proc are; tests point them elsewhere
	LogMax      int64
	EventsMax   int64 // bytes of events.ndjson; 0 = DefaultEventsMax
}

var (
	safeName  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)
	studyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`) // llem-expand's rule
	studyHash = regexp.MustCompile(`^[0-9a-f]{8,64}$`)
)

// study is one study's directory as this session holds it: its runs in the
// stream, its baselines, its journal's states, its open journal and lock.
type study struct {
	runs      []record.Experiment
	baselines []*record.Baseline
	emitted   map[string]bool
	dir       string
	states    map[string]*runState
	j         *journal
	lk        *lock
}

// Run executes the stream read from inputs and writes records to stdout.
func Run(ctx context.Context, o Options, inputs []*record.Reader, stdout io.Writer, stderr io.Writer) error {
	out := record.NewFlushingWriter(stdout)
	pass := out
	if o.Print != "" {
		// --print answers with one number: other records do not pass through.
		pass = record.NewFlushingWriter(io.Discard)
	}
	exps, err := readExperiments(o, inputs, pass)
	if err != nil {
		return err
	}
	if o.Print != "" {
		return printPlan(o, exps, stdout, stderr)
	}
	l := &loop{ctx: ctx, o: o, exps: exps, out: out, stderr: stderr, par: max(o.Parallel, 1), byDir: map[string]*study{}}
	if err := l.prepare(); err != nil {
		return err
	}
	defer l.closeStudies()
	if err := l.openStudies(); err != nil {
		return err
	}
	return l.run()
}

// loop is one llem-exec session over a stream of experiments. Before the
// first run: prepare (every run has a worker and a runner; the runners'
// pre-flight) and openStudies (lock, journal, pending entries). Then each
// experiment, in stream order, goes through next:
//
//	resume    decide from the journal: skip it (ok already, or failed with
//	          --skip-failed), or run it (again)
//	gap       the thermal gap before a serial run
//	baseline  reuse or measure the study's idle baseline
//	launch    journal it running, start runOne on its GPUs in a goroutine
//	collect   take a finished run back; finishRun journals its state, emits
//	          its record and counts it
//
// and after the last, finish journals the session's end and gives the exit
// status. Runs come back only through collect, one at a time, so the
// journal, stdout and the progress are written by this goroutine alone. With
// one slot (the default) each run is collected before the next starts: the
// serial loop.
//
// What happens inside one run (its files, sampler, worker and verdict) is
// runOne's (run.go); a serving experiment's server lifecycle goes there, as
// an execution, not here.
type loop struct {
	ctx    context.Context
	o      Options
	exps   []record.Experiment
	out    *record.Writer
	stderr io.Writer
	par    int // runs in flight at most

	studies []*study // in the order the stream names them
	byDir   map[string]*study
	prog    *progress
	pool    *gpuPool

	runs        context.Context // the runs' context: ctx, cancelled on a fatal error too
	cancelRuns  context.CancelFunc
	results     chan result // finished runs, from their goroutines
	inflight    int         // runs launched and not yet collected
	stopLaunch  bool        // no more runs start (fail-fast, an interrupted run)
	fatal       error       // a run that could not be carried out: the session ends with it
	failed      int         // runs that did not finish ok (skipped failed ones included)
	interrupted bool
	ranOne      bool // a run started in this session (no gap before the first)
}

// result is a finished run, as its goroutine hands it back.
type result struct {
	e       record.Experiment
	st      *study
	attempt int
	gpus    []string
	r       record.Run
	err     error
}

func (l *loop) warn(s string) { fmt.Fprintf(l.stderr, "llem-exec: warning: %s\n", s) }

// runnerOf is the runner type of e ("" means local).
func runnerOf(e record.Experiment) string {
	if e.Runner.Type == "" {
		return "local"
	}
	return e.Runner.Type
}

// prepare checks that every run has a worker and a runner and, unless this is
// a dry run, resolves the workers and runs each runner's pre-flight.
func (l *loop) prepare() error {
	for _, e := range l.exps {
		if _, ok := l.o.Workers[e.Backend]; !ok && e.Runner.Type != "docker" && !python.IsBackend(e.Backend) && !hasServing(e.Config) {
			return cli.Usagef("no worker for backend %q (run %s); give one with --worker %s=CMD", e.Backend, e.RunID, e.Backend)
		}
		if l.o.Runners[runnerOf(e)] == nil {
			return cli.Usagef("run %s asks for runner %q, which this llem-exec does not have", e.RunID, runnerOf(e))
		}
	}
	if !l.o.DryRun {
		if err := l.resolveWorkers(); err != nil {
			return err
		}
		if err := l.preflight(); err != nil {
			return err
		}
	}
	if l.par > 1 && !l.o.NoGaps && !l.o.DryRun {
		for _, e := range l.exps {
			if e.GapBeforeS > 0 {
				l.warn(fmt.Sprintf("--parallel %d: the thermal gaps between runs (gap_before_s) are not taken; a run starts as soon as a slot and its GPUs are free", l.par))
				break
			}
		}
	}
	return nil
}

// resolveWorkers adds the embedded Python workers, for the local runs of
// their backends that --worker does not name: extracted now, once, not before.
func (l *loop) resolveWorkers() error {
	workers := map[string][]string{}
	for b, argv := range l.o.Workers {
		workers[b] = argv
	}
	for _, e := range l.exps {
		// A serving run starts the backend's server, not its worker.
		if _, ok := workers[e.Backend]; !ok && e.Runner.Type != "docker" && !hasServing(e.Config) {
			argv, err := python.Command(e.Backend, l.o.CacheDir)
			if err != nil {
				return fmt.Errorf("%s worker: %w", e.Backend, err)
			}
			workers[e.Backend] = argv
		}
	}
	l.o.Workers = workers
	return nil
}

// preflight asks each runner the stream uses, in the order the stream first
// uses them, whether it can run its experiments at all.
func (l *loop) preflight() error {
	var order []string
	byRunner := map[string][]record.Experiment{}
	for _, e := range l.exps {
		rt := runnerOf(e)
		if byRunner[rt] == nil {
			order = append(order, rt)
		}
		byRunner[rt] = append(byRunner[rt], e)
	}
	for _, rt := range order {
		if err := l.o.Runners[rt].Preflight(l.ctx, byRunner[rt]); err != nil {
			return fmt.Errorf("%s runner: %w", rt, err)
		}
	}
	return nil
}

func (l *loop) studyDir(e record.Experiment) string {
	return filepath.Join(l.o.Out, e.Study+"-"+e.StudyHash[:8])
}

func (l *loop) studyOf(e record.Experiment) *study { return l.byDir[l.studyDir(e)] }

// openStudies opens the directory of every study in the stream and journals,
// in each, the runs this session will take as pending, before any runs.
func (l *loop) openStudies() error {
	for _, e := range l.exps {
		if st := l.studyOf(e); st != nil {
			st.runs = append(st.runs, e)
			continue
		}
		dir := l.studyDir(e)
		st := &study{dir: dir, runs: []record.Experiment{e}, emitted: map[string]bool{}, baselines: loadBaselines(dir)}
		l.byDir[dir] = st
		l.studies = append(l.studies, st)
		if err := l.openStudy(st); err != nil {
			return err
		}
	}
	if l.o.DryRun {
		return nil
	}
	for _, st := range l.studies {
		var pend []Entry
		for _, e := range st.runs {
			if st.states[e.RunID] == nil {
				seq := e.Seq
				pend = append(pend, Entry{Op: "state", RunID: e.RunID, Seq: &seq, ID: e.ID, Status: record.StatusPending})
			}
		}
		if len(pend) > 0 {
			if err := st.j.append(pend...); err != nil {
				return err
			}
		}
	}
	return nil
}

// openStudy reads a study's journal and, unless this is a dry run, makes its
// runs directory, takes its lock and opens its journal for this session.
func (l *loop) openStudy(st *study) error {
	runs := filepath.Join(st.dir, "runs")
	if !l.o.DryRun {
		if err := os.MkdirAll(runs, 0o755); err != nil {
			return err
		}
		// Each run directory is removed and made again under runs/: a
		// runs that is a symlink would aim that removal elsewhere.
		if fi, err := os.Lstat(runs); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s is not a directory (a symlink?); llem-exec removes and recreates run directories under it, so it must be a plain directory", runs)
		}
		lk, err := takeLock(filepath.Join(st.dir, "lock"), l.o.Host.Hostname)
		if err != nil {
			return err
		}
		st.lk = lk
	}
	states, err := readJournal(filepath.Join(st.dir, "journal.ndjson"), l.warn)
	if err != nil {
		return err
	}
	st.states = states
	if l.o.DryRun {
		return nil
	}
	j, err := openJournal(filepath.Join(st.dir, "journal.ndjson"))
	if err != nil {
		return err
	}
	st.j = j
	return j.append(Entry{Op: "open", PID: os.Getpid(), Host: l.o.Host.Hostname})
}

// closeStudies closes the journals and releases the locks, the last opened first.
func (l *loop) closeStudies() {
	for i := len(l.studies) - 1; i >= 0; i-- {
		st := l.studies[i]
		if st.j != nil {
			st.j.close()
		}
		if st.lk != nil {
			st.lk.release()
		}
	}
}

// run takes every experiment through next, waits for the runs in flight and
// finishes the session.
func (l *loop) run() error {
	l.o.prompts = promptCache()
	l.prog = newProgress(l.o.Progress, len(l.exps))
	l.pool = newGPUPool(l.o.GPUs)
	l.runs, l.cancelRuns = context.WithCancel(l.ctx)
	defer l.cancelRuns()
	l.results = make(chan result)
	defer func() { // an early return leaves no run behind
		if l.inflight > 0 {
			l.cancelRuns()
			l.drain()
		}
	}()
	for _, e := range l.exps {
		stop, err := l.next(e)
		if err != nil {
			return err
		}
		if stop {
			break
		}
	}
	if err := l.drain(); err != nil {
		return err
	}
	if err := l.out.Flush(); err != nil {
		return err
	}
	return l.finish()
}

// next takes one experiment through the steps up to its launch (see loop);
// stop says that no later experiment starts.
func (l *loop) next(e record.Experiment) (stop bool, err error) {
	st := l.studyOf(e)
	s := st.states[e.RunID]
	runDir := filepath.Join(st.dir, "runs", e.RunID)
	if abs, err := filepath.Abs(runDir); err == nil {
		runDir = abs
	}
	if skip, err := l.resume(e, st, s, runDir); skip || err != nil {
		return false, err
	}
	if l.o.DryRun {
		return false, l.out.Write(plannedWithEstimate(e, runDir, l.o, l.warn))
	}
	need := gpusNeeded(e)
	for l.inflight > 0 && !l.pool.fits(need) {
		if err := l.collect(); err != nil {
			return true, err
		}
	}
	if l.stopLaunch {
		return true, nil
	}
	if l.ctx.Err() != nil || !l.gap(e) {
		l.interrupted = true
		return true, nil
	}
	l.ranOne = true
	bl, stop, err := l.baseline(e, st)
	if stop || err != nil {
		return true, err
	}
	if err := l.launch(e, st, s, runDir, need, bl); err != nil {
		return true, err
	}
	for l.inflight >= l.par {
		if err := l.collect(); err != nil {
			return true, err
		}
	}
	return l.stopLaunch, nil
}

// resume decides what the journal's state s of a run means for this
// session; skip is true when the run is not run now. A run already ok is
// not run again: its run record (and the baseline it names) is emitted again
// from its run.json, and one whose run.json cannot be read runs again. A
// failed run is skipped with --skip-failed. Any other runs.
func (l *loop) resume(e record.Experiment, st *study, s *runState, runDir string) (skip bool, err error) {
	switch {
	case s != nil && s.Status == record.StatusOK:
		if l.o.DryRun {
			return true, l.out.Write(plannedRun(e, record.StatusDone, runDir, l.o.Host))
		}
		var r record.Run
		err := readJSON(filepath.Join(runDir, "run.json"), &r)
		if err == nil {
			return true, l.replay(e, st, r)
		}
		l.warn(fmt.Sprintf("run %s is ok in the journal but its run.json cannot be read (%v); running it again", e.RunID, err))
	case s != nil && s.Status == record.StatusFailed && l.o.SkipFailed:
		l.prog.done(e, record.StatusFailed, true)
		l.failed++
		return true, nil
	}
	return false, nil
}

// replay emits the records of a run finished in an earlier session.
func (l *loop) replay(e record.Experiment, st *study, r record.Run) error {
	for _, bl := range st.baselines {
		if bl.ID == r.BaselineID && !st.emitted[bl.ID] {
			st.emitted[bl.ID] = true
			if err := l.out.Write(bl); err != nil {
				return err
			}
		}
	}
	if err := l.out.Write(r); err != nil {
		return err
	}
	l.prog.done(e, record.StatusOK, true)
	return nil
}

// gap waits the thermal gap before a serial run (none before the first, with
// --no-gaps, or with --parallel); false when interrupted meanwhile.
func (l *loop) gap(e record.Experiment) bool {
	if !l.ranOne || l.par != 1 || l.o.NoGaps || e.GapBeforeS <= 0 {
		return true
	}
	t := time.NewTimer(time.Duration(e.GapBeforeS * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// baseline is the idle baseline the run refers to: the study's last one
// while younger than --baseline-ttl, else a new measurement; nil without a
// sampler, when baselines are off, or when the measurement failed (a
// warning). Each baseline record is emitted once, before the first run that
// refers to it. stop says no run starts any more.
func (l *loop) baseline(e record.Experiment, st *study) (bl *record.Baseline, stop bool, err error) {
	dur := l.o.Baseline
	if dur < 0 {
		dur = config.ReadRunFacts(e.Config).BaselineDuration()
	}
	if l.o.Sampler == nil || dur <= 0 {
		return nil, false, nil
	}
	if n := len(st.baselines); n > 0 && (l.o.BaselineTTL <= 0 || time.Since(time.Unix(0, st.baselines[n-1].Window.EndNS)) < l.o.BaselineTTL) {
		bl = st.baselines[n-1]
	} else if bl, stop, err = l.measure(st, dur); stop || err != nil {
		return nil, stop, err
	}
	if bl != nil && !st.emitted[bl.ID] {
		st.emitted[bl.ID] = true
		if err := l.out.Write(bl); err != nil {
			return nil, true, err
		}
	}
	return bl, false, nil
}

// measure measures a new idle baseline for st. Idle means idle: the runs in
// flight end first.
func (l *loop) measure(st *study, dur time.Duration) (bl *record.Baseline, stop bool, err error) {
	if err := l.drain(); err != nil {
		return nil, true, err
	}
	if l.stopLaunch {
		return nil, true, nil
	}
	if l.o.Progress != nil {
		fmt.Fprintf(l.o.Progress, "llem-exec: measuring idle power for %s\n", dur)
	}
	nb, err := measureBaseline(l.ctx, l.o, st, dur)
	if l.ctx.Err() != nil {
		l.interrupted = true
		return nil, true, nil
	}
	if err != nil {
		l.warn("idle baseline not measured: " + err.Error())
		return nil, false, nil
	}
	st.baselines = append(st.baselines, nb)
	return nb, false, nil
}

// launch journals the run as running (its attempt counted from the journal)
// and starts it in its own goroutine on need GPUs from the pool; collect takes
// it back. A run needing more GPUs than llem-exec may use fails at once.
func (l *loop) launch(e record.Experiment, st *study, s *runState, runDir string, need int, bl *record.Baseline) error {
	attempt := 1
	if s != nil {
		attempt = s.Attempts + 1
	}
	seq := e.Seq
	if err := st.j.append(Entry{Op: "state", RunID: e.RunID, Seq: &seq, ID: e.ID, Status: record.StatusRunning, Attempt: attempt}); err != nil {
		return err
	}
	l.prog.start(e)
	baseID := ""
	if bl != nil {
		baseID = bl.ID
	}
	ro := l.o
	ro.GPUs = l.pool.take(need)
	if need == 0 && len(l.o.GPUs) > 0 {
		// A CPU run beside GPU runs sees no GPU.
		ro.env = append(append([]string(nil), l.o.env...), "CUDA_VISIBLE_DEVICES=")
	}
	all, ctx := l.o.GPUs, l.runs
	l.inflight++
	go func() {
		var r record.Run
		var err error
		if rerr := notEnoughGPUs(e, need, all); rerr != nil {
			r, err = refusedRun(ro, e, runDir, attempt, baseID, rerr)
		} else {
			r, err = runOne(ctx, ro, e, runDir, attempt, baseID)
		}
		l.results <- result{e: e, st: st, attempt: attempt, gpus: ro.GPUs, r: r, err: err}
	}()
	return nil
}

// collect takes back one finished run: its GPUs return to the pool, then
// finishRun. A run that could not be carried out (its files could not be
// written, the runner failed) is fatal: the runs in flight are cancelled and
// the session ends with that error.
func (l *loop) collect() error {
	d := <-l.results
	l.inflight--
	l.pool.give(d.gpus)
	if d.err != nil {
		if l.fatal == nil {
			l.fatal = fmt.Errorf("run %s: %w", d.e.RunID, d.err)
			l.cancelRuns()
		}
		return l.fatal
	}
	if l.fatal != nil {
		return l.fatal
	}
	return l.finishRun(d)
}

// finishRun journals a finished run's state, emits its record, and counts it:
// an interrupted run stops the session, a failed one with --fail-fast stops
// further launches.
func (l *loop) finishRun(d result) error {
	e, st, r := d.e, d.st, d.r
	seq := e.Seq
	if err := st.j.append(Entry{Op: "state", RunID: e.RunID, Seq: &seq, ID: e.ID, Status: r.Status, Attempt: d.attempt, Error: r.Error}); err != nil {
		return err
	}
	if st.states[e.RunID] == nil {
		st.states[e.RunID] = &runState{}
	}
	st.states[e.RunID].Status = r.Status
	if err := l.out.Write(r); err != nil {
		return err
	}
	l.prog.done(e, r.Status, false)
	if r.Status == record.StatusInterrupted {
		l.interrupted = true
		l.stopLaunch = true
	} else if r.Status != record.StatusOK {
		l.failed++
		l.stopLaunch = l.stopLaunch || l.o.FailFast
	}
	return nil
}

// drain collects every run in flight; the first error is returned.
func (l *loop) drain() error {
	var first error
	for l.inflight > 0 {
		if err := l.collect(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// finish journals the session's end in every study and says how it ended:
// interrupted (exit 130: rerun to resume), some runs not ok (exit 3), or all ok.
func (l *loop) finish() error {
	reason := "done"
	if l.interrupted || l.ctx.Err() != nil {
		reason = "interrupted"
	} else if l.failed > 0 && l.o.FailFast {
		reason = "fail-fast"
	}
	for _, st := range l.studies {
		if st.j != nil {
			st.j.append(Entry{Op: "close", PID: os.Getpid(), Reason: reason})
		}
	}
	l.prog.finish()
	switch {
	case reason == "interrupted":
		fmt.Fprintf(l.stderr, "llem-exec: interrupted; rerun the same stream with the same --out to resume\n")
		return &cli.Error{Code: cli.ExitInterrupted}
	case l.failed > 0:
		fmt.Fprintf(l.stderr, "llem-exec: %d run(s) did not finish ok\n", l.failed)
		return &cli.Error{Code: cli.ExitSomeFailed}
	}
	return nil
}

// quoteClip quotes a value for an error message, cut to 80 bytes: a hostile
// record's 10 MB name makes a one-line error, not a 10 MB one.
func quoteClip(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:80]) + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// HostFacts fills what the Go runtime and the kernel say about this machine.
func HostFacts() record.Host { return record.HostFacts("/proc") }

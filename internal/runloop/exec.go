// Package exec is llem-exec's run loop: it reads experiment records, runs each
// in a fresh worker through a runner.Runner, writes the run directory, journals
// every state change (fsync'd) so a killed study resumes without losing or
// repeating a finished run, and emits one run record per run.
package runloop

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/llem/llem/internal/cli"
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
	Runners map[string]runner.Runner
	Sampler Sampler // nil: no samples
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
	env         []string // added to the run's worker environment
	LogMax      int64
	EventsMax   int64 // bytes of events.ndjson; 0 = DefaultEventsMax
}

var (
	safeName  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)
	studyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`) // llem-expand's rule
	studyHash = regexp.MustCompile(`^[0-9a-f]{8,64}$`)
)

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
	for _, e := range exps {
		if _, ok := o.Workers[e.Backend]; !ok && e.Runner.Type != "docker" && !python.IsBackend(e.Backend) {
			return cli.Usagef("no worker for backend %q (run %s); give one with --worker %s=CMD", e.Backend, e.RunID, e.Backend)
		}
		rt := e.Runner.Type
		if rt == "" {
			rt = "local"
		}
		if o.Runners[rt] == nil {
			return cli.Usagef("run %s asks for runner %q, which this llem-exec does not have", e.RunID, rt)
		}
	}
	if !o.DryRun {
		// The embedded Python workers, for the local runs of their backends
		// that --worker does not name: extracted now, once, not before.
		workers := map[string][]string{}
		for b, argv := range o.Workers {
			workers[b] = argv
		}
		for _, e := range exps {
			if _, ok := workers[e.Backend]; !ok && e.Runner.Type != "docker" {
				argv, err := python.Command(e.Backend, o.CacheDir)
				if err != nil {
					return fmt.Errorf("%s worker: %w", e.Backend, err)
				}
				workers[e.Backend] = argv
			}
		}
		o.Workers = workers
		byRunner := map[string][]record.Experiment{}
		for _, e := range exps {
			rt := e.Runner.Type
			if rt == "" {
				rt = "local"
			}
			byRunner[rt] = append(byRunner[rt], e)
		}
		for rt, es := range byRunner {
			if err := o.Runners[rt].Preflight(ctx, es); err != nil {
				return fmt.Errorf("%s runner: %w", rt, err)
			}
		}
	}
	warn := func(s string) { fmt.Fprintf(stderr, "llem-exec: warning: %s\n", s) }
	par := max(o.Parallel, 1)
	if par > 1 && !o.NoGaps && !o.DryRun {
		for _, e := range exps {
			if e.GapBeforeS > 0 {
				warn(fmt.Sprintf("--parallel %d: the thermal gaps between runs (gap_before_s) are not taken; a run starts as soon as a slot and its GPUs are free", par))
				break
			}
		}
	}

	studies := map[string]*study{}
	for _, e := range exps {
		dir := filepath.Join(o.Out, e.Study+"-"+e.StudyHash[:8])
		if studies[dir] != nil {
			studies[dir].runs = append(studies[dir].runs, e)
			continue
		}
		st := &study{dir: dir, runs: []record.Experiment{e}, emitted: map[string]bool{}}
		st.baselines = loadBaselines(dir)
		studies[dir] = st
		if !o.DryRun {
			if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o755); err != nil {
				return err
			}
			// Each run directory is removed and made again under runs/: a
			// runs that is a symlink would aim that removal elsewhere.
			if fi, err := os.Lstat(filepath.Join(dir, "runs")); err != nil || !fi.IsDir() {
				return fmt.Errorf("%s is not a directory (a symlink?); llem-exec removes and recreates run directories under it, so it must be a plain directory", filepath.Join(dir, "runs"))
			}
			lk, err := takeLock(filepath.Join(dir, "lock"), o.Host.Hostname)
			if err != nil {
				return err
			}
			st.lk = lk
			defer lk.release()
		}
		states, err := readJournal(filepath.Join(dir, "journal.ndjson"), warn)
		if err != nil {
			return err
		}
		st.states = states
		if !o.DryRun {
			j, err := openJournal(filepath.Join(dir, "journal.ndjson"))
			if err != nil {
				return err
			}
			st.j = j
			defer j.close()
			if err := j.append(Entry{Op: "open", PID: os.Getpid(), Host: o.Host.Hostname}); err != nil {
				return err
			}
		}
	}
	studyOf := func(e record.Experiment) *study {
		return studies[filepath.Join(o.Out, e.Study+"-"+e.StudyHash[:8])]
	}

	// Pending: every run this session will take, journalled before any runs.
	if !o.DryRun {
		for _, st := range studies {
			var pend []Entry
			for _, e := range exps {
				if studyOf(e) != st {
					continue
				}
				if s := st.states[e.RunID]; s == nil {
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
	}

	o.prompts = promptCache()
	prog := newProgress(o.Progress, len(exps))
	failed, interrupted := 0, false
	ranOne := false

	// Runs in flight: each runs in its own goroutine on its own GPUs; their
	// results come back here, where the journal, stdout and the progress are
	// written, one at a time. With one slot (the default) the loop waits for
	// each run before the next: the serial loop.
	pool := newGPUPool(o.GPUs)
	rctx, cancelRuns := context.WithCancel(ctx)
	defer cancelRuns()
	type result struct {
		e       record.Experiment
		st      *study
		attempt int
		gpus    []string
		r       record.Run
		err     error
	}
	results := make(chan result)
	inflight, stopLaunch := 0, false
	var fatal error
	collect := func() error {
		d := <-results
		inflight--
		pool.give(d.gpus)
		if d.err != nil {
			if fatal == nil {
				fatal = fmt.Errorf("run %s: %w", d.e.RunID, d.err)
				cancelRuns()
			}
			return fatal
		}
		if fatal != nil {
			return fatal
		}
		e, st, r := d.e, d.st, d.r
		seq := e.Seq
		if err := st.j.append(Entry{Op: "state", RunID: e.RunID, Seq: &seq, ID: e.ID, Status: r.Status, Attempt: d.attempt, Error: r.Error}); err != nil {
			return err
		}
		if st.states[e.RunID] == nil {
			st.states[e.RunID] = &runState{}
		}
		st.states[e.RunID].Status = r.Status
		if err := out.Write(r); err != nil {
			return err
		}
		prog.done(e, r.Status, false)
		if r.Status == record.StatusInterrupted {
			interrupted = true
			stopLaunch = true
		} else if r.Status != record.StatusOK {
			failed++
			stopLaunch = stopLaunch || o.FailFast
		}
		return nil
	}
	drain := func() error {
		var first error
		for inflight > 0 {
			if err := collect(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	defer func() { // an early return leaves no run behind
		if inflight > 0 {
			cancelRuns()
			drain()
		}
	}()
	for _, e := range exps {
		st := studyOf(e)
		s := st.states[e.RunID]
		runDir := filepath.Join(st.dir, "runs", e.RunID)
		if abs, err := filepath.Abs(runDir); err == nil {
			runDir = abs
		}
		if s != nil && s.Status == record.StatusOK {
			if o.DryRun {
				r := plannedRun(e, record.StatusDone, runDir, o.Host)
				if err := out.Write(r); err != nil {
					return err
				}
				continue
			}
			b, err := os.ReadFile(filepath.Join(runDir, "run.json"))
			if err == nil {
				var r record.Run
				if err = json.Unmarshal(b, &r); err == nil {
					for _, bl := range st.baselines {
						if bl.ID == r.BaselineID && !st.emitted[bl.ID] {
							st.emitted[bl.ID] = true
							if err := out.Write(bl); err != nil {
								return err
							}
						}
					}
					if err := out.Write(r); err != nil {
						return err
					}
					prog.done(e, record.StatusOK, true)
					continue
				}
			}
			warn(fmt.Sprintf("run %s is ok in the journal but its run.json cannot be read (%v); running it again", e.RunID, err))
		}
		if s != nil && s.Status == record.StatusFailed && o.SkipFailed {
			prog.done(e, record.StatusFailed, true)
			failed++
			continue
		}
		if o.DryRun {
			if err := out.Write(plannedRun(e, record.StatusPlanned, runDir, o.Host)); err != nil {
				return err
			}
			continue
		}
		need := gpusNeeded(e)
		for inflight > 0 && !pool.fits(need) {
			if err := collect(); err != nil {
				return err
			}
		}
		if stopLaunch {
			break
		}
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		if ranOne && par == 1 && !o.NoGaps && e.GapBeforeS > 0 {
			t := time.NewTimer(time.Duration(e.GapBeforeS * float64(time.Second)))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				interrupted = true
			}
			if interrupted {
				break
			}
		}
		ranOne = true
		var bl *record.Baseline
		blDur := o.Baseline
		if blDur < 0 {
			blDur = configBaseline(e.Config)
		}
		if o.Sampler != nil && blDur > 0 {
			if n := len(st.baselines); n > 0 && (o.BaselineTTL <= 0 || time.Since(time.Unix(0, st.baselines[n-1].Window.EndNS)) < o.BaselineTTL) {
				bl = st.baselines[n-1]
			} else {
				// Idle means idle: the runs in flight end first.
				if err := drain(); err != nil {
					return err
				}
				if stopLaunch {
					break
				}
				if o.Progress != nil {
					fmt.Fprintf(o.Progress, "llem-exec: measuring idle power for %s\n", blDur)
				}
				nb, err := measureBaseline(ctx, o, st, blDur)
				if ctx.Err() != nil {
					interrupted = true
					break
				}
				if err != nil {
					warn("idle baseline not measured: " + err.Error())
				} else {
					st.baselines = append(st.baselines, nb)
					bl = nb
				}
			}
			if bl != nil && !st.emitted[bl.ID] {
				st.emitted[bl.ID] = true
				if err := out.Write(bl); err != nil {
					return err
				}
			}
		}
		attempt := 1
		if s != nil {
			attempt = s.Attempts + 1
		}
		seq := e.Seq
		if err := st.j.append(Entry{Op: "state", RunID: e.RunID, Seq: &seq, ID: e.ID, Status: record.StatusRunning, Attempt: attempt}); err != nil {
			return err
		}
		prog.start(e)
		baseID := ""
		if bl != nil {
			baseID = bl.ID
		}
		ro := o
		ro.GPUs = pool.take(need)
		if need == 0 && len(o.GPUs) > 0 {
			// A CPU run beside GPU runs sees no GPU.
			ro.env = append(append([]string(nil), o.env...), "CUDA_VISIBLE_DEVICES=")
		}
		inflight++
		go func(e record.Experiment, st *study, attempt int) {
			var r record.Run
			var err error
			if rerr := notEnoughGPUs(e, need, o.GPUs); rerr != nil {
				r, err = refusedRun(ro, e, runDir, attempt, baseID, rerr)
			} else {
				r, err = runOne(rctx, ro, e, runDir, attempt, baseID)
			}
			results <- result{e: e, st: st, attempt: attempt, gpus: ro.GPUs, r: r, err: err}
		}(e, st, attempt)
		for inflight >= par {
			if err := collect(); err != nil {
				return err
			}
		}
		if stopLaunch {
			break
		}
	}
	if err := drain(); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	reason := "done"
	if interrupted || ctx.Err() != nil {
		reason = "interrupted"
	} else if failed > 0 && o.FailFast {
		reason = "fail-fast"
	}
	for _, st := range studies {
		if st.j != nil {
			st.j.append(Entry{Op: "close", PID: os.Getpid(), Reason: reason})
		}
	}
	prog.finish()
	switch {
	case reason == "interrupted":
		fmt.Fprintf(stderr, "llem-exec: interrupted; rerun the same stream with the same --out to resume\n")
		return &cli.Error{Code: cli.ExitInterrupted}
	case failed > 0:
		fmt.Fprintf(stderr, "llem-exec: %d run(s) did not finish ok\n", failed)
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

func plannedRun(e record.Experiment, status, runDir string, host record.Host) record.Run {
	e.Kind = record.KindRun
	return record.Run{Experiment: e, Status: status, RunDir: runDir, SampleFile: "samples.arrows",
		EventsFile: "events.ndjson", Host: host}
}

// DefaultTimeout is max(600 s, 2 s × n) where n is the config's prompt count.
func DefaultTimeout(cfg json.RawMessage) time.Duration {
	var c struct {
		N *int `json:"n"`
	}
	json.Unmarshal(cfg, &c)
	t := 600 * time.Second
	if c.N != nil {
		t = time.Duration(math.Max(600, 2*float64(*c.N))) * time.Second
	}
	return t
}

// runOne runs one experiment and builds its run record; run.json is written
// atomically last, so a run directory without run.json is an unfinished run.
func runOne(ctx context.Context, o Options, e record.Experiment, runDir string, attempt int, baselineID string) (record.Run, error) {
	if err := os.RemoveAll(runDir); err != nil {
		return record.Run{}, err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return record.Run{}, err
	}
	in := record.WorkerInput{Experiment: e, Prompts: []string{}}
	if o.prompts != nil {
		p, err := o.prompts(e)
		if err != nil {
			r := record.Run{Experiment: e, RunDir: runDir, SampleFile: "samples.arrows", EventsFile: "events.ndjson",
				Host: o.Host, Attempt: attempt, Devices: o.GPUs, BaselineID: baselineID, Samplers: []string{}, Warnings: []record.Flag{},
				Status: record.StatusFailed, Error: &record.Error{Type: "dataset", Message: err.Error(), Hint: "check the config's dataset"}}
			r.Kind = record.KindRun
			r.StartNS, r.EndNS = time.Now().UnixNano(), time.Now().UnixNano()
			return r, writeJSONAtomic(filepath.Join(runDir, "run.json"), r)
		}
		in.Prompts = p
	}
	expFile := filepath.Join(runDir, "experiment.json")
	if err := writeJSONAtomic(expFile, in); err != nil {
		return record.Run{}, err
	}
	evf, err := os.Create(filepath.Join(runDir, "events.ndjson"))
	if err != nil {
		return record.Run{}, err
	}
	defer evf.Close()
	lf, err := os.Create(filepath.Join(runDir, "worker.log"))
	if err != nil {
		return record.Run{}, err
	}
	defer lf.Close()
	logMax := o.LogMax
	if logMax <= 0 {
		logMax = 256 << 20
	}
	lw := &logWriter{w: bufio.NewWriterSize(lf, 64<<10), max: logMax}
	col := newCollector(evf, lw, o.EventsMax)

	r := record.Run{Experiment: e, RunDir: runDir, SampleFile: "samples.arrows", EventsFile: "events.ndjson",
		Host: o.Host, Attempt: attempt, Devices: o.GPUs, BaselineID: baselineID, Samplers: []string{}, Warnings: []record.Flag{}}
	r.Kind = record.KindRun

	var sess SamplerSession
	if o.Sampler != nil {
		sess, err = startSampler(o, filepath.Join(runDir, "samples.arrows"))
		if err != nil {
			r.Warnings = append(r.Warnings, record.Flag{Code: "sampler_failed", Message: "the sampler did not start: " + err.Error()})
			sess = nil
		}
	}

	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout(e.Config)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	col.onCut = cancel
	rt := e.Runner.Type
	if rt == "" {
		rt = "local"
	}
	argv := o.Workers[e.Backend]
	grace := o.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	spec := runner.Spec{Experiment: e, RunDir: runDir, ExperimentFile: expFile, Command: argv,
		GPUs: o.GPUs, Env: o.env, Stdout: col, Stderr: lw, Grace: grace, Kill: o.Kill}
	guard := newDirGuard(runDir, evf, lf)
	r.StartNS = time.Now().UnixNano()
	res, err := o.Runners[rt].Run(rctx, spec)
	r.EndNS = time.Now().UnixNano()
	r.DurationS = float64(r.EndNS-r.StartNS) / 1e9
	if err != nil {
		return r, err
	}
	timedOut := errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	intr := ctx.Err() != nil || (o.Interrupted != nil && o.Interrupted())

	if sess != nil {
		info, err := sess.Stop()
		if err != nil {
			r.Warnings = append(r.Warnings, record.Flag{Code: "sampler_failed", Message: "the sampler failed: " + err.Error()})
		}
		if info.Sources != nil {
			r.Samplers = info.Sources
		}
		if len(info.Devices) > 0 {
			r.Devices = info.Devices
		}
		r.Estimate = info.Estimate
		if o.Parallel > 1 {
			for _, src := range r.Samplers {
				if src == "rapl" || src == "estimate" {
					r.Warnings = append(r.Warnings, record.Flag{Code: "host_power_shared",
						Message: fmt.Sprintf("--parallel %d: %s power is the whole node's and includes the runs beside this one", o.Parallel, src),
						Hint:    "attribute CPU-side energy only from serial runs"})
					break
				}
			}
		}
	}
	if err := col.finish(); err != nil {
		return r, err
	}
	// A write error (a full disk, a read-only remount) sticks in the
	// buffered writers: a run whose files are incomplete is not written up
	// as ok, and llem-exec stops with the error; resume reruns it.
	lw.mu.Lock()
	lerr := lw.w.Flush()
	lw.mu.Unlock()
	if lerr != nil {
		return r, fmt.Errorf("worker.log: %w", lerr)
	}
	if err := evf.Sync(); err != nil {
		return r, fmt.Errorf("events.ndjson: %w", err)
	}
	if err := lf.Sync(); err != nil {
		return r, fmt.Errorf("worker.log: %w", err)
	}

	ph, pflags := col.phases()
	r.Phases = ph
	r.Totals, r.Warmup, r.ModelFacts, r.Memory = col.totals, col.warmup, col.model, col.memory
	r.Warnings = append(r.Warnings, col.flags()...)
	r.Warnings = append(r.Warnings, pflags...)
	exit := res.ExitCode
	wk := &record.Worker{Backend: e.Backend, Command: argv}
	if rt != "local" {
		wk.Command = nil // the image's entrypoint ran (container in the record)
	}
	if !res.Signaled && res.Err == nil {
		wk.ExitCode = &exit
	}
	if col.hello != nil {
		wk.Version, wk.PID = col.hello.Version, col.hello.PID
	}
	r.Worker = wk
	r.Container = res.Container
	last := string(lw.lastLine)

	tampered := guard.check()
	switch {
	case intr:
		r.Status = record.StatusInterrupted
		r.Error = &record.Error{Type: "interrupted", Message: "llem-exec was interrupted; the worker was stopped",
			Hint: "rerun the same stream with the same --out to resume"}
	case tampered != "":
		r.Status = record.StatusFailed
		r.Error = &record.Error{Type: "run_dir_tampered", Message: tampered,
			Hint: "a worker may write files in its run directory but must not replace the ones llem-exec keeps there"}
	case col.eventsCut:
		r.Status = record.StatusFailed
		r.Error = &record.Error{Type: "worker_flood", Message: fmt.Sprintf("the worker wrote more than %d bytes of protocol events; it was stopped and events.ndjson was cut there", col.eventsMax),
			Hint: "a worker writes one request event per measured request; check it for a loop"}
	case timedOut:
		r.Status = record.StatusTimeout
		r.Error = &record.Error{Type: "timeout", Message: fmt.Sprintf("worker exceeded the timeout of %s and was killed with its process group", timeout),
			Hint: "raise --timeout if the experiment needs longer"}
	case res.Err != nil:
		r.Status = record.StatusFailed
		r.Error = res.Err
	case col.errEv != nil:
		r.Status = record.StatusFailed
		r.Error = &record.Error{Type: "worker_error", Code: col.errEv.Code, Message: nonEmpty(col.errEv.Message, col.errEv.Code), Hint: col.errEv.Hint}
	case res.Signaled:
		r.Status = record.StatusFailed
		r.Error = &record.Error{Type: "crash", Message: "worker was killed by a signal without an error event" + lastLine(last), Hint: "see worker.log in the run directory"}
	case exit != 0:
		r.Status = record.StatusFailed
		r.Error = &record.Error{Type: "crash", Message: fmt.Sprintf("worker exited with code %d without an error event%s", exit, lastLine(last)), Hint: "see worker.log in the run directory"}
	case !col.done:
		r.Status = record.StatusFailed
		r.Error = &record.Error{Type: "no_done", Message: "worker exited 0 without a done event" + lastLine(last), Hint: "a worker must end a good run with a done event"}
	default:
		r.Status = record.StatusOK
	}
	if err := writeJSONAtomic(filepath.Join(runDir, "run.json"), r); err != nil {
		return r, err
	}
	return r, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func lastLine(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf(" (last stderr line: %q)", s)
}

// HostFacts fills what the Go runtime and the kernel say about this machine.
func HostFacts() record.Host { return record.HostFacts("/proc") }

package runloop

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/cpuattr"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
)

// runOne runs one experiment and builds its run record; run.json is written
// atomically last, so a run directory without run.json is an unfinished run.
// An error is a run that could not be carried out (its files could not be
// written, the runner failed): the loop stops with it. Everything else,
// failures of the worker included, is in the record's status.
func runOne(ctx context.Context, o Options, e record.Experiment, runDir string, attempt int, baselineID string) (record.Run, error) {
	a := &oneRun{o: o, e: e, dir: runDir, r: baseRun(o, e, runDir, attempt, baselineID)}
	defer a.close()
	if done, err := a.prepare(); done || err != nil {
		return a.r, err
	}
	a.cpuTarget()
	a.startSampler()
	en, err := a.execute(ctx)
	if err != nil {
		a.stopSampler()
		return a.r, err
	}
	a.stopSampler()
	a.closeTarget()
	if err := a.flush(); err != nil {
		return a.r, err
	}
	a.fill(en.res)
	en.tampered = a.guard.check()
	en.eventsCut, en.eventsMax = a.col.eventsCut, a.col.eventsMax
	en.errEv, en.done, en.lastLine = a.col.errEv, a.col.done, string(a.lw.lastLine)
	_, en.serving = a.ex.(*serveExecution)
	a.r.Status, a.r.Error = en.verdict()
	return a.r, writeJSONAtomic(filepath.Join(runDir, "run.json"), a.r)
}

// oneRun is one attempt at one experiment, from its fresh run directory to
// its run record. Its steps, in runOne's order: prepare (the directory,
// experiment.json, the files the worker's output goes to), startSampler,
// execute (the worker, under the run's timeout), stopSampler, flush (every
// file on disk), fill (the record from the events), and the verdict.
type oneRun struct {
	o   Options
	e   record.Experiment
	dir string
	r   record.Run

	expFile string
	evf, lf *os.File   // events.ndjson, worker.log
	lw      *logWriter // worker.log, capped
	col     *collector // the worker's stdout: events
	sess    SamplerSession
	guard   *dirGuard
	prompts []string        // the experiment's prompts, as in experiment.json
	ex      execution       // how the experiment is carried out (executionFor)
	target  *cpuattr.Target // where the run's CPU time is read; nil: not read
}

// baseRun is the run record before the run: what the experiment and this
// attempt say.
func baseRun(o Options, e record.Experiment, runDir string, attempt int, baselineID string) record.Run {
	r := record.Run{Experiment: e, RunDir: runDir, SampleFile: "samples.arrows", EventsFile: "events.ndjson",
		Host: o.Host, Attempt: attempt, Devices: o.GPUs, BaselineID: baselineID, Samplers: []string{}, Warnings: []record.Flag{}}
	r.Kind = record.KindRun
	return r
}

func plannedRun(e record.Experiment, status, runDir string, host record.Host) record.Run {
	e.Kind = record.KindRun
	return record.Run{Experiment: e, Status: status, RunDir: runDir, SampleFile: "samples.arrows",
		EventsFile: "events.ndjson", Host: host}
}

// prepare makes the run directory afresh and writes experiment.json with the
// prompts; done is true when the run ends here, failed (its prompts could
// not be loaded), with its run.json written.
func (a *oneRun) prepare() (done bool, err error) {
	if err := os.RemoveAll(a.dir); err != nil {
		return true, err
	}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return true, err
	}
	in := record.WorkerInput{Experiment: a.e, Prompts: []string{}}
	if a.o.prompts != nil {
		p, err := a.o.prompts(a.e)
		if err != nil {
			a.r.Status = record.StatusFailed
			a.r.Error = &record.Error{Type: record.ErrDataset, Message: err.Error(), Hint: "check the config's dataset"}
			a.r.StartNS, a.r.EndNS = time.Now().UnixNano(), time.Now().UnixNano()
			return true, writeJSONAtomic(filepath.Join(a.dir, "run.json"), a.r)
		}
		in.Prompts = p
	}
	a.prompts = in.Prompts
	a.expFile = filepath.Join(a.dir, "experiment.json")
	if err := writeJSONAtomic(a.expFile, in); err != nil {
		return true, err
	}
	if a.evf, err = os.Create(filepath.Join(a.dir, "events.ndjson")); err != nil {
		return true, err
	}
	if a.lf, err = os.Create(filepath.Join(a.dir, "worker.log")); err != nil {
		return true, err
	}
	logMax := a.o.LogMax
	if logMax <= 0 {
		logMax = 256 << 20
	}
	a.lw = &logWriter{w: bufio.NewWriterSize(a.lf, 64<<10), max: logMax}
	a.col = newCollector(a.evf, a.lw, a.o.EventsMax)
	return false, nil
}

func (a *oneRun) close() {
	if a.evf != nil {
		a.evf.Close()
	}
	if a.lf != nil {
		a.lf.Close()
	}
}

// startSampler starts recording power into samples.arrows; a sampler that
// does not start is a warning, and the run goes on unsampled.
func (a *oneRun) startSampler() {
	if a.o.Sampler == nil {
		return
	}
	sess, err := startSampler(a.o, filepath.Join(a.dir, "samples.arrows"), a.target)
	if err != nil {
		a.r.Warnings = append(a.r.Warnings, record.Flag{Code: "sampler_failed", Message: "the sampler did not start: " + err.Error()})
		return
	}
	a.sess = sess
}

// cpuTarget makes the place the run's CPU time is read from: a cgroup of
// its own for a local worker (where cgroup v2 is writable, else its
// process tree), the process tree of a container's first process.
func (a *oneRun) cpuTarget() {
	if a.o.Sampler == nil {
		return
	}
	if _, ok := a.o.Sampler.(RunSampler); !ok {
		return
	}
	if runnerOf(a.e) == "local" {
		a.target = cpuattr.New(a.o.cpuPaths, fmt.Sprintf("llem-%s-%d", a.e.RunID, os.Getpid()))
	} else {
		a.target = cpuattr.ProcessTree(a.o.cpuPaths, "the worker runs in a container")
	}
	a.r.CPUTime = a.target.RunCPU().Method()
}

// closeTarget removes the run's cgroup; one left behind is a warning.
func (a *oneRun) closeTarget() {
	if a.target == nil {
		return
	}
	if err := a.target.Close(); err != nil {
		a.r.Warnings = append(a.r.Warnings, record.Flag{Code: "cgroup_left", Message: err.Error(), Hint: "remove it with rmdir once its processes are gone"})
	}
}

// execution is how a run's experiment is carried out, between its files and
// sampler being ready and its events being collected into the record.
//
// A batch run (batchExecution): the runner starts the worker, which runs
// the experiment itself, writes the protocol's events to spec.Stdout and
// exits. A serving run (serveExecution, serve.go): the runner starts the
// backend's OpenAI-compatible server, llem-exec health-checks it, drives
// traffic at it and stops it, writing the protocol's events into
// spec.Stdout itself. All around execute stays as it is: the run
// directory, the sampler, the timeout and interrupt (ctx), the events'
// collection, the verdict and run.json. executionFor picks the execution
// of an experiment.
type execution interface {
	execute(ctx context.Context, rn runner.Runner, spec runner.Spec) (runner.Result, error)
}

// batchExecution runs the experiment's worker to its end.
type batchExecution struct{}

func (batchExecution) execute(ctx context.Context, rn runner.Runner, spec runner.Spec) (runner.Result, error) {
	return rn.Run(ctx, spec)
}

// executionFor is the execution of a's experiment: a serving run when its
// config has a serving section, else a batch run.
func executionFor(a *oneRun) execution {
	if !hasServing(a.e.Config) {
		return batchExecution{}
	}
	return newServeExecution(a.o, a.e, a.prompts)
}

// hasServing reports a config with a non-null serving section; it reads
// leniently, as config.ReadRunFacts does.
func hasServing(cfg json.RawMessage) bool {
	var probe struct {
		Serving json.RawMessage `json:"serving"`
	}
	if json.Unmarshal(cfg, &probe) != nil {
		return false
	}
	return len(probe.Serving) > 0 && string(probe.Serving) != "null"
}

// execute carries out the run under its timeout (--timeout, else
// config.RunFacts.Timeout) and says how it ended. A worker that floods events is
// stopped like one past its timeout.
func (a *oneRun) execute(ctx context.Context) (ending, error) {
	grace := a.o.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	a.ex = executionFor(a)
	timeout := a.o.Timeout
	if timeout <= 0 {
		timeout = config.ReadRunFacts(a.e.Config).Timeout()
		if se, ok := a.ex.(*serveExecution); ok {
			// The plan knows a trace's length and the server's stop (two
			// graces), which the config's rule leaves to its margin.
			timeout = max(timeout, se.timeout(grace))
		}
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	a.col.onCut = cancel
	spec := runner.Spec{Experiment: a.e, RunDir: a.dir, ExperimentFile: a.expFile, Command: a.o.Workers[a.e.Backend],
		GPUs: a.o.GPUs, Env: a.o.env, Stdout: a.col, Stderr: a.lw, Grace: grace, Kill: a.o.Kill}
	if t := a.target; t != nil {
		spec.CgroupDir = t.CgroupDir()
		spec.Started = func(pid int) {
			if err := t.Add(pid); err != nil {
				a.r.Warnings = append(a.r.Warnings, record.Flag{Code: "cgroup_move_failed", Message: err.Error(),
					Hint: "children the worker started before the move are not counted; aggregate with --attribution machine for the machine-wide figure"})
			}
		}
	}
	a.guard = newDirGuard(a.dir, a.evf, a.lf)
	a.r.StartNS = time.Now().UnixNano()
	res, err := a.ex.execute(rctx, a.o.Runners[runnerOf(a.e)], spec)
	a.r.EndNS = time.Now().UnixNano()
	a.r.DurationS = float64(a.r.EndNS-a.r.StartNS) / 1e9
	return ending{res: res, timeout: timeout,
		timedOut:    errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil,
		interrupted: ctx.Err() != nil || (a.o.Interrupted != nil && a.o.Interrupted())}, err
}

// stopSampler ends the recording and puts what it covered into the record.
func (a *oneRun) stopSampler() {
	if a.sess == nil {
		return
	}
	info, err := a.sess.Stop()
	a.sess = nil
	if err != nil {
		a.r.Warnings = append(a.r.Warnings, record.Flag{Code: "sampler_failed", Message: "the sampler failed: " + err.Error()})
	}
	if info.Sources != nil {
		a.r.Samplers = info.Sources
	}
	if len(info.Devices) > 0 {
		a.r.Devices = info.Devices
	}
	a.r.Estimate = info.Estimate
	if a.o.Parallel <= 1 {
		return
	}
	for _, src := range a.r.Samplers {
		if src == "rapl" || src == "estimate" {
			f := record.Flag{Code: "host_power_shared",
				Message: fmt.Sprintf("--parallel %d: %s power is the whole node's and includes the runs beside this one", a.o.Parallel, src),
				Hint:    "attribute CPU-side energy only from serial runs"}
			if a.target != nil {
				f.Message += "; llem-aggregate attributes it to this run by its share of the CPU time (" + a.r.CPUTime + ")"
				f.Hint = "the process attribution (llem-aggregate's default) separates the runs; --attribution machine figures overlap"
			}
			a.r.Warnings = append(a.r.Warnings, f)
			return
		}
	}
}

// flush puts the run's files on disk. A write error (a full disk, a
// read-only remount) sticks in the buffered writers: a run whose files are
// incomplete is not written up as ok, and llem-exec stops with the error;
// resume reruns it.
func (a *oneRun) flush() error {
	if err := a.col.finish(); err != nil {
		return err
	}
	a.lw.mu.Lock()
	lerr := a.lw.w.Flush()
	a.lw.mu.Unlock()
	if lerr != nil {
		return fmt.Errorf("worker.log: %w", lerr)
	}
	if err := a.evf.Sync(); err != nil {
		return fmt.Errorf("events.ndjson: %w", err)
	}
	if err := a.lf.Sync(); err != nil {
		return fmt.Errorf("worker.log: %w", err)
	}
	return nil
}

// fill puts what the worker's events and its end say into the record.
func (a *oneRun) fill(res runner.Result) {
	ph, pflags := a.col.phases()
	a.r.Phases = ph
	a.r.Totals, a.r.Warmup, a.r.ModelFacts, a.r.Memory = a.col.totals, a.col.warmup, a.col.model, a.col.memory
	a.r.Warnings = append(a.r.Warnings, a.col.flags()...)
	a.r.Warnings = append(a.r.Warnings, pflags...)
	exit := res.ExitCode
	wk := &record.Worker{Backend: a.e.Backend, Command: a.o.Workers[a.e.Backend]}
	if se, ok := a.ex.(*serveExecution); ok {
		a.r.RequestsFile = requestsFile
		wk.Command = se.argv // nil with an endpoint: no server was started
		if se.argv != nil {
			a.r.ServerLog = serverLog
		}
	}
	if runnerOf(a.e) != "local" {
		wk.Command = nil // the image's entrypoint ran (container in the record)
	}
	if !res.Signaled && res.Err == nil {
		wk.ExitCode = &exit
	}
	if a.col.hello != nil {
		wk.Version, wk.PID = a.col.hello.Version, a.col.hello.PID
	}
	a.r.Worker = wk
	a.r.Container = res.Container
}

// ending is what decides a run's status: how its worker ended and what
// llem-exec saw of it.
type ending struct {
	interrupted bool          // llem-exec was interrupted while the run ran
	tampered    string        // what the worker did to the run directory's files; "" nothing
	eventsCut   bool          // the worker wrote more than eventsMax bytes of events
	eventsMax   int64         // the limit it passed
	timedOut    bool          // the run's timeout passed
	timeout     time.Duration // the limit it passed
	res         runner.Result // the runner's account
	errEv       *record.Event // the worker's first error event
	done        bool          // the worker sent its done event
	lastLine    string        // the worker's last stderr line
	serving     bool          // a serving run: res.Err says all; the server's exit after llem-exec stopped it does not count
}

// stoppedFromOutside reports a worker that exited with the interrupted code
// of the exit-code table, saying (if anything) only that it was interrupted:
// a SIGTERM or SIGINT sent to every process at once (scancel, a shutdown)
// can reach the worker before llem-exec has acted on its own copy, and such a
// run was interrupted, not failed.
func (en ending) stoppedFromOutside() bool {
	return en.res.ExitCode == cli.ExitInterrupted &&
		(en.errEv == nil || en.errEv.Code == "interrupted" || en.errEv.Code == "terminated")
}

// verdict is the run's status and error: the first of these that holds, in
// this order (an interrupt explains a timeout or a crash; a worker's own
// error event explains its exit code).
func (en ending) verdict() (string, *record.Error) {
	const seeLog = "see worker.log in the run directory"
	stopped := "the worker was stopped"
	if en.serving {
		stopped = "the server was stopped"
	}
	switch exit := en.res.ExitCode; {
	case en.interrupted:
		return record.StatusInterrupted, &record.Error{Type: record.ErrInterrupted, Message: "llem-exec was interrupted; " + stopped,
			Hint: "rerun the same stream with the same --out to resume"}
	case en.tampered != "":
		return record.StatusFailed, &record.Error{Type: record.ErrRunDirTampered, Message: en.tampered,
			Hint: "a worker may write files in its run directory but must not replace the ones llem-exec keeps there"}
	case en.eventsCut:
		return record.StatusFailed, &record.Error{Type: record.ErrWorkerFlood, Message: fmt.Sprintf("the worker wrote more than %d bytes of protocol events; it was stopped and events.ndjson was cut there", en.eventsMax),
			Hint: "a worker writes one request event per measured request; check it for a loop"}
	case en.timedOut:
		msg := fmt.Sprintf("worker exceeded the timeout of %s and was killed with its process group", en.timeout)
		if en.serving {
			msg = fmt.Sprintf("the serving run exceeded the timeout of %s; the server was stopped", en.timeout)
		}
		return record.StatusTimeout, &record.Error{Type: record.ErrTimeout, Message: msg,
			Hint: "raise --timeout if the experiment needs longer"}
	case en.res.Err != nil:
		return record.StatusFailed, en.res.Err
	case en.serving:
		return record.StatusOK, nil
	case en.stoppedFromOutside():
		return record.StatusInterrupted, &record.Error{Type: record.ErrInterrupted,
			Message: fmt.Sprintf("the worker was stopped by a signal that did not come through llem-exec (e.g. scancel or a shutdown signalling every process) and exited %d", exit),
			Hint:    "rerun the same stream with the same --out to resume"}
	case en.errEv != nil:
		return record.StatusFailed, &record.Error{Type: record.ErrWorkerError, Code: en.errEv.Code, Message: nonEmpty(en.errEv.Message, en.errEv.Code), Hint: en.errEv.Hint}
	case en.res.Signaled:
		return record.StatusFailed, &record.Error{Type: record.ErrCrash, Message: "worker was killed by a signal without an error event" + lastLine(en.lastLine), Hint: seeLog}
	case exit != 0:
		return record.StatusFailed, &record.Error{Type: record.ErrCrash, Message: fmt.Sprintf("worker exited with code %d without an error event%s", exit, lastLine(en.lastLine)), Hint: seeLog}
	case !en.done:
		return record.StatusFailed, &record.Error{Type: record.ErrNoDone, Message: "worker exited 0 without a done event" + lastLine(en.lastLine), Hint: "a worker must end a good run with a done event"}
	}
	return record.StatusOK, nil
}

func lastLine(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf(" (last stderr line: %q)", s)
}

// Package local runs a worker as a local process in its own process group.
// When the context is cancelled (timeout or interrupt) the whole group gets
// SIGTERM, then SIGKILL after the grace period; when the worker exits, anything
// it left behind in its group (grandchildren) is killed, so nothing outlives a run.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
)

// Runner is the local process runner.
type Runner struct{}

var _ runner.Runner = (*Runner)(nil)

// New returns a local runner.
func New() *Runner { return &Runner{} }

// Name is "local".
func (*Runner) Name() string { return "local" }

// Preflight has nothing to check for local processes: the run loop resolves
// every backend's worker command before it starts.
func (*Runner) Preflight(context.Context, []record.Experiment) error { return nil }

// drainWait bounds how long Run waits for the worker's pipes to close after the
// group was killed: a descendant that escaped the group (setsid) may hold them.
const drainWait = 2 * time.Second

// Run starts spec.Command and blocks until it and its process group are gone.
func (*Runner) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	res := runner.Result{ExitCode: -1}
	if len(spec.Command) == 0 {
		res.Err = &record.Error{Type: record.ErrSpawn, Message: "no worker command", Hint: "give one with --worker BACKEND=CMD"}
		return res, nil
	}
	p, err := openPipes()
	if err != nil {
		return res, err
	}
	cmd, err := start(spec, p)
	if err != nil {
		p.closeWrite()
		p.closeRead()
		res.Err = &record.Error{Type: record.ErrSpawn, Message: fmt.Sprintf("cannot start worker %q: %v", spec.Command[0], err),
			Hint: "check the worker command (--worker BACKEND=CMD) and that it is executable"}
		return res, nil
	}
	p.closeWrite()
	pgid := cmd.Process.Pid
	if spec.Started != nil {
		spec.Started(pgid)
	}
	drained := p.pump(spec.Stdout, spec.Stderr)
	werr := wait(ctx, cmd, pgid, spec)
	// Whatever the worker left in its group dies with it.
	syscall.Kill(-pgid, syscall.SIGKILL)
	waitGroupGone(pgid, drainWait)
	p.drain(drained)

	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && st.Signaled() {
		res.Signaled = true
		res.ExitCode = -1
	} else if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return res, fmt.Errorf("wait for worker: %w", werr)
	}
	return res, nil
}

// command is the worker's process: its environment (the protocol's
// variables, its GPUs, spec.Env), the run directory as working directory,
// and a process group of its own.
func command(spec runner.Spec) *exec.Cmd {
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Env = append(os.Environ(), "LLEM_EXPERIMENT="+spec.ExperimentFile, "LLEM_RUN_DIR="+spec.RunDir)
	if len(spec.GPUs) > 0 {
		cmd.Env = append(cmd.Env, "CUDA_VISIBLE_DEVICES="+strings.Join(spec.GPUs, ","))
	}
	cmd.Env = append(cmd.Env, spec.Env...)
	cmd.Dir = spec.RunDir
	// Pdeathsig: a llem-exec killed with SIGKILL takes its worker with it, so a
	// resumed study never races an orphan writing into the run directory.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// start starts the worker with its output into p, inside spec.CgroupDir
// where one is given (so not even a child it forks at once escapes it); a
// kernel that cannot start a process in a cgroup gets a plain start, and
// Started's caller moves the process there.
func start(spec runner.Spec, p *pipes) (*exec.Cmd, error) {
	cmd := command(spec)
	cmd.Stdout, cmd.Stderr = p.outW, p.errW
	if spec.CgroupDir == "" {
		return cmd, cmd.Start()
	}
	dir, err := os.Open(spec.CgroupDir)
	if err == nil {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
		err = cmd.Start()
		dir.Close()
		if err == nil {
			return cmd, nil
		}
	}
	cmd = command(spec)
	cmd.Stdout, cmd.Stderr = p.outW, p.errW
	return cmd, cmd.Start()
}

// wait waits for the worker to exit. When ctx ends first, its group gets
// SIGTERM, then SIGKILL after spec.Grace or at once when spec.Kill closes.
func wait(ctx context.Context, cmd *exec.Cmd, pgid int, spec runner.Spec) error {
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case werr := <-waited:
		return werr
	case <-ctx.Done():
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	grace := time.NewTimer(spec.Grace)
	defer grace.Stop()
	select {
	case werr := <-waited:
		return werr
	case <-grace.C:
	case <-spec.Kill:
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	return <-waited
}

// pipes carry the worker's stdout and stderr: the write ends are the
// worker's, the read ends are pumped into the spec's writers.
type pipes struct{ outR, outW, errR, errW *os.File }

func openPipes() (*pipes, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("worker stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("worker stderr pipe: %w", err)
	}
	return &pipes{outR: outR, outW: outW, errR: errR, errW: errW}, nil
}

func (p *pipes) closeWrite() { p.outW.Close(); p.errW.Close() }
func (p *pipes) closeRead()  { p.outR.Close(); p.errR.Close() }

// pump copies both read ends into stdout and stderr (nil: discarded) until
// every writer has closed them; the channel closes then.
func (p *pipes) pump(stdout, stderr io.Writer) <-chan struct{} {
	var wg sync.WaitGroup
	copyTo := func(r *os.File, w io.Writer) {
		defer wg.Done()
		if w == nil {
			w = io.Discard
		}
		io.Copy(w, r)
	}
	wg.Add(2)
	go copyTo(p.outR, stdout)
	go copyTo(p.errR, stderr)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	return drained
}

// drain waits for the pumps, at most drainWait: a descendant that escaped
// the group may hold the pipes open, so then the read ends are closed.
func (p *pipes) drain(drained <-chan struct{}) {
	select {
	case <-drained:
	case <-time.After(drainWait):
		p.closeRead()
		<-drained
	}
	p.closeRead()
}

// waitGroupGone polls until no process of the group is left (kill -0 fails).
func waitGroupGone(pgid int, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); err != nil {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

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

	outR, outW, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("worker stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return res, fmt.Errorf("worker stderr pipe: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		res.Err = &record.Error{Type: record.ErrSpawn, Message: fmt.Sprintf("cannot start worker %q: %v", spec.Command[0], err),
			Hint: "check the worker command (--worker BACKEND=CMD) and that it is executable"}
		return res, nil
	}
	outW.Close()
	errW.Close()
	pgid := cmd.Process.Pid

	var wg sync.WaitGroup
	pump := func(r *os.File, w io.Writer) {
		defer wg.Done()
		if w == nil {
			w = io.Discard
		}
		io.Copy(w, r)
	}
	wg.Add(2)
	go pump(outR, spec.Stdout)
	go pump(errR, spec.Stderr)

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		syscall.Kill(-pgid, syscall.SIGTERM)
		grace := time.NewTimer(spec.Grace)
		select {
		case werr = <-waited:
		case <-grace.C:
			syscall.Kill(-pgid, syscall.SIGKILL)
			werr = <-waited
		case <-spec.Kill:
			syscall.Kill(-pgid, syscall.SIGKILL)
			werr = <-waited
		}
		grace.Stop()
	}
	// Whatever the worker left in its group dies with it.
	syscall.Kill(-pgid, syscall.SIGKILL)
	waitGroupGone(pgid, drainWait)

	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainWait):
		outR.Close()
		errR.Close()
		<-drained
	}
	outR.Close()
	errR.Close()

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

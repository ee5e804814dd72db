// Package runner starts one experiment's worker somewhere — a local process
// group or a container — and hands its stdout (the worker protocol's events)
// and stderr back to the run loop. The loop in internal/runloop does not know which
// runner it drives.
package runner

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/llem/llem/internal/record"
)

// Spec is everything a runner needs to start one worker.
type Spec struct {
	Experiment record.Experiment
	// RunDir is the run's directory on the host; the worker gets it (or its
	// mount point) in LLEM_RUN_DIR. ExperimentFile is RunDir/experiment.json.
	RunDir         string
	ExperimentFile string
	// Command is the worker's argv for the local runner (found by backend name
	// or given by --worker BACKEND=CMD). Container runners use their image's
	// entrypoint and the embedded worker sources instead.
	Command []string
	// Env is added to the worker's environment (KEY=VALUE). Secrets such as
	// HF_TOKEN travel here and nowhere else: never in argv, records or logs.
	Env []string
	// GPUs are the UUIDs of the GPUs this run may use (exported as
	// CUDA_VISIBLE_DEVICES, or as the container's device request).
	GPUs []string
	// Stdout receives the worker's stdout (NDJSON events) as it comes;
	// Stderr receives everything else the worker prints (kept in worker.log).
	Stdout io.Writer
	Stderr io.Writer
	// Grace is how long a worker gets between SIGTERM and SIGKILL when ctx is
	// cancelled (interrupt or timeout).
	Grace time.Duration
	// Kill, when closed during the grace period, SIGKILLs the worker at once
	// (a second interrupt). Nil means wait out the grace. Added by llem-exec.
	Kill <-chan struct{}
	// Server, when set, makes this the run of a server rather than of a
	// worker (a serving experiment): Command is the server's argv, run as
	// it is, and the server listens on Server.Port. Nil for a batch run.
	Server *ServerSpec
	// CgroupDir, when set, is the cgroup v2 the local runner starts the
	// worker in (CLONE_INTO_CGROUP), so that its CPU time and its
	// children's can be read; runners that cannot use it ignore it.
	CgroupDir string
	// Started, when set, is called with the worker's first process id (a
	// container's first process as the host sees it) once it runs.
	Started func(pid int)
}

// ServerSpec is what a runner needs to know of a server it starts. The
// local runner needs nothing more (the argv names the loopback address);
// the docker runner runs the argv as the container's command in the
// backend's image and publishes Port on the host's 127.0.0.1 only, so the
// server is reachable from this host alone.
type ServerSpec struct {
	Port int
}

// Result is how a worker ended.
type Result struct {
	ExitCode  int               // -1 when killed by a signal or never started
	Signaled  bool              // killed by a signal
	Container *record.Container // docker runner only
	// Err is a classified start or engine error (image missing, GPU
	// unavailable, OOM-killed, permission, ...), nil when the worker ran and
	// exited on its own.
	Err *record.Error
}

// Runner runs workers. Run blocks until the worker and everything it started
// are gone; when ctx is cancelled the worker gets SIGTERM, then SIGKILL after
// Spec.Grace, and nothing is left running when Run returns.
type Runner interface {
	Name() string // local | docker
	// Preflight checks, once per stream, that the runner can run these
	// experiments at all; each failure carries a fix hint.
	Preflight(ctx context.Context, exps []record.Experiment) error
	Run(ctx context.Context, spec Spec) (Result, error)
}

// Lazy is a runner made on its first use, so a stream that never uses it
// never needs what making it needs (the docker runner: a client for the
// engine named by DOCKER_HOST). A failure to make it is returned by
// Preflight (and Run) each time.
func Lazy(name string, mk func() (Runner, error)) Runner { return &lazy{name: name, mk: mk} }

type lazy struct {
	name string
	mk   func() (Runner, error)
	once sync.Once
	r    Runner
	err  error
}

func (l *lazy) get() (Runner, error) {
	l.once.Do(func() { l.r, l.err = l.mk() })
	return l.r, l.err
}

func (l *lazy) Name() string { return l.name }

func (l *lazy) Preflight(ctx context.Context, exps []record.Experiment) error {
	r, err := l.get()
	if err != nil {
		return err
	}
	return r.Preflight(ctx, exps)
}

func (l *lazy) Run(ctx context.Context, spec Spec) (Result, error) {
	r, err := l.get()
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	return r.Run(ctx, spec)
}

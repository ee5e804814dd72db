package local

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
)

// watch is a writer that closes seen once what was written contains want.
type watch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func newWatch(want string) *watch { return &watch{want: want, seen: make(chan struct{})} }

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.want != "" && strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// A worker that cannot start is a spawn error in the result, not an error of Run.
func TestSpawn(t *testing.T) {
	for _, argv := range [][]string{nil, {"/nonexistent/worker"}} {
		res, err := New().Run(context.Background(), runner.Spec{Command: argv, RunDir: t.TempDir()})
		if err != nil || res.Err == nil || res.Err.Type != record.ErrSpawn || res.Err.Hint == "" || res.ExitCode != -1 {
			t.Errorf("%v: %+v %v, want a spawn error with a hint", argv, res, err)
		}
	}
}

// The worker's stdout and stderr reach the spec's writers, its environment
// has the protocol's variables, its GPUs and spec.Env, and its exit code comes back.
func TestOutputEnvAndExit(t *testing.T) {
	dir := t.TempDir()
	out, errw := newWatch(""), newWatch("")
	spec := runner.Spec{RunDir: dir, ExperimentFile: dir + "/experiment.json", GPUs: []string{"GPU-a", "GPU-b"}, Env: []string{"X=y"},
		Command: sh(`echo "$LLEM_EXPERIMENT $LLEM_RUN_DIR $CUDA_VISIBLE_DEVICES $X $(pwd)"; echo oops >&2; exit 3`), Stdout: out, Stderr: errw}
	res, err := New().Run(context.Background(), spec)
	if err != nil || res.Err != nil || res.ExitCode != 3 || res.Signaled {
		t.Fatalf("%+v %v, want exit 3", res, err)
	}
	if want := dir + "/experiment.json " + dir + " GPU-a,GPU-b y " + dir + "\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if errw.String() != "oops\n" {
		t.Errorf("stderr %q", errw.String())
	}
}

// A worker that ignores SIGTERM is killed at once when Kill closes, long
// before its grace (an hour) is out; nothing of its group is left.
func TestKillDuringGrace(t *testing.T) {
	out := newWatch("ready")
	kill := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	spec := runner.Spec{RunDir: t.TempDir(), Command: sh(`trap '' TERM; echo ready; while :; do sleep 1; done`),
		Stdout: out, Grace: time.Hour, Kill: kill}
	done := make(chan runner.Result, 1)
	go func() {
		res, err := New().Run(ctx, spec)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	<-out.seen
	cancel()
	close(kill)
	if res := <-done; !res.Signaled || res.ExitCode != -1 {
		t.Fatalf("%+v, want killed by a signal", res)
	}
}

package runloop

import (
	"strings"
	"testing"
	"time"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
)

// TestVerdict: each way a run can end gives its status and error type, and
// where several hold the first in verdict's order wins.
func TestVerdict(t *testing.T) {
	errEv := &record.Event{Event: record.EventError, Code: "oom", Message: "out of memory", Hint: "smaller batch"}
	engine := &record.Error{Type: record.ErrImageMissing, Message: "no image"}
	for _, c := range []struct {
		name    string
		en      ending
		status  string
		typ     string
		message string // a part of the error's message
	}{
		{"ok", ending{done: true}, record.StatusOK, "", ""},
		{"interrupted beats timeout and crash", ending{interrupted: true, timedOut: true, res: runner.Result{Signaled: true}},
			record.StatusInterrupted, record.ErrInterrupted, "interrupted"},
		{"tampered beats flood", ending{tampered: "worker.log removed", eventsCut: true, done: true}, record.StatusFailed, record.ErrRunDirTampered, "worker.log removed"},
		{"flood beats timeout", ending{eventsCut: true, eventsMax: 100, timedOut: true}, record.StatusFailed, record.ErrWorkerFlood, "more than 100 bytes"},
		{"timeout beats the killed worker", ending{timedOut: true, timeout: 5 * time.Second, res: runner.Result{Signaled: true, ExitCode: -1}},
			record.StatusTimeout, record.ErrTimeout, "timeout of 5s"},
		{"the runner's error as it is", ending{res: runner.Result{Err: engine}, errEv: errEv}, record.StatusFailed, record.ErrImageMissing, "no image"},
		{"error event beats the exit code", ending{errEv: errEv, res: runner.Result{ExitCode: 1}}, record.StatusFailed, record.ErrWorkerError, "out of memory"},
		{"killed by a signal", ending{res: runner.Result{Signaled: true, ExitCode: -1}, lastLine: "Segmentation fault"},
			record.StatusFailed, record.ErrCrash, `killed by a signal without an error event (last stderr line: "Segmentation fault")`},
		{"non-zero exit", ending{res: runner.Result{ExitCode: 3}, done: true}, record.StatusFailed, record.ErrCrash, "exited with code 3"},
		{"no done", ending{}, record.StatusFailed, record.ErrNoDone, "without a done event"},
		{"stopped from outside (SIGTERM to every process)", ending{res: runner.Result{ExitCode: 130}, errEv: &record.Event{Event: record.EventError, Code: "terminated"}},
			record.StatusInterrupted, record.ErrInterrupted, "did not come through llem-exec"},
		{"exit 130 with another error is the error", ending{res: runner.Result{ExitCode: 130}, errEv: errEv}, record.StatusFailed, record.ErrWorkerError, "out of memory"},
	} {
		status, rerr := c.en.verdict()
		if status != c.status {
			t.Errorf("%s: status %s, want %s", c.name, status, c.status)
		}
		switch {
		case c.typ == "" && rerr != nil:
			t.Errorf("%s: error %+v, want none", c.name, rerr)
		case c.typ != "" && (rerr == nil || rerr.Type != c.typ || !strings.Contains(rerr.Message, c.message)):
			t.Errorf("%s: error %+v, want %s with %q", c.name, rerr, c.typ, c.message)
		}
	}
	if _, rerr := (ending{errEv: errEv}).verdict(); rerr.Code != "oom" || rerr.Hint != "smaller batch" {
		t.Errorf("the worker's error event is not kept: %+v", rerr)
	}
}

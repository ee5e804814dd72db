package nativeworker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/record"
)

// The test binary doubles as a worker process: with LLEM_TEST_WORKER=1 it
// runs Main as `llem-exec __worker native` would, with SIGTERM and SIGINT
// cancelling its context.
func TestMain(m *testing.M) {
	if os.Getenv("LLEM_TEST_WORKER") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		code := cli.Run("native worker", func(_ []string, _ io.Reader, stdout, stderr io.Writer) error {
			return Main(ctx, stdout, stderr)
		}, nil, nil, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func workerCmd(t *testing.T) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LLEM_TEST_WORKER=1")
	return cmd
}

// TestProcessOK runs the worker as a real process: exit 0, done last.
func TestProcessOK(t *testing.T) {
	setup(t, 2, "")
	cmd := workerCmd(t)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	var last record.Event
	if err := json.Unmarshal(lines[len(lines)-1], &last); err != nil || last.Event != record.EventDone {
		t.Fatalf("last line %s (%v)", lines[len(lines)-1], err)
	}
	if !strings.Contains(errb.String(), "native worker:") {
		t.Fatalf("no progress on stderr: %q", errb.String())
	}
}

// TestProcessSIGTERM: a SIGTERM during the run (here in the thermal floor
// sleep, of an hour: a worker that waited it out would hang the test) ends
// the worker with an interrupted error event and exit 130.
func TestProcessSIGTERM(t *testing.T) {
	setup(t, 1, "warmup: {n_warmup: 1, thermal_floor_seconds: 3600}")
	cmd := workerCmd(t)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var last []byte
	signalled := false
	for sc.Scan() {
		last = append(last[:0], sc.Bytes()...)
		if bytes.Contains(last, []byte(`"phase":"warmup","edge":"end"`)) {
			signalled = true
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	err = cmd.Wait()
	if !signalled {
		t.Fatalf("never reached the warmup end: %v, last %s", err, last)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != cli.ExitInterrupted {
		t.Fatalf("exit: %v", err)
	}
	var e record.Event
	if json.Unmarshal(last, &e); e.Event != record.EventError || e.Code != CodeInterrupted {
		t.Fatalf("last event %s", last)
	}
}

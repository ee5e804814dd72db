package docker

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/schemas"
)

// nativeExperiment is a real effective config of the native backend, as
// llem-expand would emit it, with its prompts.
func nativeExperiment(t *testing.T, yaml string) record.WorkerInput {
	t.Helper()
	cfg, _, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	canon, err := cfg.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	in := testExperiment("native")
	in.Config = json.RawMessage(canon)
	in.ID = config.IDOf(canon)
	in.RunID = in.ID + "-c1"
	in.Runner.Image = nativeImg
	in.Prompts = []string{"The capital of France is", "Energy per token is measured by", "Once upon a time", "In a hole in the ground"}
	return in
}

// TestNativeWorkerInContainer runs the native backend's worker — the real Go
// engine, statically built, FROM scratch — through the docker runner.
func TestNativeWorkerInContainer(t *testing.T) {
	needEngine(t)
	in := nativeExperiment(t, "model: llem-tiny\nbackend: native\nn: 4\nmax_output_tokens: 8\ndataset: {input_len: 16, output_len: 8}\nwarmup: {n_warmup: 1, thermal_floor_seconds: 0}\nnative: {batch_size: 2}\n")
	dir := writeExperiment(t, in)
	var out, errb syncBuf
	r := newTestRunner(t, Options{})
	spec := runner.Spec{Experiment: in.Experiment, RunDir: dir, ExperimentFile: filepath.Join(dir, "experiment.json"),
		Stdout: &out, Stderr: &errb, Grace: 5 * time.Second}
	t0 := time.Now()
	res, err := r.Run(context.Background(), spec)
	if err != nil || res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v %+v exit %d\nstdout %s\nstderr %s", err, res.Err, res.ExitCode, out.String(), errb.String())
	}
	evs := events(t, out.String())
	if firstEv(t, evs).Event != record.EventHello || firstEv(t, evs).Backend != "native" {
		t.Fatalf("first event %+v", evs[0])
	}
	done := lastEv(t, evs)
	if done.Event != record.EventDone || done.Totals.Requests != 4 {
		t.Fatalf("last event %+v", done)
	}
	var reqs int
	for _, e := range evs {
		if e.Event == record.EventRequest {
			reqs++
			if e.Request.TFirstNS < e.Request.TStartNS || e.Request.OutputTokens == 0 {
				t.Errorf("request %+v", e.Request)
			}
		}
	}
	if reqs != 4 {
		t.Fatalf("%d request events", reqs)
	}
	if _, err := schemas.CheckNDJSON([]byte(out.String())); err != nil {
		t.Fatal(err)
	}
	t.Logf("native worker in a container: %d events, %s from create to removal (image %s, %s)", len(evs), time.Since(t0).Round(time.Millisecond), nativeImg, res.Container.ImageDigest[:19])
	assertGone(t, res)
}

// TestNativeWorkerInterrupted stops the native worker mid-measure: it gets
// SIGTERM through the container's init, reports an error event and exits.
func TestNativeWorkerInterrupted(t *testing.T) {
	needEngine(t)
	in := nativeExperiment(t, "model: llem-small\nbackend: native\nn: 64\nmax_output_tokens: 512\ndataset: {input_len: 64, output_len: 512}\nwarmup: {enabled: false}\nnative: {ignore_eos: true}\n")
	dir := writeExperiment(t, in)
	var out, errb syncBuf
	r := newTestRunner(t, Options{})
	spec := runner.Spec{Experiment: in.Experiment, RunDir: dir, Stdout: &out, Stderr: &errb, Grace: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var res runner.Result
	doneCh := make(chan struct{})
	go func() { res, _ = r.Run(ctx, spec); close(doneCh) }()
	deadline := time.Now().Add(5 * time.Minute) // only a hang reaches it
	for !containsEvent(t, out.String(), "measure") {
		if time.Now().After(deadline) {
			t.Fatalf("the measure phase did not start within 5 minutes: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t0 := time.Now()
	cancel()
	<-doneCh
	if res.Err == nil || res.Err.Type != record.ErrInterrupted {
		t.Fatalf("want interrupted, got %+v\n%s", res.Err, errb.String())
	}
	evs := events(t, out.String())
	if last := lastEv(t, evs); last.Event != record.EventError || last.Code != "interrupted" {
		t.Fatalf("the native worker should end with an error event on SIGTERM, last %+v", last)
	}
	// (The error event proves SIGTERM reached the worker: SIGKILL leaves no last words.)
	t.Logf("native worker stopped %s after the interrupt", time.Since(t0).Round(time.Millisecond))
	assertGone(t, res)
}

func containsEvent(t *testing.T, s, phase string) bool {
	for _, e := range events(t, lastCompleteLines(s)) {
		if e.Event == record.EventPhase && e.Phase == phase && e.Edge == record.EdgeStart {
			return true
		}
	}
	return false
}

// lastCompleteLines drops a partial last line of a stream being written.
func lastCompleteLines(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[:i+1]
		}
	}
	return ""
}

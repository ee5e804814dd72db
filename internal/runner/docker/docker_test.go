package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/schemas"
)

var runSeq atomic.Int64

func testExperiment(backend string) record.WorkerInput {
	n := runSeq.Add(1)
	return record.WorkerInput{
		Experiment: record.Experiment{
			Kind: record.KindExperiment, V: record.Version, Study: "docker-test", StudyHash: "0123456789abcdef",
			ID: "fedcba9876543210", Cycle: 1, NCycles: 1, RunID: fmt.Sprintf("fedcba9876543210-c%d", n),
			Backend: backend, Model: "llem-tiny",
			Config: json.RawMessage(`{"model":"llem-tiny","backend":"` + backend + `"}`),
			Runner: record.Runner{Type: "docker", Image: testImage},
		},
		Prompts: []string{"the quick brown fox", "jumps over", "the lazy dog"},
	}
}

func testSpec(t *testing.T, mode string, extraEnv ...string) (runner.Spec, *syncBuf, *syncBuf) {
	in := testExperiment("native")
	dir := writeExperiment(t, in)
	var out, errb syncBuf
	return runner.Spec{
		Experiment: in.Experiment, RunDir: dir, ExperimentFile: filepath.Join(dir, "experiment.json"),
		Env: append([]string{"LLEM_TEST_MODE=" + mode}, extraEnv...), Stdout: &out, Stderr: &errb, Grace: 2 * time.Second,
	}, &out, &errb
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func events(t *testing.T, out string) []record.Event {
	t.Helper()
	var evs []record.Event
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e record.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("stdout line %q is not an event: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

func assertGone(t *testing.T, res runner.Result) {
	t.Helper()
	if res.Container == nil || res.Container.ContainerID == "" {
		t.Fatalf("no container id in result %+v", res)
	}
	_, err := testClient.ContainerInspect(context.Background(), res.Container.ContainerID)
	if !isNotFound(err) {
		t.Fatalf("container %s still exists after its run (inspect err %v)", res.Container.ContainerID[:12], err)
	}
}

func TestRunSuccess(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{})
	spec, out, _ := testSpec(t, "succeed")
	res, err := r.Run(context.Background(), spec)
	if err != nil || res.Err != nil {
		t.Fatalf("run: %v %+v", err, res.Err)
	}
	if res.ExitCode != 0 || res.Signaled {
		t.Fatalf("exit %d signaled %v", res.ExitCode, res.Signaled)
	}
	if res.Container.Image != testImage || !strings.HasPrefix(res.Container.ImageDigest, "sha256:") || len(res.Container.ContainerID) != 64 {
		t.Fatalf("container record %+v", res.Container)
	}
	insp, err := testClient.ImageInspect(context.Background(), testImage)
	if err != nil || insp.ID != res.Container.ImageDigest {
		t.Fatalf("digest %s, image id %s (%v)", res.Container.ImageDigest, insp.ID, err)
	}
	evs := events(t, out.String())
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Event)
	}
	want := "hello phase model phase phase request request request phase memory done"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("events in order %v", kinds)
	}
	if lastEv(t, evs).Totals.Requests != 3 || lastEv(t, evs).Totals.InputTokens != 4+2+3 {
		t.Fatalf("done totals %+v", lastEv(t, evs).Totals)
	}
	if counts, err := schemas.CheckNDJSON([]byte(out.String())); err != nil || counts["event"] != len(evs) {
		t.Fatalf("schema: %v %v", counts, err)
	}
	assertGone(t, res)
}

func TestRunCrash(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{})
	spec, out, errb := testSpec(t, "crash")
	res, err := r.Run(context.Background(), spec)
	if err != nil || res.Err != nil {
		t.Fatalf("a worker crash is the worker's exit, not an engine error: %v %+v", err, res.Err)
	}
	if res.ExitCode != 3 || res.Signaled {
		t.Fatalf("exit %d signaled %v", res.ExitCode, res.Signaled)
	}
	evs := events(t, out.String())
	if last := lastEv(t, evs); last.Event != record.EventError || last.Code != "test_crash" {
		t.Fatalf("last event %+v", last)
	}
	if !strings.Contains(errb.String(), "test worker: crash") {
		t.Fatalf("stderr %q", errb.String())
	}
	assertGone(t, res)
}

// waitHello blocks until the worker's hello arrived on stdout (polling the
// buffer; only a hang reaches the bound).
func waitHello(t *testing.T, out *syncBuf) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !strings.Contains(out.String(), `"event":"hello"`) {
		if time.Now().After(deadline) {
			t.Fatal("no hello within 5 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expiring is a context whose deadline passes when the test says so, not
// after a time: a run's time limit then falls where the test wants it
// however long the machine takes to start the container.
type expiring struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newExpiring() *expiring {
	return &expiring{Context: context.Background(), done: make(chan struct{})}
}

func (c *expiring) Done() <-chan struct{} { return c.done }
func (c *expiring) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
func (c *expiring) expire() { c.once.Do(func() { close(c.done) }) }

// TestRunTimeout: the run's time limit passes once the worker (which hangs
// for ever) has said hello.
func TestRunTimeout(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{})
	spec, out, errb := testSpec(t, "hang")
	spec.Grace = 20 * time.Second
	ctx := newExpiring()
	var res runner.Result
	var err error
	done := make(chan struct{})
	go func() { res, err = r.Run(ctx, spec); close(done) }()
	waitHello(t, out)
	ctx.expire()
	<-done
	if err != nil || res.Err == nil || res.Err.Type != record.ErrTimeout {
		t.Fatalf("want timeout, got %v %+v", err, res.Err)
	}
	// SIGTERM reached the worker through the init (it says so and exits 143),
	// long before the grace would have brought SIGKILL.
	if !res.Signaled || !strings.Contains(errb.String(), "test worker: got SIGTERM") {
		t.Fatalf("signaled %v exit %d, stderr %q", res.Signaled, res.ExitCode, errb.String())
	}
	if !strings.Contains(out.String(), `"event":"hello"`) {
		t.Fatalf("stdout %q", out.String())
	}
	assertGone(t, res)
}

func TestRunStubbornKilledAfterGrace(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{})
	spec, out, _ := testSpec(t, "stubborn")
	ctx, cancel := context.WithCancel(context.Background())
	var res runner.Result
	done := make(chan struct{})
	go func() { res, _ = r.Run(ctx, spec); close(done) }()
	waitHello(t, out)
	t0 := time.Now()
	cancel()
	<-done
	el := time.Since(t0)
	if res.Err == nil || res.Err.Type != record.ErrInterrupted || !res.Signaled {
		t.Fatalf("want interrupted+signaled, got %+v signaled %v", res.Err, res.Signaled)
	}
	if el < spec.Grace || el > spec.Grace+time.Minute {
		t.Fatalf("a worker ignoring SIGTERM must get the grace (%s) then SIGKILL; took %s", spec.Grace, el)
	}
	assertGone(t, res)
}

// TestRunInterrupt also inspects the live container: labels, mounts, env,
// init, shm, no device request — and that the secret is nowhere but the env.
func TestRunInterrupt(t *testing.T) {
	needEngine(t)
	const secret = "hf_SECRETtoken1234567890"
	logBuf := &syncBuf{}
	r := newTestRunner(t, Options{Log: logBuf, ShmSize: 1 << 30})
	spec, out, _ := testSpec(t, "hang", "HF_TOKEN="+secret)
	ctx, cancel := context.WithCancel(context.Background())
	var res runner.Result
	var runErr error
	done := make(chan struct{})
	go func() { res, runErr = r.Run(ctx, spec); close(done) }()
	waitHello(t, out)

	list, err := testClient.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelRunID+"="+spec.Experiment.RunID))})
	if err != nil || len(list) != 1 {
		t.Fatalf("want one container for the run, got %d (%v)", len(list), err)
	}
	insp, raw, err := testClient.ContainerInspectWithRaw(context.Background(), list[0].ID, false)
	if err != nil {
		t.Fatal(err)
	}
	l := insp.Config.Labels
	if l[LabelOwner] != testOwner || l[LabelStudy] != "docker-test" || l[LabelRunID] != spec.Experiment.RunID || l[LabelID] != spec.Experiment.ID || l[LabelBackend] != "native" || l[LabelPID] == "" {
		t.Fatalf("labels %v", l)
	}
	if insp.HostConfig.Init == nil || !*insp.HostConfig.Init || insp.HostConfig.ShmSize != 1<<30 || len(insp.HostConfig.DeviceRequests) != 0 || insp.HostConfig.LogConfig.Type != "none" {
		t.Fatalf("host config init %v shm %d devices %v log %v", insp.HostConfig.Init, insp.HostConfig.ShmSize, insp.HostConfig.DeviceRequests, insp.HostConfig.LogConfig)
	}
	if len(insp.Mounts) != 1 || insp.Mounts[0].Destination != MountRun || !insp.Mounts[0].RW || insp.Mounts[0].Type != mount.TypeBind {
		t.Fatalf("mounts %+v", insp.Mounts)
	}
	if !hasKey(insp.Config.Env, "HF_TOKEN") || !contains(insp.Config.Env, "LLEM_EXPERIMENT="+MountRun+"/experiment.json") {
		t.Fatalf("env %v", insp.Config.Env)
	}
	// The secret is in the env (where it must be) and nowhere else in the container's definition.
	withoutEnv := strings.Replace(string(raw), "HF_TOKEN="+secret, "", 1)
	if strings.Contains(withoutEnv, secret) {
		t.Fatal("the secret appears outside the container's env")
	}
	cancel()
	<-done
	if runErr != nil || res.Err == nil || res.Err.Type != record.ErrInterrupted {
		t.Fatalf("want interrupted, got %v %+v", runErr, res.Err)
	}
	rb, _ := json.Marshal(res)
	if strings.Contains(string(rb), secret) || strings.Contains(logBuf.String(), secret) {
		t.Fatal("the secret leaked into the result or the runner's log")
	}
	assertGone(t, res)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRunEnvAndRunDirMount(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{})
	spec, _, _ := testSpec(t, "env", "LLEM_EXTRA=1")
	res, err := r.Run(context.Background(), spec)
	if err != nil || res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v %+v exit %d", err, res.Err, res.ExitCode)
	}
	proof, err := os.ReadFile(filepath.Join(spec.RunDir, "proof.txt"))
	if err != nil || string(proof) != spec.Experiment.RunID {
		t.Fatalf("the worker could not write the run dir: %q %v", proof, err)
	}
	env, _ := os.ReadFile(filepath.Join(spec.RunDir, "env.txt"))
	for _, want := range []string{"LLEM_RUN_DIR=" + MountRun, "LLEM_EXTRA=1", "LLEM_TEST_MODE=env"} {
		if !strings.Contains(string(env), want) {
			t.Fatalf("container env lacks %s:\n%s", want, env)
		}
	}
	st, _ := os.Stat(filepath.Join(spec.RunDir, "proof.txt"))
	if uid := fileUID(st); uid != os.Getuid() {
		t.Fatalf("file in run dir owned by uid %d, want the host user %d", uid, os.Getuid())
	}
	assertGone(t, res)
}

type countWriter struct{ n atomic.Int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

func TestRunHugeLog(t *testing.T) {
	needEngine(t)
	const mb = 256
	r := newTestRunner(t, Options{})
	spec, out, _ := testSpec(t, "hugelog", fmt.Sprintf("LLEM_TEST_LOG_MB=%d", mb))
	var errc countWriter
	spec.Stderr = &errc
	t0 := time.Now()
	res, err := r.Run(context.Background(), spec)
	el := time.Since(t0)
	if err != nil || res.Err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v %+v exit %d", err, res.Err, res.ExitCode)
	}
	if errc.n.Load() != mb<<20 {
		t.Fatalf("stderr carried %d bytes, want %d", errc.n.Load(), mb<<20)
	}
	evs := events(t, out.String())
	if lastEv(t, evs).Event != record.EventDone {
		t.Fatalf("the events after a huge log are incomplete: last %+v", lastEv(t, evs))
	}
	t.Logf("huge log: %d MiB of stderr streamed in %s (%.0f MiB/s, container start to removal)", mb, el.Round(time.Millisecond), float64(mb)/el.Seconds())
	assertGone(t, res)
}

func TestRunMissingImage(t *testing.T) {
	needEngine(t)
	for _, noPull := range []bool{false, true} {
		logb := &syncBuf{}
		r := newTestRunner(t, Options{NoPull: noPull, Log: logb})
		spec, _, _ := testSpec(t, "succeed")
		spec.Experiment.Runner.Image = "llem-test/absent:never"
		res, err := r.Run(context.Background(), spec)
		if err != nil || res.Err == nil || res.Err.Type != record.ErrImageMissing || res.Err.Hint == "" {
			t.Fatalf("nopull=%v: want image_missing with a hint, got %v %+v", noPull, err, res.Err)
		}
		if res.Container.ContainerID != "" || res.Container.Image != "llem-test/absent:never" {
			t.Fatalf("container %+v", res.Container)
		}
		t.Logf("nopull=%v classified: %+v", noPull, *res.Err)
		if !noPull && !strings.Contains(logb.String(), "pulling llem-test/absent:never") {
			t.Fatalf("no pull attempt logged: %q", logb.String())
		}
	}
}

func TestRunBadMount(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{})
	spec, _, _ := testSpec(t, "succeed")
	spec.RunDir = filepath.Join(t.TempDir(), "missing")
	spec.ExperimentFile = ""
	res, err := r.Run(context.Background(), spec)
	if err != nil || res.Err == nil || res.Err.Type != record.ErrBadMount || !strings.Contains(res.Err.Message, spec.RunDir) {
		t.Fatalf("missing run dir: %v %+v", err, res.Err)
	}

	// A Python backend with a named model cache that does not exist.
	r2 := newTestRunner(t, Options{ModelCache: filepath.Join(t.TempDir(), "no-cache"), CacheDir: t.TempDir()})
	spec2, _, _ := testSpec(t, "succeed")
	spec2.Experiment.Backend = "pytorch"
	res, err = r2.Run(context.Background(), spec2)
	if err != nil || res.Err == nil || res.Err.Type != record.ErrBadMount || !strings.Contains(res.Err.Message, "no-cache") {
		t.Fatalf("missing model cache: %v %+v", err, res.Err)
	}

	// What the engine itself says about a missing bind source is classified
	// from its error type as well.
	_, cerr := testClient.ContainerCreate(context.Background(), &container.Config{Image: testImage, Labels: map[string]string{LabelOwner: testOwner}},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeBind, Source: "/nonexistent/llem", Target: "/x"}}}, nil, nil, "")
	if cerr == nil {
		t.Fatal("the engine accepted a missing bind source")
	}
	if e := classify(stageCreate, cerr, false); e.Type != record.ErrBadMount {
		t.Fatalf("engine error %v classified %+v", cerr, e)
	}
}

func TestRunGPUUnavailable(t *testing.T) {
	needEngine(t)
	info, err := testClient.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if hasNVIDIARuntime(info.Runtimes, info.DefaultRuntime) {
		t.Skip("this engine has the NVIDIA runtime; the no-GPU path cannot be shown here")
	}
	r := newTestRunner(t, Options{})
	spec, _, _ := testSpec(t, "succeed")
	spec.GPUs = []string{"GPU-8d1e5b2c-0000-4000-8000-000000000000"}
	res, err := r.Run(context.Background(), spec)
	if err != nil || res.Err == nil || res.Err.Type != record.ErrGPUUnavailable || res.Err.Hint == "" {
		t.Fatalf("want gpu_unavailable, got %v %+v", err, res.Err)
	}
	t.Logf("classified: %+v", *res.Err)
	assertGone(t, res)
}

func TestRunOOMKilled(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{MemoryLimit: 64 << 20})
	spec, _, _ := testSpec(t, "oom")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.Run(ctx, spec)
	if err != nil || res.Err == nil || res.Err.Type != record.ErrOOMKilled {
		t.Fatalf("want oom_killed, got %v %+v exit %d", err, res.Err, res.ExitCode)
	}
	if !res.Signaled {
		t.Fatalf("an OOM kill is a SIGKILL: %+v", res)
	}
	assertGone(t, res)
}

// TestSweep leaves containers behind as a SIGKILLed llem-exec would, and
// checks the next pre-flight removes those, and only those.
func TestSweep(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{})
	mk := func(ident, host string, start bool) string {
		in := testExperiment("native")
		dir := writeExperiment(t, in)
		cfg := &container.Config{Image: testImage, Env: []string{"LLEM_TEST_MODE=hang", "LLEM_EXPERIMENT=/r/experiment.json"},
			Labels: map[string]string{LabelOwner: testOwner, LabelPID: ident, LabelHost: host, LabelRunID: in.RunID}}
		useInit := true
		c, err := testClient.ContainerCreate(context.Background(), cfg, &container.HostConfig{Init: &useInit,
			Mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/r"}}}, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if start {
			if err := testClient.ContainerStart(context.Background(), c.ID, container.StartOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			_ = testClient.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
		})
		return c.ID
	}
	dead := mk("999999999:1", r.host, true)           // owner process gone: stale
	deadCreated := mk("999999999:1", r.host, false)   // never started, owner gone: stale
	live := mk(r.ident, r.host, true)                 // this process: kept
	otherHost := mk("999999999:1", "elsewhere", true) // another host's: kept
	removed, err := r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Fatalf("removed %v, want the two stale ones", removed)
	}
	for id, want := range map[string]bool{dead: false, deadCreated: false, live: true, otherHost: true} {
		_, err := testClient.ContainerInspect(context.Background(), id)
		if exists := err == nil; exists != want {
			t.Errorf("container %s exists=%v after sweep, want %v (%v)", id[:12], exists, want, err)
		}
	}
}

func TestPreflight(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{})
	ok := testExperiment("native").Experiment
	if err := r.Preflight(context.Background(), []record.Experiment{ok}); err != nil {
		t.Fatalf("preflight of a present image: %v", err)
	}
	// Local experiments are not this runner's business.
	local := ok
	local.Runner = record.Runner{Type: "local"}
	local.Backend = "vllm"
	if err := r.Preflight(context.Background(), []record.Experiment{local}); err != nil {
		t.Fatalf("local experiment checked: %v", err)
	}

	missing := ok
	missing.Runner.Image = "llem-test/absent:never"
	gpu := testExperiment("vllm").Experiment
	gpu.Config = json.RawMessage(`{"model":"m","backend":"vllm","vllm":{"engine":{"tensor_parallel_size":2}}}`)
	r2 := newTestRunner(t, Options{NoPull: true, CacheDir: t.TempDir()})
	err := r2.Preflight(context.Background(), []record.Experiment{ok, missing, gpu})
	var pe *PreflightError
	if !errors.As(err, &pe) {
		t.Fatalf("want *PreflightError, got %v", err)
	}
	types := map[string]bool{}
	for _, p := range pe.Problems {
		types[p.Type] = true
		if p.Hint == "" {
			t.Errorf("problem without a fix hint: %+v", p)
		}
	}
	info, _ := testClient.Info(context.Background())
	if !types[record.ErrImageMissing] || (!hasNVIDIARuntime(info.Runtimes, info.DefaultRuntime) && !types[record.ErrGPUUnavailable]) {
		t.Fatalf("problems %+v", pe.Problems)
	}
	t.Logf("pre-flight report:\n%s", pe.Error())
}

func TestPreflightUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	r := newTestRunner(t, Options{})
	err := r.Preflight(context.Background(), []record.Experiment{testExperiment("native").Experiment})
	var pe *PreflightError
	if !errors.As(err, &pe) || len(pe.Problems) != 1 || pe.Problems[0].Type != record.ErrEngineUnreachable || pe.Problems[0].Hint == "" {
		t.Fatalf("want engine_unreachable, got %v", err)
	}
	// And a run against it is classified the same way.
	spec, _, _ := testSpec(t, "succeed")
	res, rerr := r.Run(context.Background(), spec)
	if rerr != nil || res.Err == nil || res.Err.Type != record.ErrEngineUnreachable {
		t.Fatalf("run: %v %+v", rerr, res.Err)
	}
}

func fileUID(st os.FileInfo) int {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid)
	}
	return -1
}

// TestRunConcurrent: side-by-side runs (llem-exec --parallel) share one
// Runner; each gets its own container and its own stream.
func TestRunConcurrent(t *testing.T) {
	needEngine(t)
	r := newTestRunner(t, Options{})
	const n = 3
	var wg sync.WaitGroup
	results := make([]runner.Result, n)
	outs := make([]*syncBuf, n)
	specs := make([]runner.Spec, n)
	for i := range specs {
		specs[i], outs[i], _ = testSpec(t, "succeed")
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], _ = r.Run(context.Background(), specs[i])
		}(i)
	}
	wg.Wait()
	ids := map[string]bool{}
	for i, res := range results {
		if res.Err != nil || res.ExitCode != 0 {
			t.Fatalf("run %d: %+v exit %d", i, res.Err, res.ExitCode)
		}
		ids[res.Container.ContainerID] = true
		if evs := events(t, outs[i].String()); lastEv(t, evs).Event != record.EventDone || len(evs) != 11 {
			t.Fatalf("run %d: %d events, streams mixed?", i, len(evs))
		}
		assertGone(t, res)
	}
	if len(ids) != n {
		t.Fatalf("containers %v", ids)
	}
}

// BenchmarkRunOverhead is the cost of one run's container (create, attach,
// start, a worker that does almost nothing, wait, inspect, remove):
//
//	go test -run '^$' -bench RunOverhead -benchtime 20x ./internal/runner/docker
func BenchmarkRunOverhead(b *testing.B) {
	if engineErr != nil {
		b.Skip(engineErr)
	}
	r, err := New(Options{Owner: testOwner, Log: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	in := testExperiment("native")
	dir := b.TempDir()
	raw, _ := json.Marshal(in)
	if err := os.WriteFile(filepath.Join(dir, "experiment.json"), raw, 0o644); err != nil {
		b.Fatal(err)
	}
	spec := runner.Spec{Experiment: in.Experiment, RunDir: dir, Env: []string{"LLEM_TEST_MODE=succeed"}, Grace: time.Second}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := r.Run(context.Background(), spec)
		if err != nil || res.Err != nil || res.ExitCode != 0 {
			b.Fatalf("%v %+v", err, res.Err)
		}
	}
}

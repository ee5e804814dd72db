package runloop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// standinBin is testdata/standin, a scripted stand-in for llem-serve (built
// static by TestMain, so a FROM-scratch image can run it too).
var standinBin string

func buildStandin(dir string) error {
	standinBin = filepath.Join(dir, "standin")
	cmd := exec.Command("go", "build", "-o", standinBin, "./testdata/standin")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build standin: %v\n%s", err, out)
	}
	return nil
}

// servingSection is a short open-loop schedule: 6 requests measured after a
// warmup, with idle and cooldown phases.
const servingSection = `{"api":"completions","arrival":"constant","rate":40,"requests":6,"warmup_s":0.1,` +
	`"idle_s":0.1,"cooldown_s":0.1,"startup_timeout_s":120,"request_timeout_s":120}`

// servingLine is a serving experiment of llem-tiny with the given serving
// section (and runner).
func servingLine(seq int, serving string, rn record.Runner) string {
	e := record.Experiment{Kind: "experiment", V: 1, Study: "s", StudyHash: "fedcba9876543210",
		ID: fmt.Sprintf("%016x", seq), Seq: seq, Cycle: 1, NCycles: 1, RunID: fmt.Sprintf("s%03d-c1", seq),
		Backend: "native", Model: "llem-tiny", Runner: rn,
		Config: json.RawMessage(`{"model":"llem-tiny","backend":"native","n":4,"max_output_tokens":4,` +
			`"dataset":{"input_len":16,"output_len":4},"baseline":{"enabled":false},"serving":` + serving + `}`)}
	b, _ := json.Marshal(e)
	return string(b) + "\n"
}

// standinOpts runs serving experiments against the stand-in behaving as mode.
func standinOpts(out, mode string) Options {
	o := opts(out)
	o.ServerPrograms = map[string]string{"llem-serve": standinBin}
	o.env = []string{"LLEM_STANDIN=" + mode}
	return o
}

// leftovers lists the processes that still carry runDir's LLEM_RUN_DIR:
// the server and anything it started.
func leftovers(t *testing.T, runDir string) []string {
	t.Helper()
	want := []byte("LLEM_RUN_DIR=" + runDir + "\x00")
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, want) {
			continue
		}
		pid := strings.Split(p, "/")[2]
		var n int
		if _, err := fmt.Sscan(pid, &n); err == nil && alive(n) {
			cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			left = append(left, pid+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return left
}

func runDirOf(out string, r record.Run) string {
	if r.RunDir != "" {
		return r.RunDir
	}
	return filepath.Join(out, r.Study+"-"+r.StudyHash[:8], "runs", r.RunID)
}

// readRequests reads requests.ndjson.
func readRequests(t *testing.T, path string) []record.Request {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var reqs []record.Request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r record.Request
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// checkServingRun checks an ok serving run: its record, its phases in
// order, requests.ndjson against the totals, and server.log.
func checkServingRun(t *testing.T, dir string, r record.Run, withLog bool) {
	t.Helper()
	if r.Status != record.StatusOK {
		t.Fatalf("status %s, error %+v", r.Status, r.Error)
	}
	for _, f := range r.Warnings {
		if f.Code != "server_killed" {
			t.Errorf("warning %+v", f)
		}
	}
	if r.RequestsFile != "requests.ndjson" || (r.ServerLog == "server.log") != withLog {
		t.Errorf("requests_file %q, server_log %q", r.RequestsFile, r.ServerLog)
	}
	ph := r.Phases
	order := []*record.Window{ph.Load, ph.Idle, ph.Warmup, ph.Measure, ph.Cooldown}
	for i, w := range order {
		if w == nil {
			t.Fatalf("phase %d of load, idle, warmup, measure, cooldown is null: %+v", i, ph)
		}
		if i > 0 && w.StartNS < order[i-1].EndNS {
			t.Errorf("phase %d starts before the one before ends: %+v", i, ph)
		}
	}
	reqs := readRequests(t, filepath.Join(dir, r.RequestsFile))
	measured := 0
	for _, q := range reqs {
		if q.Status != record.ReqOK {
			t.Errorf("request %d: %s %v", q.ID, q.Status, q.Error)
		}
		if q.TScheduledNS != nil && *q.TScheduledNS >= ph.Measure.StartNS && *q.TScheduledNS < ph.Measure.EndNS {
			measured++
		}
	}
	if r.Totals == nil || r.Totals.Requests != 6 || measured != 6 {
		t.Errorf("totals %+v, %d requests scheduled in the measure window; want 6", r.Totals, measured)
	}
	if len(reqs) <= 6 {
		t.Errorf("%d requests sent; want the 6 measured ones and those of warmup and cooldown", len(reqs))
	}
	if withLog {
		if b, err := os.ReadFile(filepath.Join(dir, r.ServerLog)); err != nil || len(b) == 0 {
			t.Errorf("server.log empty or missing (%v)", err)
		}
	}
}

// TestServingLlemServe runs a serving experiment end to end through the
// built llem-exec, with the real llem-serve beside it serving llem-tiny.
func TestServingLlemServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	bin := buildExec(t)
	serve := filepath.Join(filepath.Dir(bin), "llem-serve")
	if out, err := exec.Command("go", "build", "-o", serve, "../../cmd/llem-serve").CombinedOutput(); err != nil {
		t.Fatalf("build llem-serve: %v\n%s", err, out)
	}
	out := t.TempDir()
	cmd := exec.Command(bin, "--out", out, "--sampler", "none", "--baseline", "0")
	cmd.Stdin = strings.NewReader(servingLine(1, servingSection, record.Runner{Type: "local"}))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("llem-exec: %v\n%s", err, stderr.String())
	}
	if _, err := schemas.CheckNDJSON(stdout.Bytes()); err != nil {
		t.Fatal(err)
	}
	var r record.Run
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	dir := runDirOf(out, r)
	checkServingRun(t, dir, r, true)
	if r.Worker == nil || len(r.Worker.Command) == 0 || r.Worker.Command[0] != serve {
		t.Errorf("worker %+v: want the llem-serve beside llem-exec", r.Worker)
	}
	if left := leftovers(t, dir); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
	var onDisk record.Run
	b, _ := os.ReadFile(filepath.Join(dir, "run.json"))
	if err := json.Unmarshal(b, &onDisk); err != nil || onDisk.Status != record.StatusOK {
		t.Errorf("run.json: %v, status %q", err, onDisk.Status)
	}
}

// TestServingStandin drives the scripted stand-in through each way a server
// can behave: each gives its status and error, and no process outlives the
// run.
func TestServingStandin(t *testing.T) {
	unhealthy := strings.Replace(servingSection, `"startup_timeout_s":120`, `"startup_timeout_s":1`, 1)
	// die: a schedule far longer than the server's death takes to notice.
	long := strings.Replace(servingSection, `"requests":6`, `"requests":4000`, 1)
	cases := []struct {
		mode, serving, status, errType, msg, flag string
	}{
		{"ok", servingSection, "ok", "", "", ""},
		{"unhealthy", unhealthy, "failed", record.ErrServerUnhealthy, "did not answer 200 within startup_timeout_s", ""},
		{"exit", servingSection, "failed", record.ErrServerExited, "out of cheese", ""},
		{"die", long, "failed", record.ErrServerExited, "under traffic", ""},
		{"ignoreterm", servingSection, "ok", "", "", "server_killed"},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			out := t.TempDir()
			runs, raw, code := runStream(t, standinOpts(out, c.mode), servingLine(1, c.serving, record.Runner{Type: "local"}))
			if _, err := schemas.CheckNDJSON(raw); err != nil {
				t.Fatal(err)
			}
			if len(runs) != 1 {
				t.Fatalf("%d runs (exit %d)", len(runs), code)
			}
			r := runs[0]
			dir := runDirOf(out, r)
			if c.status == "ok" {
				checkServingRun(t, dir, r, true)
			} else if r.Status != c.status || r.Error == nil || r.Error.Type != c.errType || !strings.Contains(r.Error.Message, c.msg) {
				t.Errorf("status %s, error %+v; want %s, %s with %q", r.Status, r.Error, c.status, c.errType, c.msg)
			}
			if c.flag != "" && !hasFlag(r.Warnings, c.flag) {
				t.Errorf("warnings %+v: want %s", r.Warnings, c.flag)
			}
			if left := leftovers(t, dir); len(left) > 0 {
				t.Errorf("processes left: %v", left)
			}
		})
	}
}

func hasFlag(fl []record.Flag, code string) bool {
	for _, f := range fl {
		if f.Code == code {
			return true
		}
	}
	return false
}

// waitForRequests waits until path holds a request record, or the run ends.
func waitForRequests(path string, done <-chan struct{}) bool {
	for range 6000 { // a hang guard: 10 min
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(`"kind":"request"`)) {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

// interruptUnderTraffic runs stream and interrupts llem-exec once the first
// request's record is written; it returns the run.
func interruptUnderTraffic(t *testing.T, o Options, stream, reqPath string) (record.Run, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var interrupted atomic.Bool
	o.Interrupted = interrupted.Load
	done := make(chan struct{})
	var out, errb bytes.Buffer
	var err error
	go func() {
		defer close(done)
		err = Run(ctx, o, []*record.Reader{record.NewReader(strings.NewReader(stream), "-")}, &out, &errb)
	}()
	if !waitForRequests(reqPath, done) {
		<-done
		t.Fatalf("the run ended before its first request: %s", out.String())
	}
	interrupted.Store(true)
	cancel()
	<-done
	var r record.Run
	if jerr := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r); jerr != nil {
		t.Fatalf("%v: %s", jerr, out.String())
	}
	return r, cli.Code(err)
}

// TestServingInterruptAndTimeout: an interrupt under traffic and a timeout
// both stop the server and its child; the run says which.
func TestServingInterruptAndTimeout(t *testing.T) {
	long := strings.Replace(servingSection, `"requests":6`, `"requests":100000`, 1)
	out := t.TempDir()
	o := standinOpts(out, "ignoreterm")
	stream := servingLine(2, long, record.Runner{Type: "local"})
	r, code := interruptUnderTraffic(t, o, stream, filepath.Join(out, "s-fedcba98", "runs", "s002-c1", "requests.ndjson"))
	if code != cli.ExitInterrupted || r.Status != record.StatusInterrupted {
		t.Errorf("exit %d, status %s; want 130, interrupted", code, r.Status)
	}
	if left := leftovers(t, runDirOf(out, r)); len(left) > 0 {
		t.Errorf("interrupt: processes left: %v", left)
	}
	o = standinOpts(t.TempDir(), "ok")
	o.Timeout = 2 * time.Second
	runs, _, _ := runStream(t, o, stream)
	if len(runs) != 1 || runs[0].Status != record.StatusTimeout {
		t.Fatalf("runs %+v: want one timed out", runs)
	}
	if left := leftovers(t, runDirOf(o.Out, runs[0])); len(left) > 0 {
		t.Errorf("timeout: processes left: %v", left)
	}
}

// TestServingEndpoint runs against a server the test started: no server is
// started or stopped, the requests go to the endpoint.
func TestServingEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(standinBin, "--listen", ln.Addr().String(), "--served-model-name", "llem-tiny")
	ln.Close()
	srv.Env = append(os.Environ(), "LLEM_STANDIN=ok")
	var slog bytes.Buffer
	srv.Stderr = &slog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	ep := "http://" + ln.Addr().String() + "/v1"
	section := strings.Replace(servingSection, `{"api"`, `{"endpoint":"`+ep+`","api"`, 1)
	out := t.TempDir()
	o := opts(out)
	o.ServerPrograms = map[string]string{"llem-serve": "/nonexistent/llem-serve"} // never started
	runs, raw, _ := runStream(t, o, servingLine(3, section, record.Runner{Type: "local"}))
	if _, err := schemas.CheckNDJSON(raw); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	dir := runDirOf(out, runs[0])
	checkServingRun(t, dir, runs[0], false)
	if _, err := os.Stat(filepath.Join(dir, "server.log")); !os.IsNotExist(err) {
		t.Errorf("server.log exists with an endpoint (%v)", err)
	}
	if runs[0].Worker.Command != nil {
		t.Errorf("worker command %v with an endpoint", runs[0].Worker.Command)
	}
	// The server is the test's: it is still up.
	resp, err := http.Get("http://" + ln.Addr().String() + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the endpoint's server after the run: %v", err)
	} else {
		resp.Body.Close()
	}
}

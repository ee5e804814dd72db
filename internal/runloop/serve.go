package runloop

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/internal/serverargs"
)

// Files of a serving run, relative to its run directory.
const (
	requestsFile = "requests.ndjson"
	serverLog    = "server.log"
)

// healthEvery is how often the health check is repeated while the server
// starts; healthTimeout bounds one check.
const (
	healthEvery   = 200 * time.Millisecond
	healthTimeout = 5 * time.Second
)

// serveExecution runs a serving experiment: it starts the backend's
// OpenAI-compatible server through the run's runner (or uses the
// configured endpoint), waits for its health check, leaves it idle, drives
// it with one load.Run whose schedule covers warmup, measure and cooldown,
// and stops it, whatever happened in between. Its events (hello, the phase
// edges, warnings, done with the measure window's totals) go to the run's
// collector as a worker's would; each request's record goes to
// requests.ndjson, the server's output to server.log.
type serveExecution struct {
	o        Options
	cfg      *config.Config
	plan     *servingPlan
	setupErr error // the config or its serving section makes no plan

	argv []string     // the server's command line as run; nil with an endpoint
	srv  *serverProc  // nil until started, and with an endpoint
	ev   io.Writer    // the collector
	slog *tailWriter  // server.log
	logf *os.File     // server.log's file
	lw   *logWriter   // server.log, capped
	reqf *os.File     // requests.ndjson
	hc   *http.Client // health checks

	totals *record.Totals // the measure window's, once the traffic ran
	lastT  int64          // the latest event time written
}

// newServeExecution decodes e's config and plans its traffic; a config that
// makes no plan is kept as setupErr, reported as the run's error.
func newServeExecution(o Options, e record.Experiment, prompts []string) *serveExecution {
	s := &serveExecution{o: o}
	cfg, err := config.Decode(e.Config)
	if err != nil {
		s.setupErr = fmt.Errorf("config: %w", err)
		return s
	}
	s.cfg = cfg
	if s.plan, err = newServingPlan(cfg, prompts); err != nil {
		s.setupErr = err
	}
	return s
}

// endpoint is the configured server's base URL, "" when llem-exec starts one.
func (s *serveExecution) endpoint() string {
	if s.cfg == nil || s.cfg.Serving.Endpoint == nil {
		return ""
	}
	return strings.TrimRight(*s.cfg.Serving.Endpoint, "/")
}

// timeout is the time a serving run may take: the server's start, the idle
// phase and the traffic, and the server's stop.
func (s *serveExecution) timeout(grace time.Duration) time.Duration {
	if s.plan == nil {
		return 0
	}
	return s.plan.startup + s.plan.idle + s.plan.trafficLength() + 2*grace + time.Minute
}

func (s *serveExecution) execute(ctx context.Context, rn runner.Runner, spec runner.Spec) (runner.Result, error) {
	if err := s.open(spec.RunDir); err != nil {
		return runner.Result{ExitCode: -1}, err
	}
	s.ev = spec.Stdout
	s.hc = &http.Client{Timeout: healthTimeout}
	// The server is stopped whatever happens, a panic included.
	defer s.stopServer(spec.Grace)
	s.emit(record.Event{Event: record.EventHello, Backend: spec.Experiment.Backend})
	rerr, fatal := s.serve(ctx, rn, spec)
	s.stopServer(spec.Grace)
	if s.totals != nil && rerr == nil && fatal == nil {
		s.emit(record.Event{Event: record.EventDone, Totals: s.totals})
	}
	res := runner.Result{ExitCode: -1}
	if s.srv != nil {
		res = s.srv.res
	}
	res.Err = rerr
	if err := s.closeFiles(); err != nil && fatal == nil {
		fatal = err
	}
	return res, fatal
}

// serve takes the run through its phases. It returns the run's classified
// failure, or an error that keeps the run from being written up (its
// requests could not be written). A timeout or an interrupt returns
// neither: the verdict has them from the run's context.
func (s *serveExecution) serve(ctx context.Context, rn runner.Runner, spec runner.Spec) (*record.Error, error) {
	if s.setupErr != nil {
		return &record.Error{Type: record.ErrServerStart, Message: s.setupErr.Error(),
			Hint: "check the config's serving section"}, nil
	}
	s.phase(record.PhaseLoad, record.EdgeStart)
	base, model, rerr, err := s.bringUp(ctx, rn, spec)
	if rerr != nil || err != nil || ctx.Err() != nil {
		return rerr, err
	}
	s.phase(record.PhaseLoad, record.EdgeEnd)
	s.phase(record.PhaseIdle, record.EdgeStart)
	if rerr := s.wait(ctx, s.plan.idle, "while idle"); rerr != nil || ctx.Err() != nil {
		return rerr, nil
	}
	s.phase(record.PhaseIdle, record.EdgeEnd)
	return s.traffic(ctx, base, model)
}

// bringUp starts the server and waits for its health check, or waits for
// the configured endpoint to list its models. It returns the API's base
// URL (…/v1) and the model to name in requests.
func (s *serveExecution) bringUp(ctx context.Context, rn runner.Runner, spec runner.Spec) (base, model string, rerr *record.Error, err error) {
	if ep := s.endpoint(); ep != "" {
		body, rerr := s.waitReady(ctx, ep+"/models")
		if rerr != nil || body == nil {
			return "", "", rerr, nil
		}
		return ep, s.servedModel(body), nil, nil
	}
	port, err := freePort()
	if err != nil {
		return "", "", &record.Error{Type: record.ErrServerStart, Message: "no free loopback port: " + err.Error()}, nil
	}
	host := "127.0.0.1"
	if rn.Name() == "docker" {
		host = "0.0.0.0" // inside the container; published on the host's 127.0.0.1 only
	}
	launch, err := serverargs.For(s.cfg, host, port)
	if err != nil {
		return "", "", &record.Error{Type: record.ErrServerStart, Message: err.Error(), Hint: "run this backend's experiments as batch runs (no serving section)"}, nil
	}
	for _, n := range launch.Notes {
		s.warn("server_setting_not_applied", n, "the run's figures are for the server's own setting")
	}
	argv := append([]string(nil), launch.Argv...)
	if rn.Name() == "local" {
		if argv[0], err = s.program(argv[0]); err != nil {
			return "", "", &record.Error{Type: record.ErrServerStart, Message: err.Error(), Hint: "build it beside llem-exec (make build) or put it on PATH"}, nil
		}
	}
	if err := s.openLog(spec.RunDir); err != nil {
		return "", "", nil, err
	}
	s.argv = argv
	sspec := spec
	sspec.Command, sspec.Stdout, sspec.Stderr = argv, s.slog, s.slog
	sspec.Server = &runner.ServerSpec{Port: port}
	s.srv = startServer(ctx, rn, sspec)
	root := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	_, rerr = s.waitReady(ctx, root+launch.HealthPath)
	return root + "/v1", launch.Model, rerr, nil
}

// program finds a server program: where llem-exec says it is (llem-serve
// beside llem-exec, as the native worker is llem-exec itself), else on PATH.
func (s *serveExecution) program(name string) (string, error) {
	if p := s.o.ServerPrograms[name]; p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	where := ""
	if p := s.o.ServerPrograms[name]; p != "" {
		where = " (" + p + ")"
	}
	return "", fmt.Errorf("server program %s: not found beside llem-exec%s nor on PATH", name, where)
}

// waitReady repeats GET url until it answers 200, and returns the body.
// It gives up when the server exits, when the startup timeout passes, or
// (nil body, nil error) when ctx ends.
func (s *serveExecution) waitReady(ctx context.Context, url string) ([]byte, *record.Error) {
	deadline := time.NewTimer(s.plan.startup)
	defer deadline.Stop()
	tick := time.NewTicker(healthEvery)
	defer tick.Stop()
	defer s.hc.CloseIdleConnections()
	last := "no answer yet"
	for {
		body, why := s.probe(ctx, url)
		if why == "" {
			return body, nil
		}
		last = why
		select {
		case <-ctx.Done():
			return nil, nil
		case <-s.exited():
			return nil, s.exitedErr("before its health check passed")
		case <-deadline.C:
			return nil, &record.Error{Type: record.ErrServerUnhealthy,
				Message: fmt.Sprintf("GET %s did not answer 200 within startup_timeout_s (%s; last: %s)%s", url, s.plan.startup, last, s.logTail()),
				Hint:    "see server.log in the run directory; raise serving.startup_timeout_s if the model needs longer to load"}
		case <-tick.C:
		}
	}
}

// probe is one health check: the body of a 200 answer, or why not.
func (s *serveExecution) probe(ctx context.Context, url string) ([]byte, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err.Error()
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, "HTTP " + strconv.Itoa(resp.StatusCode)
	}
	return body, ""
}

// servedModel is the model to name in requests to an endpoint: the
// config's model where the server lists it, else the first it lists (a
// warning says so).
func (s *serveExecution) servedModel(body []byte) string {
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &list)
	for _, m := range list.Data {
		if m.ID == s.cfg.Model {
			return m.ID
		}
	}
	if len(list.Data) == 0 || list.Data[0].ID == "" {
		s.warn("served_model_unknown", fmt.Sprintf("the endpoint lists no models; requests name the config's model %q", s.cfg.Model), "")
		return s.cfg.Model
	}
	s.warn("served_model_differs", fmt.Sprintf("the endpoint does not list the config's model %q; requests name %q, the first it lists", s.cfg.Model, list.Data[0].ID),
		"the run measured the model the endpoint serves, which the config does not name")
	return list.Data[0].ID
}

// wait lets d pass (the idle phase, the schedule's tail), unless ctx ends
// or the server exits first.
func (s *serveExecution) wait(ctx context.Context, d time.Duration, when string) *record.Error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.exited():
		return s.exitedErr(when)
	}
	return nil
}

// exited is closed when the server has exited; nil (never) with an endpoint.
func (s *serveExecution) exited() <-chan struct{} {
	if s.srv == nil {
		return nil
	}
	return s.srv.done
}

// exitedErr is the error of a server that exited on its own: the runner's
// classified error where it has one (the program could not start, the
// image is missing, the container was OOM-killed), else server_exited with
// how it ended and the tail of server.log.
func (s *serveExecution) exitedErr(when string) *record.Error {
	<-s.srv.done
	res := s.srv.res
	if res.Err != nil && res.Err.Type != record.ErrInterrupted && res.Err.Type != record.ErrTimeout {
		return res.Err
	}
	how := fmt.Sprintf("exit code %d", res.ExitCode)
	switch {
	case s.srv.err != nil:
		how = s.srv.err.Error()
	case res.Signaled:
		how = "killed by a signal"
	}
	return &record.Error{Type: record.ErrServerExited, Message: fmt.Sprintf("the server exited %s (%s)%s", when, how, s.logTail()),
		Hint: "see server.log in the run directory"}
}

// logTail is the end of server.log for an error message.
func (s *serveExecution) logTail() string {
	if s.slog == nil {
		return ""
	}
	if t := s.slog.tail(5); t != "" {
		return "; server.log ends: " + t
	}
	return ""
}

// stopServer stops the server (SIGTERM, grace, SIGKILL; a container is
// stopped and removed) and waits until it is gone. A server that had to be
// killed after the grace is flagged.
func (s *serveExecution) stopServer(grace time.Duration) {
	if s.srv == nil || !s.srv.stop() {
		return
	}
	if s.srv.stopTook >= grace && s.srv.res.Signaled {
		s.warn("server_killed", fmt.Sprintf("the server did not exit within the grace of %s after SIGTERM and was killed", grace),
			"a server should exit on SIGTERM; check server.log")
	}
}

// emit writes one event. An event without a time gets now, and never one
// before the last event's: the traffic's edges are on the load client's
// clock, which a wall-clock step can set apart from time.Now.
func (s *serveExecution) emit(ev record.Event) {
	if ev.T == 0 {
		ev.T = max(time.Now().UnixNano(), s.lastT)
	}
	s.lastT = max(s.lastT, ev.T)
	b, _ := json.Marshal(ev)
	s.ev.Write(append(b, '\n'))
}

func (s *serveExecution) phase(name, edge string) {
	s.emit(record.Event{Event: record.EventPhase, Phase: name, Edge: edge})
}

func (s *serveExecution) warn(code, msg, hint string) {
	s.emit(record.Event{Event: record.EventWarning, Code: code, Message: msg, Hint: hint})
}

// open creates requests.ndjson.
func (s *serveExecution) open(dir string) (err error) {
	s.reqf, err = os.Create(filepath.Join(dir, requestsFile))
	return err
}

// openLog creates server.log (capped like worker.log) for a server about
// to start.
func (s *serveExecution) openLog(dir string) (err error) {
	if s.logf, err = os.Create(filepath.Join(dir, serverLog)); err != nil {
		return err
	}
	logMax := s.o.LogMax
	if logMax <= 0 {
		logMax = 256 << 20
	}
	s.lw = &logWriter{w: bufio.NewWriterSize(s.logf, 64<<10), max: logMax}
	s.slog = &tailWriter{w: s.lw}
	return nil
}

// closeFiles puts both files on disk; an error means the run's files are
// incomplete.
func (s *serveExecution) closeFiles() error {
	var errs []error
	if s.lw != nil {
		s.lw.mu.Lock()
		errs = append(errs, s.lw.w.Flush())
		s.lw.mu.Unlock()
	}
	for _, f := range []*os.File{s.logf, s.reqf} {
		if f != nil {
			errs = append(errs, f.Sync(), f.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("serving run files: %w", err)
	}
	return nil
}

// freePort is a TCP port free on the loopback interface now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverProc is a server running through a runner: Run in a goroutine,
// stopped by cancelling its context.
type serverProc struct {
	cancel   context.CancelFunc
	done     chan struct{} // closed when Run returned: the server is gone
	res      runner.Result
	err      error
	once     sync.Once
	stopTook time.Duration
}

func startServer(ctx context.Context, rn runner.Runner, spec runner.Spec) *serverProc {
	sctx, cancel := context.WithCancel(ctx)
	p := &serverProc{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.res, p.err = rn.Run(sctx, spec)
	}()
	return p
}

// stop stops the server and waits for it; true the first time, when the
// server was still running.
func (p *serverProc) stop() (stopped bool) {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		stopped = true
		t := time.Now()
		p.cancel()
		<-p.done
		p.stopTook = time.Since(t)
	})
	p.cancel()
	return stopped
}

// tailWriter passes the server's output on and keeps its last bytes.
type tailWriter struct {
	w   io.Writer
	mu  sync.Mutex
	buf []byte
}

const tailKeep = 2 << 10

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*tailKeep {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailKeep:]...)
	}
	t.mu.Unlock()
	return t.w.Write(p)
}

// tail is the last n non-empty lines, joined with " | ", at most 600 bytes.
func (t *tailWriter) tail(n int) string {
	t.mu.Lock()
	lines := strings.Split(string(t.buf), "\n")
	t.mu.Unlock()
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			keep = append([]string{l}, keep...)
		}
	}
	return clip(strings.Join(keep, " | "), 600)
}

package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// standin is a scripted OpenAI-compatible server on 127.0.0.1: it lists
// one model, records every request body, and answers two tokens, a usage
// chunk and [DONE]. With hold set, each request from the hold-th on tells
// arrivals it came and waits for release (or for the client to go).
type standin struct {
	t        *testing.T
	mu       sync.Mutex
	bodies   []requestBody
	active   int
	peak     int
	hold     int // 0: never
	arrivals chan struct{}
	release  chan struct{}
	status   int // non-zero: answer every completion with this status
}

func newStandin(t *testing.T) (*standin, string) {
	s := &standin{t: t, arrivals: make(chan struct{}, 10000), release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"served-model","object":"model","root":"served-model"}]}`)
	})
	mux.HandleFunc("POST /v1/completions", s.complete)
	mux.HandleFunc("POST /v1/chat/completions", s.complete)
	srv := newServer(t, mux)
	return s, srv.URL + "/v1"
}

func (s *standin) complete(w http.ResponseWriter, r *http.Request) {
	var b requestBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		s.t.Errorf("request body: %v", err)
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, b)
	n := len(s.bodies)
	s.active++
	s.peak = max(s.peak, s.active)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.active--; s.mu.Unlock() }()
	if s.status != 0 {
		http.Error(w, "no", s.status)
		return
	}
	if s.hold > 0 && n >= s.hold {
		s.arrivals <- struct{}{}
		select {
		case <-s.release:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, "data: {\"choices\":[{\"text\":\"a\"}]}\n\n")
	io.WriteString(w, "data: {\"choices\":[{\"text\":\"b\",\"finish_reason\":\"length\"}]}\n\n")
	io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n")
}

func (s *standin) peakNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// await waits for the server to report n more arrivals.
func (s *standin) await(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.arrivals:
		case <-time.After(failsafe):
			t.Fatal("a request never arrived")
		}
	}
}

func opts(url string) *cmdOpts {
	return &cmdOpts{URL: url, Arrival: ArrivalPoisson, Burstiness: 1, Dataset: "synthetic", InputLen: 8, OutputLen: 2,
		CharsPerTok: 1, API: "completions", Timeout: failsafe, Stall: failsafe, Drain: failsafe, LagWarn: time.Second, Spin: 0}
}

// records validates the output against the schema and returns it by id.
func records(t *testing.T, out []byte) []record.Request {
	t.Helper()
	counts, err := schemas.CheckNDJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	var recs []record.Request
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var r record.Request
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if counts["request"] != len(recs) {
		t.Fatalf("%d lines checked as request records of %d", counts["request"], len(recs))
	}
	slices.SortFunc(recs, func(a, b record.Request) int { return a.ID - b.ID })
	for i, r := range recs {
		if r.ID != i {
			t.Fatalf("ids %d…: request %d missing or repeated", recs[0].ID, i)
		}
	}
	return recs
}

func TestRunOpenLoop(t *testing.T) {
	s, url := newStandin(t)
	o := opts(url)
	o.Arrival, o.Rate, o.NumRequests, o.Seed = ArrivalConstant, 4000, 40, 1
	var out, errb bytes.Buffer
	if err := run(context.Background(), o, &out, &errb, Clock()); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	recs := records(t, out.Bytes())
	if len(recs) != 40 {
		t.Fatalf("%d records, want 40", len(recs))
	}
	for i, r := range recs {
		if r.Status != record.ReqOK || r.OutputTokens != 2 || *r.InputTokens != 3 {
			t.Errorf("request %d: %s, %d tokens", i, r.Status, r.OutputTokens)
		}
		// The schedule is exact: 250 µs apart from the first.
		if got := *r.TScheduledNS - *recs[0].TScheduledNS; got != int64(i)*250_000 {
			t.Errorf("request %d scheduled at +%d ns, want %d", i, got, i*250_000)
		}
		if *r.SendLagNS != r.TStartNS-*r.TScheduledNS {
			t.Errorf("request %d: send lag %d ≠ t_start − t_scheduled", i, *r.SendLagNS)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bodies {
		if b.Model != "served-model" || !b.Stream || !b.StreamOptions.IncludeUsage || len(b.Prompt) != 8 || b.MaxTokens != 2 || b.IgnoreEOS {
			t.Fatalf("request body %+v", b)
		}
	}
	if !strings.Contains(errb.String(), "40 requests in") || !strings.Contains(errb.String(), "40 ok, 0 failed") {
		t.Errorf("summary:\n%s", errb.String())
	}
}

func TestRunTraceReplay(t *testing.T) {
	s, url := newStandin(t)
	trace := writeFile(t, "t.jsonl", `{"offset_s": 0.004, "input_tokens": 40, "output_tokens": 4}
{"offset_s": 0, "input_tokens": 10, "output_tokens": 1}
{"offset_s": 0.0015, "input_tokens": 20, "output_tokens": 2}
{"offset_s": 0.0015, "input_tokens": 30, "output_tokens": 3}
`)
	o := opts(url)
	o.Trace, o.API, o.Model = trace, "chat", "mine"
	var out, errb bytes.Buffer
	if err := run(context.Background(), o, &out, &errb, Clock()); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	recs := records(t, out.Bytes())
	wantOff := []int64{0, 1_500_000, 1_500_000, 4_000_000}
	for i, r := range recs {
		if got := *r.TScheduledNS - *recs[0].TScheduledNS; got != wantOff[i] || *r.MaxTokens != i+1 {
			t.Errorf("request %d: +%d ns, max_tokens %d; want +%d, %d", i, got, *r.MaxTokens, wantOff[i], i+1)
		}
	}
	var got []string
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bodies {
		if b.Model != "mine" || !b.IgnoreEOS || len(b.Messages) != 1 || b.MaxTokens != 0 {
			t.Errorf("chat body %+v", b)
		}
		got = append(got, strings.Repeat("x", len(b.Messages[0].Content)/10)+string(rune('0'+b.MaxCompletionTokens)))
	}
	slices.Sort(got)
	if strings.Join(got, " ") != "x1 xx2 xxx3 xxxx4" {
		t.Errorf("prompt lengths/10 and max_completion_tokens: %v", got)
	}
}

func TestRunDataset(t *testing.T) {
	s, url := newStandin(t)
	ds := writeFile(t, "d.jsonl", `{"_meta": "provenance header, skipped"}
{"prompt": "first prompt"}
{"text": "second"}
`)
	o := opts(url)
	o.Dataset, o.Rate, o.NumRequests = ds, 1e6, 3
	if err := run(context.Background(), o, io.Discard, io.Discard, Clock()); err != nil {
		t.Fatal(err)
	}
	var got []string
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bodies {
		got = append(got, b.Prompt)
	}
	slices.Sort(got)
	if strings.Join(got, "|") != "first prompt|first prompt|second" {
		t.Errorf("prompts sent: %q, want the file's two in turn", got)
	}
}

func TestRunMaxInFlight(t *testing.T) {
	s, url := newStandin(t)
	s.hold = 1
	o := opts(url)
	o.Rate, o.NumRequests, o.MaxInFlight = 1e6, 6, 2
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() { done <- run(context.Background(), o, &out, &errb, Clock()) }()
	// Hold two requests at a time: a third arriving would break the cap.
	s.await(t, 2)
	for range 4 {
		s.release <- struct{}{}
		s.await(t, 1)
	}
	s.release <- struct{}{}
	s.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if recs := records(t, out.Bytes()); len(recs) != 6 || s.peakNow() != 2 {
		t.Errorf("%d records, peak %d in flight; want 6, 2", len(recs), s.peak)
	}
}

func TestRunClosedLoop(t *testing.T) {
	s, url := newStandin(t)
	s.hold = 1
	o := opts(url)
	o.Concurrency, o.NumRequests = 3, 9
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() { done <- run(context.Background(), o, &out, &errb, Clock()) }()
	s.await(t, 3)
	for range 6 {
		s.release <- struct{}{}
		s.await(t, 1)
	}
	for range 3 {
		s.release <- struct{}{}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs := records(t, out.Bytes())
	if len(recs) != 9 || s.peakNow() != 3 {
		t.Errorf("%d records, peak %d in flight; want 9, 3", len(recs), s.peak)
	}
	for _, r := range recs {
		if r.TScheduledNS != nil || r.SendLagNS != nil {
			t.Errorf("closed loop request %d has a schedule", r.ID)
		}
	}
}

func TestRunInterrupt(t *testing.T) {
	s, url := newStandin(t)
	s.hold = 4 // requests 0–2 are answered, the rest hang
	o := opts(url)
	o.Arrival, o.Rate, o.NumRequests, o.Drain = ArrivalConstant, 1000, 1000, 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := &lineWriter{lines: make(chan struct{}, 10000)}
	var errb bytes.Buffer
	go func() { done <- run(ctx, o, out, &errb, Clock()) }()
	s.await(t, 2) // two requests hang
	for range 3 { // the three answered are written
		select {
		case <-out.lines:
		case <-time.After(failsafe):
			t.Fatal("a record was never written")
		}
	}
	cancel() // as SIGINT does
	err := <-done
	if cli.Code(err) != cli.ExitInterrupted {
		t.Fatalf("exit %d (%v), want %d", cli.Code(err), err, cli.ExitInterrupted)
	}
	recs := records(t, out.buf.Bytes()) // every request sent has its record
	if len(recs) < 5 || len(recs) == 1000 {
		t.Fatalf("%d records after an interrupt at the fifth arrival", len(recs))
	}
	// The server answered the first three to arrive (not necessarily ids
	// 0–2: concurrent requests may overtake each other).
	byStatus := map[string]int{}
	for _, r := range recs {
		byStatus[r.Status]++
	}
	if byStatus[record.ReqOK] != 3 || byStatus[record.ReqCancelled] != len(recs)-3 {
		t.Errorf("statuses %v of %d records, want 3 ok and the rest cancelled", byStatus, len(recs))
	}
	if !strings.Contains(err.Error(), "interrupted after") {
		t.Errorf("error %v", err)
	}
}

func TestRunClosedLoopInterrupt(t *testing.T) {
	s, url := newStandin(t)
	s.hold = 1
	o := opts(url)
	o.Concurrency, o.NumRequests, o.Drain = 2, 100, 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() { done <- run(ctx, o, &out, &errb, Clock()) }()
	s.await(t, 2)
	cancel()
	if err := <-done; cli.Code(err) != cli.ExitInterrupted {
		t.Fatalf("exit %d (%v), want %d", cli.Code(err), err, cli.ExitInterrupted)
	}
	recs := records(t, out.Bytes())
	if len(recs) != 2 || recs[0].Status != record.ReqCancelled || recs[1].Status != record.ReqCancelled {
		t.Errorf("records %+v, want two cancelled", recs)
	}
}

// TestCommandSIGINT sends the process a real SIGINT once a request is in
// flight (Command's handler is installed before anything is sent).
func TestCommandSIGINT(t *testing.T) {
	s, url := newStandin(t)
	s.hold = 1
	args := []string{"--url", url, "--rate", "1000", "-n", "1000", "--arrival", "constant", "--drain", "0s", "-q"}
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- cli.Run("llem-load", Command, args, nil, &out, &errb) }()
	s.await(t, 1)
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != cli.ExitInterrupted {
		t.Fatalf("exit %d, want %d: %s", code, cli.ExitInterrupted, errb.String())
	}
	recs := records(t, out.Bytes())
	if len(recs) == 0 || len(recs) == 1000 {
		t.Errorf("%d records after SIGINT", len(recs))
	}
	if !strings.Contains(errb.String(), "llem-load: interrupted after") {
		t.Errorf("stderr: %s", errb.String())
	}
}

// lineWriter is an output that tells lines when a record was written.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for range bytes.Count(p, []byte("\n")) {
		w.lines <- struct{}{}
	}
	return w.buf.Write(p)
}

func TestRunFailures(t *testing.T) {
	s, url := newStandin(t)
	s.status = 503
	o := opts(url)
	o.Rate, o.NumRequests = 1e6, 3
	var out, errb bytes.Buffer
	err := run(context.Background(), o, &out, &errb, Clock())
	if err == nil || !strings.Contains(err.Error(), "none of the 3 requests succeeded (http_error 3)") {
		t.Errorf("error %v", err)
	}
	if recs := records(t, out.Bytes()); len(recs) != 3 || *recs[2].HTTPStatus != 503 {
		t.Errorf("records %+v", recs)
	}
	// No model listed, none named.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"data":[]}`) })
	srv := newServer(t, mux)
	o = opts(srv.URL + "/v1")
	o.Rate, o.NumRequests = 1, 1
	err = run(context.Background(), o, io.Discard, io.Discard, Clock())
	if err == nil || !strings.Contains(err.Error(), "--model") {
		t.Errorf("no model: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRunWriteError(t *testing.T) {
	_, url := newStandin(t)
	o := opts(url)
	o.Rate, o.NumRequests = 1e6, 5
	err := run(context.Background(), o, failWriter{}, io.Discard, Clock())
	if err == nil || err.Error() != "writing records: disk full" {
		t.Errorf("error %v, want writing records: disk full", err)
	}
}

func TestUsageErrors(t *testing.T) {
	trace := writeFile(t, "t.jsonl", `{"offset_s": 0, "input_tokens": 1, "output_tokens": 1}`)
	for _, args := range [][]string{
		{"--rate", "1", "-n", "1"},
		{"--url", "ftp://x", "--rate", "1", "-n", "1"},
		{"--url", "http://127.0.0.1:1/v1", "-n", "1"},
		{"--url", "http://127.0.0.1:1/v1", "--rate", "1"},
		{"--url", "http://127.0.0.1:1/v1", "--rate", "1", "--trace", trace},
		{"--url", "http://127.0.0.1:1/v1", "--rate", "1", "--concurrency", "2", "-n", "3"},
		{"--url", "http://127.0.0.1:1/v1", "--concurrency", "2"},
		{"--url", "http://127.0.0.1:1/v1", "--rate", "1", "-n", "1", "--burstiness", "0.5"},
		{"--url", "http://127.0.0.1:1/v1", "--rate", "1", "-n", "1", "--arrival", "uniform"},
		{"--url", "http://127.0.0.1:1/v1", "--rate", "1", "-n", "1", "--output-len", "0"},
		{"--url", "http://127.0.0.1:1/v1", "--rate", "1", "-n", "1", "--dataset", "nope.txt"},
		{"--url", "http://127.0.0.1:1/v1", "--rate", "1", "-n", "1", "--dataset", filepath.Join(t.TempDir(), "none.jsonl")},
		{"--url", "http://127.0.0.1:1/v1", "--trace", filepath.Join(t.TempDir(), "none.csv")},
	} {
		var errb bytes.Buffer
		if code := cli.Run("llem-load", Command, args, nil, io.Discard, &errb); code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, cli.ExitUsage, errb.String())
		}
		if n := strings.Count(errb.String(), "\n"); n != 1 {
			t.Errorf("%v: %d lines of error, want 1: %s", args, n, errb.String())
		}
	}
}

package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// failsafe bounds every wait of a test on the other side; reaching it is a
// failure, never a way to synchronise.
const failsafe = 20 * time.Second

// lockstep is a clock the scripted server drives: the server sets the time,
// sends one event, and waits until the client has read the clock for it
// (Client.Now is read once per event), so every measured interval is exactly
// the scripted one whatever the machine's load.
type lockstep struct {
	now   atomic.Int64
	reads chan int64
}

func newLockstep(t0 int64) *lockstep {
	l := &lockstep{reads: make(chan int64, 1024)}
	l.now.Store(t0)
	return l
}

func (l *lockstep) Now() int64 {
	v := l.now.Load()
	select {
	case l.reads <- v:
	default:
	}
	return v
}

// awaitRead waits for the client's next clock reading.
func (l *lockstep) awaitRead(t *testing.T) bool {
	select {
	case <-l.reads:
		return true
	case <-time.After(failsafe):
		t.Error("the client never read the clock")
		return false
	}
}

// event is one scripted server-sent event: sent at time at.
type event struct {
	at   int64
	data string
}

// scripted answers each request with script, in lockstep with clock.
func scripted(t *testing.T, clock *lockstep, script []event) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		if !clock.awaitRead(t) { // the reading just before the request was sent
			return
		}
		for _, e := range script {
			clock.now.Store(e.at)
			fmt.Fprintf(w, "data: %s\n\n", e.data)
			w.(http.Flusher).Flush()
			if !clock.awaitRead(t) {
				return
			}
		}
	}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h) // listens on 127.0.0.1
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func testClient(srv *httptest.Server, now func() int64, chat bool) *Client {
	ep := srv.URL + "/v1/completions"
	if chat {
		ep = srv.URL + "/v1/chat/completions"
	}
	return &Client{HTTP: &http.Client{Transport: NewTransport(16)}, Endpoint: ep, Chat: chat, Model: "m",
		Timeout: failsafe, Stall: failsafe, Now: now}
}

// checkRecord validates rec against the request schema.
func checkRecord(t *testing.T, rec record.Request) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Validate("request", b); err != nil {
		t.Errorf("%v\n%s", err, b)
	}
}

const t0 = int64(1_700_000_000_000_000_000)

func TestExactTimingsCompletions(t *testing.T) {
	clock := newLockstep(t0)
	srv := newServer(t, scripted(t, clock, []event{
		{t0 + 5_000_000, `{"choices":[{"index":0,"text":"a","finish_reason":null}]}`},
		{t0 + 7_000_000, `{"choices":[{"index":0,"text":"b","finish_reason":null}]}`},
		{t0 + 7_500_123, `{"choices":[{"index":0,"text":"c","finish_reason":"length"}]}`},
		{t0 + 8_000_000, `{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`},
		{t0 + 9_000_000, `[DONE]`},
	}))
	rec := testClient(srv, clock.Now, false).Do(context.Background(), 4, Spec{Prompt: "hi", MaxTokens: 3})
	checkRecord(t, rec)
	if rec.Status != record.ReqOK || rec.Error != nil {
		t.Fatalf("status %s, error %v", rec.Status, deref(rec.Error))
	}
	if rec.TStartNS != t0 || *rec.TFirstNS != t0+5_000_000 || rec.TEndNS != t0+7_500_123 {
		t.Errorf("t_start %d, t_first_token %d, t_end %d", rec.TStartNS-t0, *rec.TFirstNS-t0, rec.TEndNS-t0)
	}
	if fmt.Sprint(rec.ITLNS) != "[2000000 500123]" {
		t.Errorf("itl_ns %v, want [2000000 500123]", rec.ITLNS)
	}
	if rec.OutputTokens != 3 || *rec.InputTokens != 9 || rec.TokensSource != record.TokensUsage || *rec.MaxTokens != 3 || rec.ID != 4 {
		t.Errorf("tokens: %+v", rec)
	}
}

func TestExactTimingsChatCounted(t *testing.T) {
	// A role-only first chunk counts for the first token (as vLLM's
	// benchmark does) but not as text; no usage: tokens are counted.
	clock := newLockstep(t0)
	srv := newServer(t, scripted(t, clock, []event{
		{t0 + 1_000, `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`},
		{t0 + 3_000, `{"choices":[{"index":0,"delta":{"content":"Hel"}}]}`},
		{t0 + 6_000, `{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`},
		{t0 + 9_000, `[DONE]`},
	}))
	rec := testClient(srv, clock.Now, true).Do(context.Background(), 0, Spec{Prompt: "hi", MaxTokens: 5})
	checkRecord(t, rec)
	if rec.Status != record.ReqOK || *rec.TFirstNS != t0+1_000 || rec.TEndNS != t0+6_000 || fmt.Sprint(rec.ITLNS) != "[2000 3000]" {
		t.Errorf("status %s first %d end %d itl %v", rec.Status, *rec.TFirstNS-t0, rec.TEndNS-t0, rec.ITLNS)
	}
	if rec.OutputTokens != 2 || rec.TokensSource != record.TokensCounted || rec.InputTokens != nil {
		t.Errorf("tokens %d from %s, input %v; want 2 counted, null", rec.OutputTokens, rec.TokensSource, rec.InputTokens)
	}
}

func TestContinuousUsage(t *testing.T) {
	// Cumulative usage on every chunk: the last value is the total.
	clock := newLockstep(t0)
	srv := newServer(t, scripted(t, clock, []event{
		{t0 + 10, `{"choices":[{"text":"ab"}],"usage":{"prompt_tokens":4,"completion_tokens":2}}`},
		{t0 + 20, `{"choices":[{"text":"cde","finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":5}}`},
		{t0 + 30, `[DONE]`},
	}))
	rec := testClient(srv, clock.Now, false).Do(context.Background(), 0, Spec{Prompt: "x", MaxTokens: 5})
	if rec.Status != record.ReqOK || rec.OutputTokens != 5 || *rec.InputTokens != 4 || rec.TokensSource != record.TokensUsage {
		t.Errorf("status %s, tokens %d/%v from %s", rec.Status, rec.OutputTokens, rec.InputTokens, rec.TokensSource)
	}
}

// abort breaks the connection mid-stream.
func abort(w http.ResponseWriter) { panic(http.ErrAbortHandler) }

func TestFailureStatuses(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	chunk := func(w http.ResponseWriter, s string) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: "+s+"\n\n")
		w.(http.Flusher).Flush()
	}
	tok := `{"choices":[{"text":"a"}]}`
	handlers := map[string]http.HandlerFunc{
		"/429": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"message":"slow down","type":"rate_limit","code":"429"}}`)
		},
		"/500": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "engine crashed", http.StatusInternalServerError)
		},
		"/disconnect": func(w http.ResponseWriter, r *http.Request) { chunk(w, tok); abort(w) },
		"/malformed": func(w http.ResponseWriter, r *http.Request) {
			chunk(w, tok)
			chunk(w, `{"choices": [`)
			chunk(w, "[DONE]")
		},
		"/stall": func(w http.ResponseWriter, r *http.Request) {
			chunk(w, tok)
			select { // until the client gives up (or the test ends)
			case <-r.Context().Done():
			case <-release:
			}
		},
		"/stream-error": func(w http.ResponseWriter, r *http.Request) {
			chunk(w, tok)
			chunk(w, `{"error":{"message":"out of memory","code":500}}`)
			chunk(w, "[DONE]")
		},
		"/empty":   func(w http.ResponseWriter, r *http.Request) { chunk(w, `{"choices":[]}`); chunk(w, "[DONE]") },
		"/no-done": func(w http.ResponseWriter, r *http.Request) { chunk(w, tok) },
		"/finish-eof": func(w http.ResponseWriter, r *http.Request) {
			chunk(w, `{"choices":[{"text":"a","finish_reason":"stop"}]}`)
		},
		"/cut-line": func(w http.ResponseWriter, r *http.Request) { chunk(w, tok); io.WriteString(w, "data: {\"cho") },
	}
	mux := http.NewServeMux()
	for p, h := range handlers {
		mux.Handle(p, h)
	}
	srv := newServer(t, mux)
	cases := []struct {
		path, status string
		http         int
		msg          string
		tuned        func(*Client)
	}{
		{"/429", record.ReqHTTPError, 429, "slow down", nil},
		{"/500", record.ReqHTTPError, 500, "engine crashed", nil},
		{"/disconnect", record.ReqDisconnect, 200, "", nil},
		{"/malformed", record.ReqMalformed, 200, "not a JSON chunk", nil},
		// http 0: the timer may fire before the headers arrive on a busy machine.
		{"/stall", record.ReqTimeout, 0, "stall", func(c *Client) { c.Stall = 20 * time.Millisecond }},
		{"/stall", record.ReqTimeout, 0, "request timeout", func(c *Client) { c.Stall, c.Timeout = 0, 20*time.Millisecond }},
		{"/stream-error", record.ReqStreamError, 200, "out of memory", nil},
		{"/empty", record.ReqEmpty, 200, "without a token", nil},
		{"/no-done", record.ReqDisconnect, 200, "before [DONE]", nil},
		{"/finish-eof", record.ReqOK, 200, "", nil},
		{"/cut-line", record.ReqDisconnect, 200, "", nil},
	}
	for _, c := range cases {
		cl := testClient(srv, Clock(), false)
		cl.Endpoint = srv.URL + c.path
		if c.tuned != nil {
			c.tuned(cl)
		}
		rec := cl.Do(context.Background(), 1, Spec{Prompt: "p", MaxTokens: 2})
		checkRecord(t, rec)
		httpOK := c.http == 0 || rec.HTTPStatus != nil && *rec.HTTPStatus == c.http
		if rec.Status != c.status || !httpOK || !strings.Contains(str(rec.Error), c.msg) {
			t.Errorf("%s: status %s, http %v, error %q; want %s, %d, %q", c.path, rec.Status, deref(rec.HTTPStatus), deref(rec.Error), c.status, c.http, c.msg)
		}
		if rec.TEndNS < rec.TStartNS {
			t.Errorf("%s: t_end before t_start", c.path)
		}
	}
}

func TestConnectErrorAndCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := &Client{HTTP: &http.Client{Transport: NewTransport(1)}, Endpoint: "http://" + addr + "/v1/completions", Model: "m", Now: Clock()}
	rec := c.Do(context.Background(), 0, Spec{Prompt: "p", MaxTokens: 1})
	checkRecord(t, rec)
	if rec.Status != record.ReqConnectError || rec.HTTPStatus != nil {
		t.Errorf("closed port: status %s, http %v", rec.Status, rec.HTTPStatus)
	}

	// Cancelled once the client has read its first token (its second clock
	// reading, after the one at sending).
	clock := newLockstep(t0)
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"text\":\"a\"}]}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		for range 2 { // the reading at sending, then the first event's
			if !clock.awaitRead(t) {
				return
			}
		}
		cancel(errCancelled)
	}()
	rec = testClient(srv, clock.Now, false).Do(ctx, 0, Spec{Prompt: "p", MaxTokens: 1})
	checkRecord(t, rec)
	if rec.Status != record.ReqCancelled || rec.TFirstNS == nil {
		t.Errorf("cancelled in flight: status %s, first token %v", rec.Status, rec.TFirstNS)
	}
}

func TestSSEFraming(t *testing.T) {
	// Comments, other fields, CRLF, multi-line data and a last event
	// without its blank line.
	in := ": keep-alive\r\nevent: x\r\nid: 3\r\ndata: {\"a\":\r\ndata:1}\r\n\r\n\r\ndata: [DONE]\n"
	s := newSSEReader(strings.NewReader(in))
	var got []string
	for {
		d, err := s.next()
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		got = append(got, string(d))
	}
	if fmt.Sprintf("%q", got) != `["{\"a\":\n1}" "[DONE]"]` {
		t.Errorf("events %q", got)
	}
	long := "data: " + strings.Repeat("x", maxEventBytes+10) + "\n\n"
	if _, err := newSSEReader(strings.NewReader(long)).next(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("an over-long event gave %v", err)
	}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

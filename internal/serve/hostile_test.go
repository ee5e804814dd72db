package serve

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBadRequests: every malformed or out-of-range request gets the
// OpenAI error shape with the right status and, for a parameter, its name.
func TestBadRequests(t *testing.T) {
	ts := start(t, Config{MaxBodyBytes: 4096})
	for _, c := range []struct {
		path, body string
		status     int
		param      string
	}{
		{"/v1/completions", `{"prompt":"x",`, 400, "body"},
		{"/v1/completions", `not json`, 400, "body"},
		{"/v1/completions", ``, 400, "body"},
		{"/v1/completions", `{"prompt":"x"} {"prompt":"y"}`, 400, "body"},
		{"/v1/completions", `{"prompt":"x","max_tokens":"many"}`, 400, "max_tokens"},
		{"/v1/completions", `{"prompt":"x","temperature":"hot"}`, 400, "temperature"},
		{"/v1/completions", `{"prompt":"x","stream_options":{"include_usage":1}}`, 400, "stream_options.include_usage"},
		{"/v1/completions", `{"prompt":"x","stream":"yes"}`, 400, "stream"},
		{"/v1/completions", `{"prompt":{"a":1}}`, 400, "prompt"},
		{"/v1/completions", `{}`, 400, "prompt"},
		{"/v1/completions", `{"prompt":[1,2,99999]}`, 400, "prompt"},
		{"/v1/completions", `{"prompt":["a","b"]}`, 400, "prompt"},
		{"/v1/completions", `{"prompt":"x","max_tokens":0}`, 400, "max_tokens"},
		{"/v1/completions", `{"prompt":"x","max_tokens":256}`, 400, "max_tokens"},
		{"/v1/completions", `{"prompt":"x","max_completion_tokens":1000}`, 400, "max_completion_tokens"},
		{"/v1/completions", `{"prompt":"` + strings.Repeat("p", 256) + `"}`, 400, "prompt"},
		{"/v1/completions", `{"prompt":"x","temperature":-1}`, 400, "temperature"},
		{"/v1/completions", `{"prompt":"x","top_p":0}`, 400, "top_p"},
		{"/v1/completions", `{"prompt":"x","top_k":-2}`, 400, "top_k"},
		{"/v1/completions", `{"prompt":"x","logprobs":21}`, 400, "logprobs"},
		{"/v1/completions", `{"prompt":"x","n":2}`, 400, "n"},
		{"/v1/completions", `{"prompt":"x","stop":5}`, 400, "stop"},
		{"/v1/completions", `{"prompt":"x","echo":true}`, 400, "echo"},
		{"/v1/completions", `{"prompt":"x","model":"gpt-4"}`, 404, "model"},
		{"/v1/chat/completions", `{"messages":[]}`, 400, "messages"},
		{"/v1/chat/completions", `{"messages":[{"role":"wizard","content":"x"}]}`, 400, "messages[0].role"},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, 400, "messages[0].content[0].type"},
		{"/v1/chat/completions", `{"messages":"hi"}`, 400, "messages"},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}`, 400, "top_logprobs"},
		{"/v1/completions", `{"prompt":"` + strings.Repeat("p", 5000) + `"}`, 413, ""},
	} {
		code, body, _ := ts.post(t, c.path, c.body)
		var e struct {
			Error *apiError `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error == nil || e.Error.Message == "" {
			t.Errorf("%s %.60s: body %s is not an OpenAI error", c.path, c.body, body)
			continue
		}
		p := ""
		if e.Error.Param != nil {
			p = *e.Error.Param
		}
		if code != c.status || p != c.param {
			t.Errorf("%s %.60s: status %d param %q (%s), want %d %q", c.path, c.body, code, p, e.Error.Message, c.status, c.param)
		}
	}
	resp, err := client.Get(ts.url + "/v1/nothing")
	if err != nil || resp.StatusCode != 404 {
		t.Errorf("unknown path: %v %v", resp, err)
	}
	resp.Body.Close()
}

// dial opens a raw TCP connection to the test server.
func dial(t *testing.T, ts *testServer) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.url, "http://"), testWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedOrStatus reads from c until the server closes it, returning the
// HTTP status it sent first, if any (0: none).
func closedOrStatus(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testWait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept a stalled connection open")
		}
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSlowHeaders: a client that never finishes its headers is cut off
// after the header timeout.
func TestSlowHeaders(t *testing.T) {
	ts := start(t, Config{ReadHeaderTimeout: 200 * time.Millisecond})
	c := dial(t, ts)
	if _, err := io.WriteString(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	if code := closedOrStatus(t, c); code != 0 && code != 408 {
		t.Fatalf("status %d, want the connection closed or 408", code)
	}
}

// TestSlowBody: a client that sends its headers but not its body in time
// gets 408.
func TestSlowBody(t *testing.T) {
	ts := start(t, Config{ReadTimeout: 300 * time.Millisecond})
	c := dial(t, ts)
	if _, err := io.WriteString(c, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\":"); err != nil {
		t.Fatal(err)
	}
	if code := closedOrStatus(t, c); code != 408 && code != 0 {
		t.Fatalf("status %d, want 408 or the connection closed", code)
	}
}

// TestSlowReader: a streaming client that stops reading is dropped when a
// chunk cannot be written within the write timeout, and its sequence
// leaves the batch.
func TestSlowReader(t *testing.T) {
	ts := start(t, Config{WriteTimeout: 300 * time.Millisecond, sndbuf: 4096, Limits: Limits{MaxModelLen: 1024}})
	c := dial(t, ts)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096) // fills after a few chunks
	}
	body := `{"prompt":"never read","max_tokens":1000,"ignore_eos":true,"stream":true,"logprobs":20,"return_tokens_as_token_ids":true}`
	req := "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	ts.log.wait(t, 1)
	e := ts.log.entries(t)[0]
	if e.Error == nil || !strings.Contains(*e.Error, "write") {
		t.Fatalf("log entry %+v: want a write error", e)
	}
	ts.waitStats(t, "none running", func(s Stats) bool { return s.Running == 0 })
	if n, err := strconv.ParseFloat(ts.metric(t, "vllm:generation_tokens_total"), 64); err != nil || n >= 1000 {
		t.Fatalf("generated %v tokens (%v): the sequence was not cancelled", n, err)
	}
}

// TestIdleConnectionsBounded: far more idle connections than
// --max-connections are never served at once, and once the header timeout
// has closed them a real request is served.
func TestIdleConnectionsBounded(t *testing.T) {
	ts := start(t, Config{MaxConns: 4, ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	var idle []net.Conn
	for range 40 {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(ts.url, "http://"), testWait)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				break // the backlog is full: bounded too
			}
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	code, body, _ := ts.post(t, "/v1/completions", `{"prompt":"after the idle ones","max_tokens":2}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if p := ts.ln.Load().peak.Load(); p > 4 {
		t.Fatalf("%d connections served at once, limit 4", p)
	}
}

func TestModelsAndHealth(t *testing.T) {
	s, err := New(Config{ModelName: "m", Root: "/ckpt/m"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	if rec.Code != 503 {
		t.Fatalf("/health before the model is loaded: %d", rec.Code)
	}
	ts := start(t, Config{Root: "presets/llem-tiny"})
	resp, err := client.Get(ts.url + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/health: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = client.Get(ts.url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object, Root string
			MaxModelLen      int `json:"max_model_len"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m.Data) != 1 {
		t.Fatalf("/v1/models: %v %+v", err, m)
	}
	if d := m.Data[0]; d.ID != "llem-tiny" || d.Root != "presets/llem-tiny" || d.Object != "model" || d.MaxModelLen != 256 {
		t.Fatalf("/v1/models: %+v", d)
	}
}

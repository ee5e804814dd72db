package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llem/llem/internal/native"
	"github.com/llem/llem/internal/native/preset"
)

// testWait bounds every wait of these tests: generous, because the machine
// may be loaded; a test that hits it has hung, not been slow.
const testWait = 2 * time.Minute

var (
	tinyOnce  sync.Once
	tinyModel *native.Model
)

// tiny is llem-tiny's synthetic model, built once for all tests (the
// engine never writes to its weights).
func tiny(t testing.TB) *native.Model {
	tinyOnce.Do(func() {
		a, _ := preset.Lookup("llem-tiny")
		m, err := native.NewSynthetic(a, 1)
		if err != nil {
			panic(err)
		}
		tinyModel = m
	})
	return tinyModel
}

type testServer struct {
	*Server
	url string
	log *syncBuffer
}

// syncBuffer is a request log the test can read while the server writes.
// Every write closes and replaces changed, so a test can wait for lines.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.b.Write(p)
}

// wait waits until the log has n lines.
func (b *syncBuffer) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.NewTimer(testWait)
	defer timeout.Stop()
	for {
		b.mu.Lock()
		lines := bytes.Count(b.b.Bytes(), []byte("\n"))
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		ch := b.changed
		b.mu.Unlock()
		if lines >= n {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("request log has %d lines, want %d", lines, n)
		}
	}
}

// entries decodes the request log.
func (b *syncBuffer) entries(t *testing.T) []logEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []logEntry
	dec := json.NewDecoder(bytes.NewReader(b.b.Bytes()))
	for dec.More() {
		var e logEntry
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("request log: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// start serves llem-tiny on a real listener on 127.0.0.1. cfg's zero
// fields get small test limits.
func start(t testing.TB, cfg Config) *testServer {
	t.Helper()
	return startModel(t, cfg, tiny(t))
}

func startModel(t testing.TB, cfg Config, m *native.Model) *testServer {
	t.Helper()
	if cfg.ModelName == "" {
		cfg.ModelName = "llem-tiny"
	}
	if cfg.Limits.MaxModelLen == 0 {
		cfg.Limits.MaxModelLen = 256
	}
	if cfg.Limits.MaxNumSeqs == 0 {
		cfg.Limits.MaxNumSeqs = 16
	}
	if cfg.Threads == 0 {
		cfg.Threads = 2
	}
	lb := &syncBuffer{}
	cfg.RequestLog = lb
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(m); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{Server: s, url: "http://" + ln.Addr().String(), log: lb}
}

var client = &http.Client{Timeout: testWait}

// post sends a JSON body and returns the status and the body.
func (ts *testServer) post(t *testing.T, path, body string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := client.Post(ts.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// sseEvents reads a server-sent event stream into its data payloads.
func sseEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for i := 0; sc.Scan(); i++ {
		if i > 1<<20 {
			t.Fatal("endless stream")
		}
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, d)
		} else if line != "" {
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// chunk is the union of the fields of completion and chat chunks.
type chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Choices []struct {
		Text  string `json:"text"`
		Delta *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Message *struct {
			Content string `json:"content"`
		} `json:"message"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason *string         `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage          `json:"usage"`
	Error json.RawMessage `json:"error"`
}

func decodeChunk(t *testing.T, s string) chunk {
	t.Helper()
	var c chunk
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		t.Fatalf("chunk %q: %v", s, err)
	}
	return c
}

// ids are the token ids of a completion, read from logprobs with vLLM's
// return_tokens_as_token_ids ("token_id:N").
func ids(t *testing.T, body []byte) []int {
	t.Helper()
	var r struct {
		Choices []struct {
			Logprobs struct {
				Tokens []string `json:"tokens"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &r); err != nil || len(r.Choices) != 1 {
		t.Fatalf("response %s: %v", body, err)
	}
	var out []int
	for _, s := range r.Choices[0].Logprobs.Tokens {
		var id int
		if _, err := fmt.Sscanf(s, "token_id:%d", &id); err != nil {
			t.Fatalf("token %q: %v", s, err)
		}
		out = append(out, id)
	}
	return out
}

// waitStats waits until the scheduler's state satisfies ok.
func (ts *testServer) waitStats(t testing.TB, what string, ok func(Stats) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := ts.sched.Load().waitFor(ctx, ok); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// metric reads one unlabelled-but-model_name series from /metrics.
func (ts *testServer) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := client.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+"{") {
			return l[strings.LastIndexByte(l, ' ')+1:]
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return ""
}

// gate holds the engine before each step until the test lets it go: a
// permit per step, or close(g) for good.
type gate chan struct{}

func (g gate) wait() { <-g }

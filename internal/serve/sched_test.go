package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestClientDisconnectFreesSlot: a client that leaves mid-stream has its
// sequence dropped at the engine's next step. The engine is held between
// steps so that the count of tokens made is exact.
func TestClientDisconnectFreesSlot(t *testing.T) {
	g := make(gate)
	gone := make(chan string, 1)
	ts := start(t, Config{beforeStep: g.wait, clientGone: func(id string) { gone <- id }})
	defer close(g)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.url+"/v1/completions", strings.NewReader(`{"prompt":"leave early","max_tokens":200,"ignore_eos":true,"stream":true}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	g <- struct{}{} // one step: the prefill, which makes the first token
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	ts.waitStats(t, "one running", func(s Stats) bool { return s.Running == 1 })
	cancel() // the client goes away
	resp.Body.Close()
	<-gone          // the server saw the connection close
	g <- struct{}{} // the next step drops the sequence before computing
	ts.waitStats(t, "none running", func(s Stats) bool { return s.Running == 0 })
	if got := ts.metric(t, "vllm:num_requests_running"); got != "0" {
		t.Fatalf("vllm:num_requests_running %s after the disconnect", got)
	}
	ts.log.wait(t, 1)
	e := ts.log.entries(t)[0]
	if e.CompletionTokens == nil || *e.CompletionTokens != 1 || e.Error == nil {
		t.Fatalf("log entry %+v: want 1 token and an error", e)
	}
}

// TestQueueFull503: with one slot and a one-request queue, a third
// request gets 503 with Retry-After; the first two finish.
func TestQueueFull503(t *testing.T) {
	g := make(gate)
	ts := start(t, Config{beforeStep: g.wait, Limits: Limits{MaxNumSeqs: 1, MaxWaiting: 1}})
	statuses := ts.runningAndWaiting(t, `{"prompt":"x","max_tokens":3}`)
	code, body, h := ts.post(t, "/v1/completions", `{"prompt":"x","max_tokens":3}`)
	close(g)
	codes := statuses()
	var e struct{ Error apiError }
	if code != 503 || h.Get("Retry-After") == "" || json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
		t.Fatalf("third request: status %d, Retry-After %q, %s", code, h.Get("Retry-After"), body)
	}
	if codes[0] != 200 || codes[1] != 200 {
		t.Fatalf("first two requests: %v", codes)
	}
}

// TestKVBudgetMakesRequestsWait: a request that does not fit the KV budget
// left by the running ones waits (it is not refused), and runs after.
func TestKVBudgetMakesRequestsWait(t *testing.T) {
	g := make(gate)
	ts := start(t, Config{beforeStep: g.wait, Limits: Limits{MaxNumSeqs: 4, KVCacheTokens: 40}})
	statuses := ts.runningAndWaiting(t, `{"prompt":"0123456789","max_tokens":20,"ignore_eos":true}`)
	if st := ts.Stats(); st.KVUsedTokens != 30 {
		t.Fatalf("KV used %d, want 30", st.KVUsedTokens)
	}
	if got := ts.metric(t, "vllm:kv_cache_usage_perc"); got != "0.75" {
		t.Fatalf("vllm:kv_cache_usage_perc %s, want 0.75", got)
	}
	close(g)
	if codes := statuses(); codes[0] != 200 || codes[1] != 200 {
		t.Fatalf("statuses %v", codes)
	}
	// More than the whole budget is refused outright.
	code, body, _ := ts.post(t, "/v1/completions", `{"prompt":"0123456789","max_tokens":31}`)
	if code != 400 {
		t.Fatalf("over-budget request: status %d, %s", code, body)
	}
}

// TestMidStreamErrorAndShutdown: a graceful stop whose deadline has
// passed cancels running streams with data: {"error": …} then [DONE];
// new requests meanwhile get 503.
func TestMidStreamErrorAndShutdown(t *testing.T) {
	g := make(gate)
	ts := start(t, Config{beforeStep: g.wait})
	resp, err := client.Post(ts.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":100,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	g <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time to finish
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(ctx) }()
	ts.waitStats(t, "stopping", func(s Stats) bool { return s.Stopping })
	close(g)
	ev := sseEvents(t, resp.Body)
	if len(ev) < 3 || ev[len(ev)-1] != "[DONE]" {
		t.Fatalf("events %q: want chunks, an error, [DONE]", ev)
	}
	c := decodeChunk(t, ev[len(ev)-2])
	var e apiError
	if json.Unmarshal(c.Error, &e) != nil || !strings.Contains(e.Message, "shutting down") {
		t.Fatalf("second-last event %q: want an error", ev[len(ev)-2])
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestGracefulStopFinishesRunning: with time to spare, a stop lets running
// requests finish whole; requests arriving meanwhile get 503.
func TestGracefulStopFinishesRunning(t *testing.T) {
	g := make(gate)
	ts := start(t, Config{beforeStep: g.wait})
	res := make(chan int, 1)
	var body []byte
	go func() {
		defer close(res)
		resp, err := client.Post(ts.url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"finish me","max_tokens":9,"ignore_eos":true}`))
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		res <- resp.StatusCode
	}()
	ts.waitStats(t, "running", func(s Stats) bool { return s.Running == 1 })
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(context.Background()) }()
	ts.waitStats(t, "stopping", func(s Stats) bool { return s.Stopping })
	if code, b, _ := ts.post(t, "/v1/completions", `{"prompt":"late"}`); code != 503 {
		t.Fatalf("request during the stop: %d %s", code, b)
	}
	close(g)
	if code := <-res; code != 200 || decodeChunk(t, string(body)).Usage.CompletionTokens != 9 {
		t.Fatalf("running request: %d %s", code, body)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// runningAndWaiting sends two copies of body while the engine is held:
// the first is admitted, the second waits. The function returned waits
// for both and gives their statuses.
func (ts *testServer) runningAndWaiting(t *testing.T, body string) func() []int {
	t.Helper()
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		ts.postAsync(t, &wg, body, &codes[i])
		ts.waitStats(t, "one running, the rest waiting", func(s Stats) bool { return s.Running == 1 && s.Waiting == i })
	}
	return func() []int {
		wg.Wait()
		return codes
	}
}

// TestChunkedPrefillKeepsDecoding: a prompt longer than the step budget
// is prefilled over several steps, and in each of them the running
// sequences still decode a token: no step exceeds the budget, and no step
// leaves a running decode out.
func TestChunkedPrefillKeepsDecoding(t *testing.T) {
	type stepRows struct{ prefill, decode int }
	var mu sync.Mutex
	var steps []stepRows
	var ts *testServer
	g := make(gate)
	record := func() { // runs on the engine goroutine, between steps
		if b := &ts.sched.Load().st; b.prefill+b.decode > 0 {
			mu.Lock()
			steps = append(steps, stepRows{b.prefill, b.decode})
			mu.Unlock()
		}
		g.wait()
	}
	ts = start(t, Config{beforeStep: func() { record() }, Limits: Limits{MaxNumSeqs: 4, MaxBatchedTokens: 16}})
	var wg sync.WaitGroup
	post := func(body string) { ts.postAsync(t, &wg, body, nil) }
	for range 3 {
		post(`{"prompt":"dec","max_tokens":40,"ignore_eos":true}`)
	}
	ts.waitStats(t, "decoders arrived", func(s Stats) bool { return s.Running+s.Waiting == 3 })
	// The engine took the first as the others arrived; one step, and
	// the next loop admits them.
	g <- struct{}{}
	ts.waitStats(t, "decoders admitted", func(s Stats) bool { return s.Running == 3 })
	post(`{"prompt":"` + strings.Repeat("long prompt ", 10) + `","max_tokens":2,"ignore_eos":true}`)
	ts.waitStats(t, "long prompt queued", func(s Stats) bool { return s.Waiting == 1 })
	close(g)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	chunked := 0
	for i, st := range steps {
		if st.prefill+st.decode > 16 {
			t.Fatalf("step %d: %d rows, budget 16", i, st.prefill+st.decode)
		}
		if st.prefill > 0 && st.decode == 3 {
			chunked++
		}
	}
	// 120 prompt rows at 16-3 = 13 a step: at least 9 steps mix a chunk with the 3 decodes.
	if chunked < 9 {
		t.Fatalf("%d steps mixed prefill with the 3 decodes, want ≥ 9: %v", chunked, steps)
	}
}

// postAsync posts body to /v1/completions on its own goroutine, counted in
// wg, and stores the status in *code (if not nil).
func (ts *testServer) postAsync(t *testing.T, wg *sync.WaitGroup, body string, code *int) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, err := client.Post(ts.url+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if code != nil {
			*code = resp.StatusCode
		}
	}()
}

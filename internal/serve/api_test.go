package serve

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/llem/llem/internal/native"
)

func TestCompletionNonStreaming(t *testing.T) {
	ts := start(t, Config{})
	code, body, _ := ts.post(t, "/v1/completions", `{"model":"llem-tiny","prompt":"Hello there","max_tokens":7,"temperature":0,"ignore_eos":true,"logprobs":2,"return_tokens_as_token_ids":true}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	c := decodeChunk(t, string(body))
	if c.Object != "text_completion" || !strings.HasPrefix(c.ID, "cmpl-") || len(c.Choices) != 1 {
		t.Fatalf("response %s", body)
	}
	if u := c.Usage; u == nil || u.PromptTokens != len("Hello there") || u.CompletionTokens != 7 || u.TotalTokens != u.PromptTokens+7 {
		t.Fatalf("usage %+v, want 11 prompt + 7 completion tokens", c.Usage)
	}
	if f := c.Choices[0].FinishReason; f == nil || *f != "length" {
		t.Fatalf("finish_reason %v, want length", f)
	}
	if got := ids(t, body); len(got) != 7 {
		t.Fatalf("%d token ids, want 7", len(got))
	}
	// Token-id prompts: the same ids as the text give the same output.
	code, body2, _ := ts.post(t, "/v1/completions", `{"prompt":[`+joinIDs(tiny(t).Arch.VocabSize, "Hello there")+`],"max_tokens":7,"temperature":0,"logprobs":0,"return_tokens_as_token_ids":true}`)
	if code != 200 || fmt.Sprint(ids(t, body2)) != fmt.Sprint(ids(t, body)) {
		t.Fatalf("token-id prompt: status %d, %s; want the text prompt's tokens", code, body2)
	}
}

func TestChatNonStreaming(t *testing.T) {
	ts := start(t, Config{})
	code, body, _ := ts.post(t, "/v1/chat/completions", `{"model":"llem-tiny","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_completion_tokens":5,"temperature":0,"ignore_eos":true}`)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	c := decodeChunk(t, string(body))
	if c.Object != "chat.completion" || c.Choices[0].Message == nil || c.Usage.CompletionTokens != 5 {
		t.Fatalf("response %s", body)
	}
	// The template: "<|role|>\ncontent\n" per message, then "<|assistant|>\n".
	want := len("<|system|>\nbe brief\n<|user|>\nhi\n<|assistant|>\n")
	if c.Usage.PromptTokens != want {
		t.Fatalf("prompt_tokens %d, want %d", c.Usage.PromptTokens, want)
	}
}

// TestStreaming checks both endpoints' SSE: one chunk per token, chat's
// role chunk first, finish_reason on the last token's chunk, cumulative
// usage on every chunk with continuous_usage_stats, a final usage-only
// chunk with include_usage, then [DONE]; and the same text as without
// streaming.
func TestStreaming(t *testing.T) {
	ts := start(t, Config{})
	for _, ep := range []struct{ path, body string }{
		{"/v1/completions", `"prompt":"stream me"`},
		{"/v1/chat/completions", `"messages":[{"role":"user","content":"stream me"}]`},
	} {
		for _, opts := range []string{`{"include_usage":true,"continuous_usage_stats":true}`, `{"include_usage":false}`} {
			req := `{` + ep.body + `,"max_tokens":6,"temperature":0,"ignore_eos":true,"stream":true,"stream_options":` + opts + `}`
			code, body, h := ts.post(t, ep.path, req)
			if code != 200 || h.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("%s: status %d, %s", ep.path, code, body)
			}
			ev := sseEvents(t, strings.NewReader(string(body)))
			if ev[len(ev)-1] != "[DONE]" {
				t.Fatalf("%s: last event %q", ep.path, ev[len(ev)-1])
			}
			ev = ev[:len(ev)-1]
			chat := strings.Contains(ep.path, "chat")
			usageOnly := strings.Contains(opts, `"include_usage":true`)
			wantN := 6 + map[bool]int{true: 1}[chat] + map[bool]int{true: 1}[usageOnly]
			if len(ev) != wantN {
				t.Fatalf("%s %s: %d chunks, want %d: %q", ep.path, opts, len(ev), wantN, ev)
			}
			var text strings.Builder
			tok := 0
			for i, e := range ev {
				c := decodeChunk(t, e)
				last := i == len(ev)-1
				switch {
				case usageOnly && last:
					if len(c.Choices) != 0 || c.Usage == nil || c.Usage.CompletionTokens != 6 {
						t.Fatalf("final chunk %s: want choices [] and usage with 6 tokens", e)
					}
					continue
				case chat && i == 0:
					if c.Choices[0].Delta.Role != "assistant" {
						t.Fatalf("first chat chunk %s: want the assistant role", e)
					}
					continue
				}
				tok++
				if chat {
					text.WriteString(*c.Choices[0].Delta.Content)
				} else {
					text.WriteString(c.Choices[0].Text)
				}
				if strings.Contains(opts, "continuous") && (c.Usage == nil || c.Usage.CompletionTokens != tok) {
					t.Fatalf("chunk %d %s: want cumulative usage %d", i, e, tok)
				}
				if !strings.Contains(opts, "continuous") && c.Usage != nil {
					t.Fatalf("chunk %s carries usage without continuous_usage_stats", e)
				}
				if f := c.Choices[0].FinishReason; (f != nil) != (tok == 6) {
					t.Fatalf("chunk %d: finish_reason %v", tok, f)
				}
			}
			whole := strings.Replace(strings.Replace(req, `"stream":true`, `"stream":false`, 1), `,"stream_options":`+opts, "", 1)
			_, wb, _ := ts.post(t, ep.path, whole)
			wc := decodeChunk(t, string(wb))
			got := wc.Choices[0].Text
			if chat {
				got = wc.Choices[0].Message.Content
			}
			if got != text.String() {
				t.Fatalf("%s: streamed text %q, whole %q", ep.path, text.String(), got)
			}
		}
	}
}

// TestStopStrings: generation ends at the first stop string, which is left
// out of the text, in both modes; finish_reason is "stop".
func TestStopStrings(t *testing.T) {
	ts := start(t, Config{})
	base := `"prompt":"a stop string test","max_tokens":40,"temperature":0,"ignore_eos":true`
	_, body, _ := ts.post(t, "/v1/completions", `{`+base+`}`)
	full := decodeChunk(t, string(body)).Choices[0].Text
	// The stop string: two ASCII bytes of the output after its start (the
	// byte-level model's other bytes reach JSON as U+FFFD).
	stop := ""
	for i := 4; i+1 < len(full) && stop == ""; i++ {
		if full[i] < 0x80 && full[i+1] < 0x80 {
			stop = full[i : i+2]
		}
	}
	if stop == "" {
		t.Fatalf("no two ASCII bytes in %q to use as a stop string", full)
	}
	want := full[:strings.Index(full, stop)]
	stopJSON, _ := json.Marshal([]string{"never appears \x01\x02", stop})
	code, body, _ := ts.post(t, "/v1/completions", `{`+base+`,"stop":`+string(stopJSON)+`}`)
	c := decodeChunk(t, string(body))
	if code != 200 || c.Choices[0].Text != want || *c.Choices[0].FinishReason != "stop" {
		t.Fatalf("stop %q: status %d, text %q finish %v; want %q, stop", stop, code, c.Choices[0].Text, c.Choices[0].FinishReason, want)
	}
	_, sb, _ := ts.post(t, "/v1/completions", `{`+base+`,"stream":true,"stop":`+string(stopJSON)+`}`)
	var text strings.Builder
	for _, e := range sseEvents(t, strings.NewReader(string(sb))) {
		if e != "[DONE]" {
			text.WriteString(decodeChunk(t, e).Choices[0].Text)
		}
	}
	if text.String() != want {
		t.Fatalf("streamed with stop: %q, want %q", text.String(), want)
	}
}

func TestSeedsReproducible(t *testing.T) {
	ts := start(t, Config{})
	run := func(seed int) string {
		_, body, _ := ts.post(t, "/v1/completions", fmt.Sprintf(`{"prompt":"sample","max_tokens":16,"temperature":1.0,"top_p":0.95,"seed":%d,"ignore_eos":true,"logprobs":0,"return_tokens_as_token_ids":true}`, seed))
		return fmt.Sprint(ids(t, body))
	}
	a, b, c := run(42), run(42), run(43)
	if a != b {
		t.Fatalf("seed 42 gave %s then %s", a, b)
	}
	if a == c {
		t.Fatalf("seeds 42 and 43 gave the same tokens %s", a)
	}
}

// TestSameTokensAloneOrInBatch16: a greedy request gives the same token
// ids and log-probabilities alone and among 15 others (the engine is
// bit-identical across batch compositions, so exact equality holds).
func TestSameTokensAloneOrInBatch16(t *testing.T) {
	ts := start(t, Config{Limits: Limits{MaxNumSeqs: 16, MaxBatchedTokens: 24}})
	req := func(prompt string) string {
		return fmt.Sprintf(`{"prompt":%q,"max_tokens":20,"temperature":0,"ignore_eos":true,"logprobs":1,"return_tokens_as_token_ids":true}`, prompt)
	}
	_, alone, _ := ts.post(t, "/v1/completions", req("the request under test"))
	bodies := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := strings.Repeat(fmt.Sprintf("companion %d ", i), 1+i%4)
			if i == 9 {
				p = "the request under test"
			}
			resp, err := client.Post(ts.url+"/v1/completions", "application/json", strings.NewReader(req(p)))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if bodies[i], err = io.ReadAll(resp.Body); err != nil || resp.StatusCode != 200 {
				t.Errorf("request %d: status %d, %v", i, resp.StatusCode, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got, want := fmt.Sprint(ids(t, bodies[9])), fmt.Sprint(ids(t, alone)); got != want {
		t.Fatalf("in a batch of 16: %s; alone: %s", got, want)
	}
	var a, b struct {
		Choices []struct {
			Logprobs struct {
				TokenLogprobs []float64 `json:"token_logprobs"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	_ = json.Unmarshal(alone, &a)
	_ = json.Unmarshal(bodies[9], &b)
	if fmt.Sprint(a.Choices[0].Logprobs.TokenLogprobs) != fmt.Sprint(b.Choices[0].Logprobs.TokenLogprobs) {
		t.Fatalf("logprobs differ: batch %v, alone %v", b.Choices[0].Logprobs.TokenLogprobs, a.Choices[0].Logprobs.TokenLogprobs)
	}
}

func joinIDs(vocab int, s string) string {
	var parts []string
	for _, id := range native.NewTokenizer(vocab).Encode(nil, s, -1) {
		parts = append(parts, fmt.Sprint(id))
	}
	return strings.Join(parts, ",")
}

// TestMetrics: /metrics carries vLLM's series, named as vLLM names them,
// with the counts of what was served.
func TestMetrics(t *testing.T) {
	ts := start(t, Config{})
	for range 2 {
		if code, body, _ := ts.post(t, "/v1/completions", `{"prompt":"count me","max_tokens":5,"ignore_eos":true}`); code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
	}
	for name, want := range map[string]string{
		"vllm:generation_tokens_total": "10", "vllm:prompt_tokens_total": "16", "vllm:num_requests_running": "0",
		"vllm:num_requests_waiting": "0", "vllm:kv_cache_usage_perc": "0", "vllm:gpu_cache_usage_perc": "0",
		"vllm:time_to_first_token_seconds_count": "2", "vllm:inter_token_latency_seconds_count": "8",
		"vllm:e2e_request_latency_seconds_count": "2", "vllm:request_queue_time_seconds_count": "2",
		"vllm:request_prefill_time_seconds_count": "2", "vllm:request_decode_time_seconds_count": "2",
		"vllm:request_generation_tokens_sum": "10", "vllm:request_prompt_tokens_sum": "16",
	} {
		if got := ts.metric(t, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if got := ts.metric(t, "vllm:request_success_total"); got != "2" {
		t.Errorf("vllm:request_success_total = %s, want 2", got)
	}
	ts.metric(t, "llem:engine_step_seconds_count") // present (fails the test if not)
}

// TestChatLogprobs: chat's logprobs shape, token ids with
// return_tokens_as_token_ids, the same figures streamed and whole.
func TestChatLogprobs(t *testing.T) {
	ts := start(t, Config{})
	req := `{"messages":[{"role":"user","content":"lp"}],"max_tokens":3,"temperature":0,"ignore_eos":true,"logprobs":true,"top_logprobs":2,"return_tokens_as_token_ids":true`
	_, body, _ := ts.post(t, "/v1/chat/completions", req+`}`)
	type lp struct {
		Content []struct {
			Token       string  `json:"token"`
			Logprob     float64 `json:"logprob"`
			Bytes       []int   `json:"bytes"`
			TopLogprobs []struct {
				Token   string  `json:"token"`
				Logprob float64 `json:"logprob"`
			} `json:"top_logprobs"`
		} `json:"content"`
	}
	var whole lp
	if err := json.Unmarshal(decodeChunk(t, string(body)).Choices[0].Logprobs, &whole); err != nil || len(whole.Content) != 3 {
		t.Fatalf("logprobs %s: %v", body, err)
	}
	for _, c := range whole.Content {
		if !strings.HasPrefix(c.Token, "token_id:") || len(c.Bytes) > 1 || len(c.TopLogprobs) != 2 || c.Logprob > 0 ||
			c.TopLogprobs[0].Token != c.Token || c.TopLogprobs[0].Logprob != c.Logprob {
			t.Fatalf("greedy token %+v: want a token id, its byte, 2 top entries led by itself", c)
		}
	}
	_, sb, _ := ts.post(t, "/v1/chat/completions", req+`,"stream":true}`)
	n := 0
	for _, e := range sseEvents(t, strings.NewReader(string(sb))) {
		if e == "[DONE]" {
			continue
		}
		c := decodeChunk(t, e)
		if len(c.Choices) == 0 || c.Choices[0].Delta.Role != "" {
			continue
		}
		var one lp
		if err := json.Unmarshal(c.Choices[0].Logprobs, &one); err != nil || len(one.Content) != 1 ||
			one.Content[0].Token != whole.Content[n].Token || one.Content[0].Logprob != whole.Content[n].Logprob {
			t.Fatalf("streamed chunk %d %s: want %+v", n, e, whole.Content[n])
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d streamed tokens, want 3", n)
	}
}

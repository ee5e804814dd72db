package serve

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestOpenAIGoClient uses the official OpenAI Go client as a user would,
// pointed at llem-serve: completions and chat, whole and streamed, with
// usage; vLLM's extensions go in as extra JSON fields.
func TestOpenAIGoClient(t *testing.T) {
	ts := start(t, Config{})
	c := openai.NewClient(option.WithBaseURL(ts.url+"/v1"), option.WithAPIKey("unused"), option.WithMaxRetries(0),
		option.WithRequestTimeout(testWait), option.WithJSONSet("ignore_eos", true))
	ctx := context.Background()

	cp := openai.CompletionNewParams{Model: "llem-tiny", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon")},
		MaxTokens: openai.Int(6), Temperature: openai.Float(0)}
	comp, err := c.Completions.New(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	if comp.Usage.CompletionTokens != 6 || comp.Usage.PromptTokens != int64(len("Once upon")) || comp.Choices[0].FinishReason != "length" {
		t.Fatalf("completion %+v", comp)
	}
	cp.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	st := c.Completions.NewStreaming(ctx, cp)
	var text strings.Builder
	var usage int64
	for n := 0; st.Next(); n++ {
		ch := st.Current()
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Text)
		}
		usage = max(usage, ch.Usage.CompletionTokens)
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != comp.Choices[0].Text || usage != 6 {
		t.Fatalf("streamed completion %q (usage %d), whole %q", text.String(), usage, comp.Choices[0].Text)
	}

	chp := openai.ChatCompletionNewParams{Model: "llem-tiny", Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("terse"), openai.UserMessage("hello")},
		MaxCompletionTokens: openai.Int(5), Temperature: openai.Float(0), Seed: openai.Int(7)}
	chat, err := c.Chat.Completions.New(ctx, chp)
	if err != nil {
		t.Fatal(err)
	}
	if chat.Usage.CompletionTokens != 5 || chat.Choices[0].Message.Role != "assistant" {
		t.Fatalf("chat %+v", chat)
	}
	chp.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	cs := c.Chat.Completions.NewStreaming(ctx, chp)
	var acc openai.ChatCompletionAccumulator
	for cs.Next() {
		acc.AddChunk(cs.Current())
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != chat.Choices[0].Message.Content || acc.Usage.CompletionTokens != 5 {
		t.Fatalf("streamed chat %q (usage %+v), whole %q", acc.Choices[0].Message.Content, acc.Usage, chat.Choices[0].Message.Content)
	}
	if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "no-such-model", Messages: chp.Messages}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown model: %v, want a 404 error", err)
	}
}

// TestCurlNoBuffer reads the SSE stream with curl --no-buffer, as people
// do by hand.
func TestCurlNoBuffer(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed: skipping the curl --no-buffer check")
	}
	ts := start(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "--no-buffer", "--silent", "--show-error", "--fail-with-body",
		ts.url+"/v1/chat/completions", "-H", "Content-Type: application/json",
		"-d", `{"model":"llem-tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}`).Output()
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	var data []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, d)
		}
	}
	// role chunk, 4 tokens, usage chunk, [DONE]
	if len(data) != 7 || data[6] != "[DONE]" || !strings.Contains(data[5], `"completion_tokens":4`) {
		t.Fatalf("curl read %d events: %q", len(data), data)
	}
}

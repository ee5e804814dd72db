package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/llem/llem/internal/native"
)

// maxLogprobs bounds logprobs / top_logprobs, as OpenAI's API does.
const maxLogprobs = 20

// promptTokens decodes a completion prompt: a string, an array of token
// ids, or an array holding one string (several prompts in one request are
// refused: each would be its own sequence with its own response choice).
func (s *Server) promptTokens(raw json.RawMessage) ([]int32, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, badParam("prompt", "prompt: missing; want a string or an array of token ids")
	}
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return s.tok.Encode(nil, text, -1), nil
	}
	var ids []int64
	if err := json.Unmarshal(raw, &ids); err == nil {
		if len(ids) == 0 {
			return nil, badParam("prompt", "prompt: empty array of token ids")
		}
		out := make([]int32, len(ids))
		v := s.model.Arch.VocabSize
		for i, id := range ids {
			if id < 0 || id >= int64(v) {
				return nil, badParam("prompt", "prompt[%d]: token id %d outside the vocabulary 0..%d", i, id, v-1)
			}
			out[i] = int32(id)
		}
		return out, nil
	}
	var texts []string
	if err := json.Unmarshal(raw, &texts); err == nil {
		if len(texts) != 1 {
			return nil, badParam("prompt", "prompt: %d prompts in one request; send one per request", len(texts))
		}
		return s.tok.Encode(nil, texts[0], -1), nil
	}
	return nil, badParam("prompt", "prompt: want a string or an array of token ids")
}

// chatPrompt renders messages with llem-serve's chat template (docs/serve.md):
// "<|role|>\n" content "\n" per message, then "<|assistant|>\n".
func (s *Server) chatPrompt(msgs []chatMessage) ([]int32, error) {
	if len(msgs) == 0 {
		return nil, badParam("messages", "messages: want at least one message")
	}
	var b strings.Builder
	for i, m := range msgs {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return nil, badParam(fmt.Sprintf("messages[%d].role", i), "messages[%d].role: %q, want system, developer, user, assistant or tool", i, m.Role)
		}
		text, err := messageText(m.Content, i)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "<|%s|>\n%s\n", m.Role, text)
	}
	b.WriteString("<|assistant|>\n")
	return s.tok.Encode(nil, b.String(), -1), nil
}

// messageText is a message's content: a string, or an array of parts of
// which only {"type": "text", "text": …} are understood.
func messageText(raw json.RawMessage, i int) (string, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return text, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", badParam(fmt.Sprintf("messages[%d].content", i), "messages[%d].content: want a string or an array of text parts", i)
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "text" {
			return "", badParam(fmt.Sprintf("messages[%d].content[%d].type", i, j), "messages[%d].content[%d].type: %q, only text parts are supported", i, j, p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// genParams checks what both endpoints share and builds the engine's side
// of a request. promptParam names the field the prompt came from.
func (s *Server) genParams(c *common, prompt []int32, promptParam string, logprobs int) (genParams, error) {
	var p genParams
	if c.N != nil && *c.N != 1 {
		return p, badParam("n", "n: %d, only 1 choice per request is supported", *c.N)
	}
	if c.MinTokens < 0 {
		return p, badParam("min_tokens", "min_tokens: %d, want ≥ 0", c.MinTokens)
	}
	modelLen := s.cfg.Limits.MaxModelLen
	if len(prompt) >= modelLen {
		return p, badParam(promptParam, "%s: %d tokens, but this model's maximum context length is %d tokens (prompt and completion together)", promptParam, len(prompt), modelLen)
	}
	maxNew, err := c.maxNew(len(prompt), modelLen)
	if err != nil {
		return p, err
	}
	temp, topP, minP, rep, topK, err := c.sampling()
	if err != nil {
		return p, err
	}
	stops, err := c.stops()
	if err != nil {
		return p, err
	}
	dec := native.Decoding{Greedy: temp == 0, Temperature: temp, TopK: topK, TopP: topP, MinP: minP, RepetitionPenalty: rep, MinNewTokens: c.MinTokens}
	if dec.Greedy {
		dec.Temperature, dec.TopK, dec.TopP, dec.MinP = 0, 0, 1, 0
	}
	if err := dec.Check(); err != nil {
		return p, badParam("body", "%v", err)
	}
	seed := rand.Uint64()
	if c.Seed != nil {
		seed = uint64(*c.Seed)
	}
	return genParams{prompt: prompt, maxNew: maxNew, dec: dec, seed: seed, ignoreEOS: c.IgnoreEOS, stops: stops, logprobs: logprobs}, nil
}

func (s *Server) completionParams(req *completionRequest) (genParams, error) {
	if req.Echo {
		return genParams{}, badParam("echo", "echo: not supported")
	}
	lp := -1
	if req.Logprobs != nil {
		if *req.Logprobs < 0 || *req.Logprobs > maxLogprobs {
			return genParams{}, badParam("logprobs", "logprobs: %d, want 0..%d", *req.Logprobs, maxLogprobs)
		}
		lp = *req.Logprobs
	}
	prompt, err := s.promptTokens(req.Prompt)
	if err != nil {
		return genParams{}, err
	}
	return s.genParams(&req.common, prompt, "prompt", lp)
}

func (s *Server) chatParams(req *chatRequest) (genParams, error) {
	lp := -1
	if req.TopLogprobs != nil {
		if !req.Logprobs {
			return genParams{}, badParam("top_logprobs", "top_logprobs: needs logprobs: true")
		}
		if *req.TopLogprobs < 0 || *req.TopLogprobs > maxLogprobs {
			return genParams{}, badParam("top_logprobs", "top_logprobs: %d, want 0..%d", *req.TopLogprobs, maxLogprobs)
		}
	}
	if req.Logprobs {
		lp = 0
		if req.TopLogprobs != nil {
			lp = *req.TopLogprobs
		}
	}
	prompt, err := s.chatPrompt(req.Messages)
	if err != nil {
		return genParams{}, err
	}
	return s.genParams(&req.common, prompt, "messages", lp)
}

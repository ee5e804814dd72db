package serve

import (
	"math"
	"strings"
	"time"

	"github.com/llem/llem/internal/native"
)

// shape formats a request's output for its endpoint: streaming chunks and
// the whole response.
type shape interface {
	start(created int64) any // a chunk before the first token (chat's role), or nil
	chunk(ev event, u *usage, acc *accumulated, created int64) any
	usageChunk(u *usage, created int64) any
	whole(acc *accumulated, u *usage) any
}

// accumulated is what a request produced so far.
type accumulated struct {
	text   strings.Builder
	tokens int
	finish string
	offset int // bytes of the tokens' texts so far (completions' text_offset)
	compl  *completionLogprobs
	chat   []chatLogprob
}

func (a *accumulated) add(ev event, sh shape) {
	a.text.WriteString(ev.text)
	a.tokens = ev.made
	if ev.finish != "" {
		a.finish = ev.finish
	}
	switch sh := sh.(type) {
	case completionShape:
		if sh.lp >= 0 {
			one := sh.logprobs(ev, a)
			if a.compl == nil {
				a.compl = &completionLogprobs{}
			}
			a.compl.Tokens = append(a.compl.Tokens, one.Tokens...)
			a.compl.TokenLogprobs = append(a.compl.TokenLogprobs, one.TokenLogprobs...)
			a.compl.TopLogprobs = append(a.compl.TopLogprobs, one.TopLogprobs...)
			a.compl.TextOffset = append(a.compl.TextOffset, one.TextOffset...)
		}
	case chatShape:
		if sh.lp >= 0 {
			a.chat = append(a.chat, sh.logprob(ev))
		}
	}
}

// tokens names and spells token ids.
type tokens struct {
	tok      native.Tokenizer
	tokenIDs bool // vLLM's return_tokens_as_token_ids: "token_id:<id>"
}

func (t tokens) name(id int32) string {
	if t.tokenIDs {
		return "token_id:" + itoa(int(id))
	}
	return string(t.tok.Decode(nil, []int32{id}))
}

func (t tokens) bytes(id int32) []int {
	b := t.tok.Decode(nil, []int32{id})
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// finite keeps a log-probability JSON can carry (OpenAI sends -9999 for
// an impossible token).
func finite(x float64) float64 {
	if math.IsInf(x, -1) || math.IsNaN(x) {
		return -9999
	}
	return x
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// completionShape formats /v1/completions.
type completionShape struct {
	tokens
	id, model string
	lp        int // logprobs asked; -1: none
}

type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type completionChoice struct {
	Index        int                 `json:"index"`
	Text         string              `json:"text"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

func (c completionShape) logprobs(ev event, acc *accumulated) *completionLogprobs {
	top := make(map[string]float64, len(ev.top))
	for _, t := range ev.top {
		top[c.name(t.ID)] = finite(t.Logprob)
	}
	lp := &completionLogprobs{Tokens: []string{c.name(ev.token)}, TokenLogprobs: []float64{finite(ev.logprob)},
		TopLogprobs: []map[string]float64{top}, TextOffset: []int{acc.offset}}
	acc.offset += len(c.tok.Decode(nil, []int32{ev.token}))
	return lp
}

func (c completionShape) start(int64) any { return nil }

func (c completionShape) chunk(ev event, u *usage, acc *accumulated, created int64) any {
	ch := completionChoice{Text: ev.text, FinishReason: nullable(ev.finish)}
	if c.lp >= 0 {
		ch.Logprobs = c.logprobs(ev, acc)
	}
	return completionResponse{ID: c.id, Object: "text_completion", Created: created, Model: c.model, Choices: []completionChoice{ch}, Usage: u}
}

func (c completionShape) usageChunk(u *usage, created int64) any {
	return completionResponse{ID: c.id, Object: "text_completion", Created: created, Model: c.model, Choices: []completionChoice{}, Usage: u}
}

func (c completionShape) whole(acc *accumulated, u *usage) any {
	ch := completionChoice{Text: acc.text.String(), Logprobs: acc.compl, FinishReason: nullable(acc.finish)}
	return completionResponse{ID: c.id, Object: "text_completion", Created: time.Now().Unix(), Model: c.model, Choices: []completionChoice{ch}, Usage: u}
}

// chatShape formats /v1/chat/completions.
type chatShape struct {
	tokens
	id, model string
	lp        int
}

type chatTop struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type chatLogprob struct {
	chatTop
	TopLogprobs []chatTop `json:"top_logprobs"`
}

type chatLogprobs struct {
	Content []chatLogprob `json:"content"`
}

type chatMessageOut struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      *chatMessageOut `json:"message,omitempty"`
	Delta        *chatMessageOut `json:"delta,omitempty"`
	Logprobs     *chatLogprobs   `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

func (c chatShape) logprob(ev event) chatLogprob {
	lp := chatLogprob{chatTop: chatTop{Token: c.name(ev.token), Logprob: finite(ev.logprob), Bytes: c.bytes(ev.token)}, TopLogprobs: []chatTop{}}
	for _, t := range ev.top {
		lp.TopLogprobs = append(lp.TopLogprobs, chatTop{Token: c.name(t.ID), Logprob: finite(t.Logprob), Bytes: c.bytes(t.ID)})
	}
	return lp
}

func (c chatShape) start(created int64) any {
	empty := ""
	return chatResponse{ID: c.id, Object: "chat.completion.chunk", Created: created, Model: c.model,
		Choices: []chatChoice{{Delta: &chatMessageOut{Role: "assistant", Content: &empty}}}}
}

func (c chatShape) chunk(ev event, u *usage, _ *accumulated, created int64) any {
	text := ev.text
	ch := chatChoice{Delta: &chatMessageOut{Content: &text}, FinishReason: nullable(ev.finish)}
	if c.lp >= 0 {
		ch.Logprobs = &chatLogprobs{Content: []chatLogprob{c.logprob(ev)}}
	}
	return chatResponse{ID: c.id, Object: "chat.completion.chunk", Created: created, Model: c.model, Choices: []chatChoice{ch}, Usage: u}
}

func (c chatShape) usageChunk(u *usage, created int64) any {
	return chatResponse{ID: c.id, Object: "chat.completion.chunk", Created: created, Model: c.model, Choices: []chatChoice{}, Usage: u}
}

func (c chatShape) whole(acc *accumulated, u *usage) any {
	text := acc.text.String()
	ch := chatChoice{Message: &chatMessageOut{Role: "assistant", Content: &text}, FinishReason: nullable(acc.finish)}
	if c.lp >= 0 {
		ch.Logprobs = &chatLogprobs{Content: acc.chat}
		if ch.Logprobs.Content == nil {
			ch.Logprobs.Content = []chatLogprob{}
		}
	}
	return chatResponse{ID: c.id, Object: "chat.completion", Created: time.Now().Unix(), Model: c.model, Choices: []chatChoice{ch}, Usage: u}
}

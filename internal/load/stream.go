package load

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/llem/llem/internal/record"
)

// progress is what a stream has shown so far.
type progress struct {
	last     int64 // time of the last chunk with choices
	counted  int   // chunks whose choices carried text
	finished bool  // a finish_reason came
	usageIn  int   // usage.prompt_tokens, -1 until a chunk carries it
	usageOut int   // usage.completion_tokens, -1 until a chunk carries it
}

// stream reads the response's server-sent events into rec, following the
// way benchmark peers measure: the first token is the first chunk whose
// choices are not empty, the inter-token gaps are between such chunks, the
// end is the last of them, and a usage chunk gives the token counts. It
// reports whether the stream ended with [DONE], leaving the connection
// reusable.
func (c *Client) stream(ctx context.Context, rec *record.Request, body io.Reader) (done bool) {
	sse := newSSEReader(body)
	defer sse.release()
	p := progress{usageIn: -1, usageOut: -1}
	defer p.tokens(rec)
	var ch chunk
	for {
		data, err := sse.next()
		if err != nil {
			c.streamEnd(ctx, rec, &p, err)
			return false
		}
		t := c.Now()
		if string(data) == "[DONE]" {
			if rec.TFirstNS == nil {
				c.fail(rec, record.ReqEmpty, &t, errors.New("the stream ended without a token"))
			} else {
				rec.Status, rec.TEndNS = record.ReqOK, p.last
			}
			return true
		}
		if err := ch.decode(data); err != nil {
			c.fail(rec, record.ReqMalformed, &t, fmt.Errorf("line %d: data is not a JSON chunk (%v): %s", sse.line, err, cut(string(data), 120)))
			return false
		}
		if isSet(ch.Error) {
			c.fail(rec, record.ReqStreamError, &t, fmt.Errorf("the server sent an error in the stream: %s", errorMessage(ch.Error)))
			return false
		}
		p.add(rec, &ch, t)
	}
}

// add takes one decoded chunk that arrived at t.
func (p *progress) add(rec *record.Request, ch *chunk, t int64) {
	if len(ch.Choices) > 0 {
		if rec.TFirstNS == nil {
			first := t
			rec.TFirstNS = &first
		} else {
			rec.ITLNS = append(rec.ITLNS, t-p.last)
		}
		p.last = t
		for i := range ch.Choices {
			if ch.Choices[i].hasText() {
				p.counted++
			}
			if isSet(ch.Choices[i].FinishReason) {
				p.finished = true
			}
		}
	}
	// Cumulative usage (continuous_usage_stats) or a final usage chunk:
	// the last value seen is the total.
	if ch.Usage.CompletionTokens >= 0 {
		p.usageOut = ch.Usage.CompletionTokens
	}
	if ch.Usage.PromptTokens >= 0 {
		p.usageIn = ch.Usage.PromptTokens
	}
}

// tokens writes the token counts: the server's usage where it sent one,
// else the chunks that carried text.
func (p *progress) tokens(rec *record.Request) {
	rec.OutputTokens, rec.TokensSource = p.counted, record.TokensCounted
	if p.usageOut >= 0 {
		rec.OutputTokens, rec.TokensSource = p.usageOut, record.TokensUsage
	}
	if p.usageIn >= 0 {
		in := p.usageIn
		rec.InputTokens = &in
	}
}

// streamEnd records a stream that stopped without [DONE]: a clean end after
// a finish_reason is accepted (some servers send no [DONE]); anything else
// is a failure of the kind the error says.
func (c *Client) streamEnd(ctx context.Context, rec *record.Request, p *progress, err error) {
	if errors.Is(err, io.EOF) {
		if p.finished && rec.TFirstNS != nil {
			rec.Status, rec.TEndNS = record.ReqOK, p.last
			return
		}
		c.fail(rec, record.ReqDisconnect, nil, errors.New("the stream ended before [DONE]"))
		return
	}
	status := c.classify(ctx, err)
	if status == record.ReqConnectError { // the connection was open: it broke
		status = record.ReqDisconnect
	}
	c.fail(rec, status, nil, failErr(ctx, err))
}

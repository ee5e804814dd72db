package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/llem/llem/internal/record"
)

// Client sends one streaming request to an OpenAI-compatible server and
// measures it as it streams.
type Client struct {
	HTTP     *http.Client
	Endpoint string // the full URL of /completions or /chat/completions
	Chat     bool   // the chat API (messages, max_completion_tokens)
	Model    string
	APIKey   string        // sent as a bearer token when set
	Timeout  time.Duration // the whole request, 0: none
	Stall    time.Duration // the longest wait for the next byte, 0: none

	// Now returns Unix nanoseconds. Do reads it once just before sending,
	// once per server-sent event it receives, and once more when the request
	// ends other than on an event (an error, a cut connection). Tests
	// replace it to make every measured interval exact.
	Now func() int64
}

// Clock returns a Unix-nanosecond clock that advances with the monotonic
// clock, so intervals between its readings are immune to wall-clock steps.
func Clock() func() int64 {
	t0 := time.Now()
	wall := t0.UnixNano()
	return func() int64 { return wall + int64(time.Since(t0)) }
}

// NewTransport returns a transport for many concurrent streams to one host:
// idle connections kept for reuse up to conns, no compression (the chunks are
// tiny and must not wait on a compressor), HTTP/1.1 as benchmark peers use.
func NewTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 0, // the stall timer covers the wait for headers
		ReadBufferSize:        16 << 10,
		WriteBufferSize:       16 << 10,
	}
}

// Causes of a cancelled request.
var (
	errTimeout   = errors.New("request timeout")
	errStall     = errors.New("stall timeout")
	errCancelled = errors.New("cancelled while in flight")
)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type requestBody struct {
	Model               string        `json:"model"`
	Prompt              string        `json:"prompt,omitempty"`
	Messages            []message     `json:"messages,omitempty"`
	MaxTokens           int           `json:"max_tokens,omitempty"`
	MaxCompletionTokens int           `json:"max_completion_tokens,omitempty"`
	IgnoreEOS           bool          `json:"ignore_eos,omitempty"`
	Stream              bool          `json:"stream"`
	StreamOptions       streamOptions `json:"stream_options"`
}

// Prepare encodes the request body for s, ahead of its send time.
func (c *Client) Prepare(s Spec) ([]byte, error) {
	b := requestBody{Model: c.Model, IgnoreEOS: s.IgnoreEOS, Stream: true, StreamOptions: streamOptions{IncludeUsage: true}}
	if c.Chat {
		b.Messages = []message{{Role: "user", Content: s.Prompt}}
		b.MaxCompletionTokens = s.MaxTokens
	} else {
		b.Prompt = s.Prompt
		b.MaxTokens = s.MaxTokens
	}
	return json.Marshal(b)
}

// Do prepares and sends request id; see Send.
func (c *Client) Do(parent context.Context, id int, s Spec) record.Request {
	payload, err := c.Prepare(s)
	if err != nil { // cannot happen with these types; a record, not a panic
		rec := record.Request{Kind: record.KindRequest, V: record.Version, ID: id, TokensSource: record.TokensCounted, ITLNS: []int64{}, TStartNS: c.Now()}
		return c.fail(&rec, record.ReqConnectError, nil, err)
	}
	return c.Send(parent, id, payload, s.MaxTokens)
}

// Send sends request id with a prepared body and returns its record; every
// outcome, failures included, is a record. Cancelling parent with cause
// errCancelled ends it as cancelled.
func (c *Client) Send(parent context.Context, id int, payload []byte, maxTokens int) record.Request {
	rec := record.Request{Kind: record.KindRequest, V: record.Version, ID: id, TokensSource: record.TokensCounted, ITLNS: []int64{}}
	if maxTokens > 0 {
		rec.MaxTokens = &maxTokens
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var stall *time.Timer
	if c.Timeout > 0 {
		t := time.AfterFunc(c.Timeout, func() { cancel(errTimeout) })
		defer t.Stop()
	}
	if c.Stall > 0 {
		stall = time.AfterFunc(c.Stall, func() { cancel(errStall) })
		defer stall.Stop()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewReader(payload))
	if err != nil {
		rec.TStartNS = c.Now()
		return c.fail(&rec, record.ReqConnectError, nil, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	rec.TStartNS = c.Now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return c.fail(&rec, c.classify(ctx, err), nil, failErr(ctx, err))
	}
	defer resp.Body.Close()
	code := resp.StatusCode
	rec.HTTPStatus = &code
	if code != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return c.fail(&rec, record.ReqHTTPError, nil, fmt.Errorf("HTTP %d: %s", code, errorMessage(msg)))
	}
	body := &stallReader{r: resp.Body, stall: stall, d: c.Stall}
	if c.stream(ctx, &rec, body) {
		// Read the rest (the end of the chunked body, normally already here)
		// so the connection goes back to the pool; a server that holds the
		// stream open after [DONE] gets a short stall limit, not --stall-timeout.
		body.d = min(c.Stall, drainStall)
		if stall != nil {
			stall.Reset(body.d)
		}
		io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	}
	return rec
}

// fail ends rec with status and err, at now unless at says when.
func (c *Client) fail(rec *record.Request, status string, at *int64, err error) record.Request {
	rec.Status = status
	if at != nil {
		rec.TEndNS = *at
	} else {
		rec.TEndNS = c.Now()
	}
	msg := err.Error()
	rec.Error = &msg
	return *rec
}

// classify names the status of a request that failed with err.
func (c *Client) classify(ctx context.Context, err error) string {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errTimeout), errors.Is(cause, errStall):
		return record.ReqTimeout
	case errors.Is(cause, errCancelled):
		return record.ReqCancelled
	case errors.Is(err, errMalformed):
		return record.ReqMalformed
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return record.ReqConnectError
	}
	return record.ReqDisconnect
}

// failErr is the error to report for err: the cancellation's cause, when
// there is one, says more than "context canceled".
func failErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// drainStall is the stall limit while reading past [DONE].
const drainStall = time.Second

// stallReader restarts the stall timer on every byte that arrives.
type stallReader struct {
	r     io.Reader
	stall *time.Timer
	d     time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 && s.stall != nil {
		s.stall.Reset(s.d)
	}
	return n, err
}

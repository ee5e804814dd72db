package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// errClientGone is the cause of a request's cancellation when its client
// disconnected or could not take the response in time.
var errClientGone = errors.New("client went away")

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]*apiError{"error": e})
}

// asAPIError maps any error to the OpenAI error shape and status.
func asAPIError(err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit), Type: "invalid_request_error"}
	case errors.As(err, &ne) && ne.Timeout():
		return &apiError{Status: http.StatusRequestTimeout, Message: "request body not received in time", Type: "invalid_request_error"}
	case errors.Is(err, ErrQueueFull), errors.Is(err, ErrStopping):
		return &apiError{Status: http.StatusServiceUnavailable, Message: err.Error(), Type: "server_busy"}
	case errors.Is(err, errTooLarge):
		return badParam("max_tokens", "%v", err)
	default:
		return &apiError{Status: http.StatusInternalServerError, Message: err.Error(), Type: "server_error"}
	}
}

// fail answers a request that produced no output with an error.
func (s *Server) fail(w http.ResponseWriter, le *logEntry, err error) {
	e := asAPIError(err)
	if e.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, e)
	le.Status, le.Error = e.Status, &e.Message
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	if s.sched.Load() == nil {
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Message: "the model is loading", Type: "server_busy"})
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleModels(w http.ResponseWriter, _ *http.Request) {
	type model struct {
		ID          string `json:"id"`
		Object      string `json:"object"`
		Created     int64  `json:"created"`
		OwnedBy     string `json:"owned_by"`
		Root        string `json:"root"`
		MaxModelLen *int   `json:"max_model_len"`
	}
	m := model{ID: s.cfg.ModelName, Object: "model", Created: s.created, OwnedBy: "llem", Root: s.cfg.Root}
	if s.cfg.Root == "" {
		m.Root = s.cfg.ModelName
	}
	if s.sched.Load() != nil {
		n := s.cfg.Limits.MaxModelLen
		m.MaxModelLen = &n
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": []model{m}})
}

// readRequest reads and decodes a JSON body (bounded in size by
// MaxBodyBytes and in time by the server's ReadTimeout), checks the model
// name, then lifts the read deadline: a stream may run longer than the
// time allowed for sending the request.
func (s *Server) readRequest(w http.ResponseWriter, r *http.Request, v any, model func() string) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return err
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	if err := decodeBody(bytes.NewReader(body), v); err != nil {
		return err
	}
	if m := model(); m != "" && m != s.cfg.ModelName {
		code := "model_not_found"
		return &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("the model %q does not exist; this server serves %q", m, s.cfg.ModelName), Type: "not_found_error", Param: ptr("model"), Code: &code}
	}
	return nil
}

func (s *Server) tokens(ids bool) tokens { return tokens{tok: s.tok, tokenIDs: ids} }

func ptr[T any](v T) *T { return &v }

func (s *Server) newEntry(endpoint, prefix string) *logEntry {
	now := time.Now()
	return &logEntry{ID: fmt.Sprintf("%s-%x%04x", prefix, now.UnixNano(), s.ids.Add(1)&0xffff), Endpoint: endpoint, ArrivalNS: now.UnixNano()}
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	le := s.newEntry("/v1/completions", "cmpl")
	defer func() { le.EndNS = time.Now().UnixNano(); s.log.write(le) }()
	var req completionRequest
	err := s.ready()
	if err == nil {
		err = s.readRequest(w, r, &req, func() string { return req.Model })
	}
	var p genParams
	if err == nil {
		p, err = s.completionParams(&req)
	}
	if err != nil {
		s.fail(w, le, err)
		return
	}
	s.generate(w, r, le, &req.common, p, completionShape{tokens: s.tokens(req.ReturnTokensAsTokenIDs), id: le.ID, model: s.cfg.ModelName, lp: p.logprobs})
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	le := s.newEntry("/v1/chat/completions", "chatcmpl")
	defer func() { le.EndNS = time.Now().UnixNano(); s.log.write(le) }()
	var req chatRequest
	err := s.ready()
	if err == nil {
		err = s.readRequest(w, r, &req, func() string { return req.Model })
	}
	var p genParams
	if err == nil {
		p, err = s.chatParams(&req)
	}
	if err != nil {
		s.fail(w, le, err)
		return
	}
	s.generate(w, r, le, &req.common, p, chatShape{tokens: s.tokens(req.ReturnTokensAsTokenIDs), id: le.ID, model: s.cfg.ModelName, lp: p.logprobs})
}

func (s *Server) ready() error {
	if s.sched.Load() == nil {
		return &apiError{Status: http.StatusServiceUnavailable, Message: "the model is loading", Type: "server_busy"}
	}
	return nil
}

// generate submits a request and answers it, streamed or whole.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, le *logEntry, c *common, p genParams, sh shape) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(errClientGone)
	if s.cfg.clientGone != nil {
		stop := context.AfterFunc(r.Context(), func() { s.cfg.clientGone(le.ID) })
		defer stop()
	}
	q := &seq{id: le.ID, ctx: ctx, p: p, arrival: time.Unix(0, le.ArrivalNS)}
	le.Stream = c.Stream
	le.PromptTokens = ptr(len(p.prompt))
	if err := s.sched.Load().submit(q); err != nil {
		s.fail(w, le, err)
		return
	}
	if c.Stream {
		opt := streamOptions{}
		if c.StreamOptions != nil {
			opt = *c.StreamOptions
		}
		s.stream(w, le, q, cancel, sh, opt)
		return
	}
	s.collect(w, le, q, sh)
}

// record notes an event in the request's log entry.
func (le *logEntry) record(ev event) {
	if ev.token >= 0 {
		if le.FirstTokenNS == nil {
			le.FirstTokenNS = ptr(time.Now().UnixNano())
		}
		le.CompletionTokens = ptr(ev.made)
	}
	if ev.finish != "" {
		le.FinishReason = ptr(ev.finish)
	}
	if ev.err != nil {
		le.Error = ptr(ev.err.Error())
		if le.FinishReason == nil {
			le.FinishReason = ptr("abort")
		}
	}
}

// collect waits for the whole completion and answers it as one JSON object.
func (s *Server) collect(w http.ResponseWriter, le *logEntry, q *seq, sh shape) {
	var acc accumulated
	for ev := range q.events {
		le.record(ev)
		if ev.err != nil {
			if q.ctx.Err() != nil {
				le.Status = 499 // nginx's "client closed request": nobody to answer
				return
			}
			s.fail(w, le, ev.err)
			return
		}
		acc.add(ev, sh)
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	w.Header().Set("Content-Type", "application/json")
	le.Status = http.StatusOK
	if err := json.NewEncoder(w).Encode(sh.whole(&acc, usageOf(len(q.p.prompt), acc.tokens))); err != nil {
		le.Error = ptr("write: " + err.Error())
	}
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(prompt, completion int) *usage {
	return &usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

func itoa(i int) string { return strconv.Itoa(i) }

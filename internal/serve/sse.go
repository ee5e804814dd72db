package serve

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// stream answers a request as server-sent events: "data: {json}" and a
// blank line per chunk, one chunk per token, then "data: [DONE]". Every
// write must complete within WriteTimeout; a client that cannot take a
// chunk in time (or left) has its sequence cancelled, which frees its slot
// at the engine's next step. A failure after the headers went out is sent
// as data: {"error": …} and then [DONE], as vLLM does.
func (s *Server) stream(w http.ResponseWriter, le *logEntry, q *seq, cancel func(error), sh shape, opt streamOptions) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold chunks back
	w.WriteHeader(http.StatusOK)
	le.Status = http.StatusOK
	// The headers go out now, before the first token: the client knows
	// it was accepted while it waits in the queue or for its prefill.
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if err := rc.Flush(); err != nil {
		cancel(errClientGone)
		le.Error = ptr("write: " + err.Error())
		return
	}
	created := time.Now().Unix()
	send := func(v any) bool {
		b, err := json.Marshal(v)
		if err == nil {
			err = s.writeEvent(w, rc, b)
		}
		if err != nil {
			cancel(errClientGone)
			le.Error = ptr("write: " + err.Error())
			return false
		}
		return true
	}
	var acc accumulated
	for ev := range q.events {
		le.record(ev)
		if ev.err != nil {
			if q.ctx.Err() == nil && send(map[string]*apiError{"error": asAPIError(ev.err)}) {
				_ = s.writeEvent(w, rc, []byte("[DONE]"))
			}
			return
		}
		if acc.tokens == 0 {
			if c := sh.start(created); c != nil && !send(c) {
				return
			}
		}
		acc.tokens = ev.made
		var u *usage
		if opt.ContinuousUsageStats {
			u = usageOf(ev.prompt, ev.made)
		}
		if !send(sh.chunk(ev, u, &acc, created)) {
			return
		}
	}
	if q.ctx.Err() != nil {
		return
	}
	if opt.IncludeUsage {
		if !send(sh.usageChunk(usageOf(len(q.p.prompt), acc.tokens), created)) {
			return
		}
	}
	if err := s.writeEvent(w, rc, []byte("[DONE]")); err != nil {
		le.Error = ptr("write: " + err.Error())
	}
}

// writeEvent writes one SSE event and flushes it, within WriteTimeout.
func (s *Server) writeEvent(w http.ResponseWriter, rc *http.ResponseController, data []byte) error {
	if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	buf := make([]byte, 0, len(data)+8)
	buf = append(append(append(buf, "data: "...), data...), "\n\n"...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return rc.Flush()
}

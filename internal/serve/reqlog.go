package serve

import (
	"encoding/json"
	"io"
	"sync"
)

// logEntry is one request's line in the request log. Times are Unix
// nanoseconds of the server's clock; what did not happen is null.
type logEntry struct {
	ID               string  `json:"id"`
	Endpoint         string  `json:"endpoint"`
	Stream           bool    `json:"stream"`
	ArrivalNS        int64   `json:"t_arrival_ns"`
	FirstTokenNS     *int64  `json:"t_first_token_ns"`
	EndNS            int64   `json:"t_end_ns"`
	PromptTokens     *int    `json:"prompt_tokens"`
	CompletionTokens *int    `json:"completion_tokens"`
	Status           int     `json:"status"`
	FinishReason     *string `json:"finish_reason"`
	Error            *string `json:"error"`
}

// requestLog writes entries as NDJSON, one whole line per write.
type requestLog struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newRequestLog(w io.Writer) *requestLog {
	if w == nil {
		return &requestLog{}
	}
	return &requestLog{enc: json.NewEncoder(w)}
}

func (l *requestLog) write(e *logEntry) {
	if l.enc == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.enc.Encode(e) // a failing log must not fail requests
}

package record

// KindRequest is the record llem-load writes for every request it sent.
const KindRequest = "request"

// Request statuses of a KindRequest record. Only ok requests count in
// latency figures; the others say why a request failed.
const (
	ReqOK           = "ok"            // the stream ended with [DONE] (or a finish_reason) after at least one token
	ReqHTTPError    = "http_error"    // the server answered with a status other than 200 (http_status says which)
	ReqTimeout      = "timeout"       // --timeout passed, or no byte arrived for --stall-timeout
	ReqDisconnect   = "disconnect"    // the connection broke or the stream ended before [DONE]
	ReqMalformed    = "malformed"     // a line of the stream was not valid SSE with a JSON payload
	ReqStreamError  = "stream_error"  // the server sent {"error": …} inside the stream
	ReqEmpty        = "empty"         // the stream ended normally without a single token chunk
	ReqConnectError = "connect_error" // no connection could be opened
	ReqCancelled    = "cancelled"     // still running when an interrupted llem-load stopped waiting
)

// Token count sources of a KindRequest record.
const (
	TokensUsage   = "usage"   // the server's usage.completion_tokens
	TokensCounted = "counted" // chunks with non-empty text, where the server sent no usage
)

// Request is one request sent by llem-load to an OpenAI-compatible server.
// It carries the fields of the worker protocol's request event (id, token
// counts, t_start, t_first_token, t_end, itl_ns; times in Unix nanoseconds)
// plus the schedule and the outcome. Token emission times are TFirstNS, then
// TFirstNS + cumulative sums of ITLNS, one per chunk that carried choices.
type Request struct {
	Kind         string  `json:"kind"`
	V            int     `json:"v"`
	ID           int     `json:"id"`            // position in the schedule, from 0
	InputTokens  *int    `json:"input_tokens"`  // usage.prompt_tokens; null without usage
	OutputTokens int     `json:"output_tokens"` // see TokensSource
	TokensSource string  `json:"tokens_source"` // usage | counted
	MaxTokens    *int    `json:"max_tokens"`    // the output length asked for
	TScheduledNS *int64  `json:"t_scheduled"`   // when the schedule said to send it; null in closed loop
	SendLagNS    *int64  `json:"send_lag_ns"`   // t_start − t_scheduled; null in closed loop
	TStartNS     int64   `json:"t_start"`       // just before the request was written
	TFirstNS     *int64  `json:"t_first_token"` // first chunk with choices; null when none came
	TEndNS       int64   `json:"t_end"`         // last chunk with choices, or when the request failed
	ITLNS        []int64 `json:"itl_ns"`        // gaps between consecutive chunks with choices
	Status       string  `json:"status"`
	HTTPStatus   *int    `json:"http_status"` // null when no response came
	Error        *string `json:"error"`       // null when ok
}

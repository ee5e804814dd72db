package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// apiError is an error in OpenAI's shape, {"error": {message, type, param,
// code}}, with the HTTP status it is sent with.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func badParam(param, format string, a ...any) *apiError {
	return &apiError{Status: 400, Message: fmt.Sprintf(format, a...), Type: "invalid_request_error", Param: &param}
}

// streamOptions is OpenAI's stream_options with vLLM's
// continuous_usage_stats (cumulative usage on every chunk).
type streamOptions struct {
	IncludeUsage         bool `json:"include_usage"`
	ContinuousUsageStats bool `json:"continuous_usage_stats"`
}

// common are the fields /v1/completions and /v1/chat/completions share.
// Pointers tell "absent" from a value. Fields no endpoint knows are ignored,
// as OpenAI's and vLLM's servers do (clients send user, metadata, …).
type common struct {
	Model                  string          `json:"model"`
	MaxTokens              *int            `json:"max_tokens"`
	MaxCompletionTokens    *int            `json:"max_completion_tokens"`
	Temperature            *float64        `json:"temperature"`
	TopP                   *float64        `json:"top_p"`
	TopK                   *int            `json:"top_k"`
	MinP                   *float64        `json:"min_p"`
	RepetitionPenalty      *float64        `json:"repetition_penalty"`
	Seed                   *int64          `json:"seed"`
	Stop                   json.RawMessage `json:"stop"`
	Stream                 bool            `json:"stream"`
	StreamOptions          *streamOptions  `json:"stream_options"`
	IgnoreEOS              bool            `json:"ignore_eos"`
	MinTokens              int             `json:"min_tokens"`
	N                      *int            `json:"n"`
	ReturnTokensAsTokenIDs bool            `json:"return_tokens_as_token_ids"`
}

type completionRequest struct {
	common
	Prompt   json.RawMessage `json:"prompt"`
	Logprobs *int            `json:"logprobs"`
	Echo     bool            `json:"echo"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type chatRequest struct {
	common
	Messages    []chatMessage `json:"messages"`
	Logprobs    bool          `json:"logprobs"`
	TopLogprobs *int          `json:"top_logprobs"`
}

// decodeBody reads one JSON object into v. A syntax error names its byte
// offset, a wrong type names the field and the type wanted.
func decodeBody(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			field := strings.TrimPrefix(te.Field, "common.") // the embedded struct
			if field == "" {
				field = "body"
			}
			return badParam(field, "%s: wrong type: got JSON %s, want %s", field, te.Value, jsonType(te.Type.String()))
		case errors.As(err, &se):
			return badParam("body", "malformed JSON at byte %d: %v", se.Offset, se)
		case errors.Is(err, io.EOF):
			return badParam("body", "empty body: want a JSON object")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badParam("body", "malformed JSON: the body ends inside a value")
		default:
			return err // the body could not be read: the caller maps it
		}
	}
	if dec.More() {
		return badParam("body", "malformed JSON: more than one value in the body")
	}
	return nil
}

// jsonType names a Go type the way a JSON client thinks of it.
func jsonType(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	default:
		return "an object"
	}
}

// stops decodes stop: a string or an array of strings (at most 4 in
// OpenAI's API; llem takes up to 16), none empty.
func (c *common) stops() ([]string, error) {
	if len(c.Stop) == 0 || bytes.Equal(c.Stop, []byte("null")) {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(c.Stop, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(c.Stop, &many); err != nil {
		return nil, badParam("stop", "stop: want a string or an array of strings")
	}
	if len(many) > 16 {
		return nil, badParam("stop", "stop: %d strings, at most 16", len(many))
	}
	out := many[:0]
	for _, s := range many {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// sampling checks the sampling fields and returns them with OpenAI's
// defaults (temperature 1, top_p 1); temperature 0 is greedy.
func (c *common) sampling() (temp, topP, minP, rep float64, topK int, err error) {
	temp, topP, minP, rep, topK = 1, 1, 0, 1, 0
	if c.Temperature != nil {
		temp = *c.Temperature
	}
	if c.TopP != nil {
		topP = *c.TopP
	}
	if c.MinP != nil {
		minP = *c.MinP
	}
	if c.RepetitionPenalty != nil {
		rep = *c.RepetitionPenalty
	}
	if c.TopK != nil {
		topK = *c.TopK
	}
	switch {
	case !(temp >= 0) || math.IsInf(temp, 0):
		return 0, 0, 0, 0, 0, badParam("temperature", "temperature: %g, want ≥ 0", temp)
	case !(topP > 0 && topP <= 1):
		return 0, 0, 0, 0, 0, badParam("top_p", "top_p: %g, want in (0, 1]", topP)
	case !(minP >= 0 && minP <= 1):
		return 0, 0, 0, 0, 0, badParam("min_p", "min_p: %g, want in [0, 1]", minP)
	case !(rep > 0) || math.IsInf(rep, 0):
		return 0, 0, 0, 0, 0, badParam("repetition_penalty", "repetition_penalty: %g, want > 0", rep)
	case topK < -1:
		return 0, 0, 0, 0, 0, badParam("top_k", "top_k: %d, want -1 or 0 (off) or a positive count", topK)
	}
	return temp, topP, minP, rep, max(topK, 0), nil
}

// maxNew is the output length asked: max_completion_tokens, else
// max_tokens, else what the context leaves after the prompt (vLLM's
// default).
func (c *common) maxNew(promptLen, modelLen int) (int, error) {
	param, n := "max_tokens", modelLen-promptLen
	if c.MaxCompletionTokens != nil {
		param, n = "max_completion_tokens", *c.MaxCompletionTokens
	} else if c.MaxTokens != nil {
		n = *c.MaxTokens
	}
	switch {
	case n < 1:
		return 0, badParam(param, "%s: %d, want ≥ 1", param, n)
	case promptLen+n > modelLen:
		return 0, badParam(param, "this model's maximum context length is %d tokens; the request asks for %d (%d in the prompt, %d in the completion): lower %s or shorten the prompt", modelLen, promptLen+n, promptLen, n, param)
	}
	return n, nil
}

package load

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// maxEventBytes bounds one server-sent event, so a stream without line ends
// cannot grow memory without limit.
const maxEventBytes = 4 << 20

// errMalformed marks a stream that breaks the SSE or JSON rules.
var errMalformed = errors.New("malformed stream")

// sseReader splits a text/event-stream into the data of its events, as the
// SSE specification says: lines end with \n or \r\n; a line starting with ':'
// is a comment; "data:" lines (one space after the colon dropped) add to the
// event's data; other fields (event, id, retry) are ignored; a blank line
// ends the event. It reuses one buffer: the data returned is valid until the
// next call.
type sseReader struct {
	r    *bufio.Reader
	data []byte
	has  bool // a data line was seen in the current event
	line int
}

// sseReaders recycles readers and their buffers: one per request would
// otherwise allocate 20 KiB.
var sseReaders = sync.Pool{New: func() any {
	return &sseReader{r: bufio.NewReaderSize(nil, 16<<10), data: make([]byte, 0, 4<<10)}
}}

func newSSEReader(r io.Reader) *sseReader {
	s := sseReaders.Get().(*sseReader)
	s.r.Reset(r)
	s.data, s.has, s.line = s.data[:0], false, 0
	return s
}

// release returns s to the pool; s must not be used after.
func (s *sseReader) release() {
	s.r.Reset(nil)
	if cap(s.data) > 64<<10 { // keep no giant event's buffer
		s.data = make([]byte, 0, 4<<10)
	}
	sseReaders.Put(s)
}

// next returns the data of the next event; io.EOF when the stream ended at an
// event boundary, another error when it broke (the reader's error) or was
// malformed (wrapping errMalformed).
func (s *sseReader) next() ([]byte, error) {
	s.data, s.has = s.data[:0], false
	for {
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && s.has { // the last event lacked its blank line
				return s.data, nil
			}
			return nil, err
		}
		s.line++
		if len(line) == 0 {
			if s.has {
				return s.data, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, ok := bytes.Cut(line, []byte{':'})
		if ok && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		if string(field) != "data" {
			continue
		}
		if s.has {
			s.data = append(s.data, '\n')
		}
		if len(s.data)+len(value) > maxEventBytes {
			return nil, fmt.Errorf("line %d: event longer than %d bytes: %w", s.line, maxEventBytes, errMalformed)
		}
		s.data = append(s.data, value...)
		s.has = true
	}
}

// readLine returns one line without its line end, in a buffer valid until
// the next call. A line longer than the reader's buffer is only returned
// when it is data, through the event limit.
func (s *sseReader) readLine() ([]byte, error) {
	b, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(long) > maxEventBytes {
				return nil, fmt.Errorf("line %d: longer than %d bytes: %w", s.line+1, maxEventBytes, errMalformed)
			}
			b, err = s.r.ReadSlice('\n')
			long = append(long, b...)
		}
		b = long
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(b) > 0 {
			return nil, io.ErrUnexpectedEOF // a line cut off by the end of the stream
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

// chunk is the part of a streamed completion chunk llem-load reads, for both
// APIs. Text fields are raw JSON so that decoding them allocates nothing:
// only whether they are empty matters.
type chunk struct {
	Choices []choice        `json:"choices"`
	Usage   usage           `json:"usage"`
	Error   json.RawMessage `json:"error"`
}

type choice struct {
	Text  json.RawMessage `json:"text"` // completions
	Delta struct {
		Content json.RawMessage `json:"content"` // chat
	} `json:"delta"`
	FinishReason json.RawMessage `json:"finish_reason"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// decode parses one event's data into c, reusing its buffers. Usage fields
// are -1 when the chunk carries no usage.
func (c *chunk) decode(data []byte) error {
	for i := range c.Choices {
		ch := &c.Choices[i]
		ch.Text, ch.Delta.Content, ch.FinishReason = ch.Text[:0], ch.Delta.Content[:0], ch.FinishReason[:0]
	}
	c.Choices = c.Choices[:0]
	c.Usage = usage{PromptTokens: -1, CompletionTokens: -1}
	c.Error = c.Error[:0]
	return json.Unmarshal(data, c)
}

// hasText says whether a choice carries output text.
func (ch *choice) hasText() bool { return isSet(ch.Text) || isSet(ch.Delta.Content) }

// isSet says whether a raw JSON value is present and neither null nor "".
func isSet(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null" && string(raw) != `""`
}

// errorMessage extracts a readable message from an error body or value: an
// OpenAI {"error": {"message": …}}, a flat {"message": …}, a string, or the
// raw text cut short.
func errorMessage(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	var s string
	switch {
	case json.Unmarshal(raw, &s) == nil && s != "":
		return s
	case json.Unmarshal(raw, &v) == nil:
		if v.Message != "" {
			return v.Message
		}
		if isSet(v.Error) {
			return errorMessage(v.Error)
		}
	}
	return cut(string(raw), 200)
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// MaxLineBytes bounds one NDJSON line. Longer lines are an error, not an
// unbounded allocation: a config with every default and a run record with host
// facts are a few KiB; 16 MiB leaves room for huge passthrough sections.
const MaxLineBytes = 16 << 20

// PosError is an error at a position in an NDJSON input.
type PosError struct {
	File string
	Line int
	Col  int // 1-based byte column; 0 when unknown
	Err  error
}

func (e *PosError) Error() string {
	if e.Col > 0 {
		return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Col, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *PosError) Unwrap() error { return e.Err }

// Line is one record read from an NDJSON stream. Raw is only valid until the
// next call to Next; Clone it to keep it.
type Line struct {
	File string
	No   int
	Kind string
	V    int
	Raw  []byte
}

// Clone returns a copy of l that owns its bytes.
func (l Line) Clone() Line {
	l.Raw = append([]byte(nil), l.Raw...)
	return l
}

// Decode unmarshals the line into v, strictly: unknown fields are an error.
// Errors carry file:line:col.
func (l Line) Decode(v any) error {
	dec := json.NewDecoder(bytes.NewReader(l.Raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return l.posErr(err)
	}
	return nil
}

// DecodeLax unmarshals the line into v, ignoring unknown fields (for newer
// minor versions of a record).
func (l Line) DecodeLax(v any) error {
	if err := json.Unmarshal(l.Raw, v); err != nil {
		return l.posErr(err)
	}
	return nil
}

func (l Line) posErr(err error) error {
	col := 0
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		col = int(se.Offset)
	case errors.As(err, &te):
		col = int(te.Offset)
		if te.Field != "" {
			err = fmt.Errorf("field %s: cannot use JSON %s as %s", te.Field, te.Value, te.Type)
		}
	}
	return &PosError{File: l.File, Line: l.No, Col: col, Err: err}
}

// Reader reads NDJSON records line by line. Blank lines are skipped. A line
// that is not a JSON object with a string "kind" is an error naming file:line:col.
type Reader struct {
	file string
	sc   *bufio.Scanner
	no   int
	line Line
	err  error
}

// NewReader reads from r; name is used in error messages ("-" for stdin is
// shown as "<stdin>").
func NewReader(r io.Reader, name string) *Reader {
	if name == "" || name == "-" {
		name = "<stdin>"
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	return &Reader{file: name, sc: sc}
}

// Next advances to the next record. It returns false at the end of input or
// on an error; Err tells which.
func (r *Reader) Next() bool {
	if r.err != nil {
		return false
	}
	for r.sc.Scan() {
		r.no++
		raw := bytes.TrimSpace(r.sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var h struct {
			Kind *string `json:"kind"`
			V    int     `json:"v"`
		}
		l := Line{File: r.file, No: r.no, Raw: raw}
		if raw[0] != '{' {
			r.err = &PosError{File: r.file, Line: r.no, Col: 1, Err: errors.New("not a JSON object")}
			return false
		}
		if err := json.Unmarshal(raw, &h); err != nil {
			r.err = l.posErr(err)
			return false
		}
		if h.Kind == nil || *h.Kind == "" {
			r.err = &PosError{File: r.file, Line: r.no, Col: 1, Err: errors.New(`record has no "kind"`)}
			return false
		}
		l.Kind, l.V = *h.Kind, h.V
		r.line = l
		return true
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", MaxLineBytes)
		}
		r.err = &PosError{File: r.file, Line: r.no + 1, Err: err}
	}
	return false
}

// Line returns the current record.
func (r *Reader) Line() Line { return r.line }

// Err returns the error that stopped Next, or nil at a clean end of input.
func (r *Reader) Err() error { return r.err }

// Writer writes records as NDJSON. It is safe for concurrent use. Every Write
// is flushed at once when the writer was made with NewFlushingWriter, so a
// downstream tool sees each record as soon as it exists.
type Writer struct {
	mu        sync.Mutex
	w         *bufio.Writer
	flushEach bool
	err       error
}

// NewWriter buffers output; call Flush at the end.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 64<<10)} }

// NewFlushingWriter flushes after every record.
func NewFlushingWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriter(w), flushEach: true}
}

// Write marshals v as one line. The first error sticks, an encoding error
// too: Flush then returns it, so that a caller checking only Flush never
// takes a stream with a record missing for a whole one.
func (w *Writer) Write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		err = fmt.Errorf("encode record: %w", err)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.err == nil {
			w.err = err
		}
		return err
	}
	return w.WriteRaw(b)
}

// WriteRaw writes an already-encoded record (passthrough of unknown kinds).
func (w *Writer) WriteRaw(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	b = bytes.TrimRight(b, "\n")
	if _, err := w.w.Write(b); err != nil {
		w.err = err
		return err
	}
	if err := w.w.WriteByte('\n'); err != nil {
		w.err = err
		return err
	}
	if w.flushEach {
		if err := w.w.Flush(); err != nil {
			w.err = err
		}
	}
	return w.err
}

// Flush writes buffered records.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.err = w.w.Flush()
	return w.err
}

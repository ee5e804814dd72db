package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/llem/llem/internal/record"
)

// Input is what llem-report read: energy and summary records, in input
// order, and a count of the records of other kinds (ignored: the report is
// the last stage of the pipeline).
type Input struct {
	Energies  []*record.Energy
	Summaries []*record.Summary
	Other     map[string]int
	// Replaced counts energy records superseded by a later one with the same
	// run_id (a resumed or retried run), and likewise for summaries by id.
	Replaced int
	runIdx   map[string]int
	sumIdx   map[string]int
}

// ErrInterrupted is returned when the context ends while reading.
var ErrInterrupted = errors.New("interrupted")

// Read adds the records of one NDJSON stream to in. Errors name file:line:col
// and, where it is a field's type that is wrong, the field.
func (in *Input) Read(ctx context.Context, r io.Reader, name string) error {
	if in.Other == nil {
		in.Other = map[string]int{}
		in.runIdx = map[string]int{}
		in.sumIdx = map[string]int{}
	}
	rd := record.NewReader(r, name)
	for rd.Next() {
		if ctx.Err() != nil {
			return ErrInterrupted
		}
		l := rd.Line()
		switch l.Kind {
		case record.KindEnergy:
			e := new(record.Energy)
			if err := l.DecodeLax(e); err != nil {
				return withPath(err, l.Raw)
			}
			if e.RunID == "" || e.ID == "" {
				return &record.PosError{File: l.File, Line: l.No, Col: 1, Err: fmt.Errorf(`energy record without "run_id" or "id"`)}
			}
			if i, ok := in.runIdx[e.RunID]; ok {
				in.Energies[i] = e
				in.Replaced++
				continue
			}
			in.runIdx[e.RunID] = len(in.Energies)
			in.Energies = append(in.Energies, e)
		case record.KindSummary:
			s := new(record.Summary)
			if err := l.DecodeLax(s); err != nil {
				return withPath(err, l.Raw)
			}
			if s.ID == "" {
				return &record.PosError{File: l.File, Line: l.No, Col: 1, Err: fmt.Errorf(`summary record without "id"`)}
			}
			if i, ok := in.sumIdx[s.ID]; ok {
				in.Summaries[i] = s
				in.Replaced++
				continue
			}
			in.sumIdx[s.ID] = len(in.Summaries)
			in.Summaries = append(in.Summaries, s)
		default:
			in.Other[l.Kind]++
		}
	}
	return rd.Err()
}

// OtherSummary describes the ignored records, e.g. "experiment 1, run 4"; "" if none.
func (in *Input) OtherSummary() string {
	var ks []string
	for k := range in.Other {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, in.Other[k]))
	}
	return strings.Join(parts, ", ")
}

// withPath names the full field path of a type error (encoding/json leaves
// out map keys: "metrics.mean" for metrics.energy_j.mean).
func withPath(err error, raw []byte) error {
	var pe *record.PosError
	if !errors.As(err, &pe) || pe.Col <= 0 {
		return err
	}
	// record.Line.Decode words type errors "field F: cannot use JSON ...".
	msg := pe.Err.Error()
	_, rest, ok := strings.Cut(msg, ": ")
	if !strings.HasPrefix(msg, "field ") || !ok {
		return err
	}
	p := pathAt(raw, int64(pe.Col))
	if p == "" {
		return err
	}
	return &record.PosError{File: pe.File, Line: pe.Line, Col: pe.Col, Err: fmt.Errorf("field %s: %s", p, rest)}
}

// pathAt returns the dotted key path of the value that ends at byte offset off.
func pathAt(raw []byte, off int64) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		obj    bool
		key    string
		expect bool // object: the next string token is a key
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		top := len(stack) - 1
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:top]
			if top > 0 && stack[top-1].obj {
				stack[top-1].expect = true
			}
			continue
		}
		if top >= 0 && stack[top].obj && stack[top].expect {
			k, _ := tok.(string)
			stack[top].key, stack[top].expect = k, false
			continue
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, frame{obj: d == '{', expect: d == '{'})
			continue
		}
		if dec.InputOffset() >= off {
			var keys []string
			for _, f := range stack {
				if f.obj {
					keys = append(keys, f.key)
				}
			}
			return strings.Join(keys, ".")
		}
		if top >= 0 && stack[top].obj {
			stack[top].expect = true
		}
	}
}

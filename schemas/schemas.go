// Package schemas embeds the JSON Schemas (draft 2020-12) of every record kind
// and of the worker protocol's events, and validates documents against them
// with a real validator. Tests of every tool pass what the tool emitted through
// CheckNDJSON.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed *.schema.json
var files embed.FS

const base = "https://llem.dev/schemas/"

// Kinds that have a schema: the record kinds, plus "event" for worker events.
var Kinds = []string{"experiment", "skipped", "baseline", "run", "energy", "summary", "request", "event"}

var (
	once     sync.Once
	compiled map[string]*jsonschema.Schema
	initErr  error
)

func load() {
	c := jsonschema.NewCompiler()
	entries, err := files.ReadDir(".")
	if err != nil {
		initErr = err
		return
	}
	for _, e := range entries {
		b, _ := files.ReadFile(e.Name())
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			initErr = fmt.Errorf("schemas/%s: %w", e.Name(), err)
			return
		}
		if err := c.AddResource(base+e.Name(), doc); err != nil {
			initErr = fmt.Errorf("schemas/%s: %w", e.Name(), err)
			return
		}
	}
	compiled = map[string]*jsonschema.Schema{}
	for _, k := range Kinds {
		s, err := c.Compile(base + k + ".schema.json")
		if err != nil {
			initErr = fmt.Errorf("compile schema %s: %w", k, err)
			return
		}
		compiled[k] = s
	}
}

// Validate checks one JSON document against the schema of kind.
func Validate(kind string, raw []byte) error {
	once.Do(load)
	if initErr != nil {
		return initErr
	}
	s, ok := compiled[kind]
	if !ok {
		return fmt.Errorf("no schema for kind %q", kind)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("%s record does not match schemas/%s.schema.json: %s", kind, kind, oneLine(err))
	}
	return nil
}

// oneLine turns the validator's indented tree of causes into one line that
// names each failing field: its leaves, joined.
func oneLine(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return strings.Join(strings.Fields(err.Error()), " ")
	}
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, strings.Join(strings.Fields(e.Error()), " "))
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return strings.Join(leaves, "; ")
}

// CheckNDJSON validates every line of an NDJSON stream: records by their
// "kind", worker events (lines with "event") against the event schema. Lines
// of a kind without a schema are errors, so a test cannot pass by accident. It
// returns the number of lines checked per kind.
func CheckNDJSON(data []byte) (map[string]int, error) {
	counts := map[string]int{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var h struct {
			Kind  string `json:"kind"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &h); err != nil {
			return counts, fmt.Errorf("line %d: %v", i+1, err)
		}
		kind := h.Kind
		if kind == "" && h.Event != "" {
			kind = "event"
		}
		if err := Validate(kind, line); err != nil {
			return counts, fmt.Errorf("line %d: %s: %v", i+1, shorten(string(line)), err)
		}
		counts[kind]++
	}
	return counts, nil
}

func shorten(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return strings.TrimSpace(s)
}

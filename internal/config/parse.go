package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/llem/llem/internal/canonjson"
)

// MaxFileBytes bounds a config or study file.
const MaxFileBytes = 16 << 20

// ParseYAML reads one YAML (or JSON) document into a node tree, with the
// file size bounded and an empty document reported. Errors name the file.
func ParseYAML(file string, data []byte) (*yaml.Node, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{File: file, Message: fmt.Sprintf("file is %d bytes, more than the limit of %d", len(data), MaxFileBytes)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			return nil, &Error{File: file, Line: 1, Col: 1, Message: "the file is empty", Hint: "write a mapping such as: model: llem-tiny"}
		}
		return nil, yamlError(file, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: file, Line: extra.Line, Col: extra.Column, Message: "more than one YAML document", Hint: "remove the --- separator"}
	}
	n := &doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil, &Error{File: file, Line: 1, Col: 1, Message: "the file is empty", Hint: "write a mapping such as: model: llem-tiny"}
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			return nil, &Error{File: file, Line: n.Line, Col: n.Column, Message: "the file is empty", Hint: "write a mapping such as: model: llem-tiny"}
		}
		return nil, &Error{File: file, Line: n.Line, Col: n.Column, Message: "expected a mapping at the top level, got " + kindName(n),
			Hint: "write a mapping such as: model: llem-tiny"}
	}
	return n, nil
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into an Error
// at the line a person has to edit (syntaxLine).
func yamlError(file string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file, Message: "invalid YAML: " + msg, Hint: "check the indentation and quoting"}
	if strings.HasPrefix(msg, "line ") {
		e.Message = "invalid YAML:" + strings.SplitN(msg, ":", 2)[1]
	}
	e.Line, e.Col = syntaxLine(data, msg)
	return e
}

// Parse reads one experiment config (YAML or JSON), fills its defaults and
// validates it. A top-level version: key is ignored. Every error names
// file:line:col and the field path. notes are remarks for the user.
func Parse(file string, data []byte) (cfg *Config, notes []string, err error) {
	n, err := ParseYAML(file, data)
	if err != nil {
		return nil, nil, err
	}
	return FromNode(file, n)
}

// FromNode is Parse from a top-level mapping node.
func FromNode(file string, n *yaml.Node) (*Config, []string, error) {
	d := NewDecoder(file)
	d.Pos = map[string]*yaml.Node{}
	c := Default()
	body := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch k.Value {
		case "version":
			continue
		case "sweep", "experiments":
			return nil, nil, &Error{File: file, Line: k.Line, Col: k.Column, Path: k.Value,
				Message: "this is a study file, not one experiment", Hint: "expand it with llem-expand"}
		}
		body.Content = append(body.Content, k, n.Content[i+1])
	}
	d.Overlay(&c, body, "")
	if es := d.Errors(); len(es) > 0 {
		return nil, d.Notes, es
	}
	notes := append(d.Notes, c.Finalize()...)
	if es := c.Validate(); len(es) > 0 {
		for _, e := range es {
			e.File = file
			k := posOf(d.Pos, e.Path)
			if k == nil {
				k = d.Pos["model"] // the model decides the native architecture
			}
			if k == nil {
				k = n
			}
			e.Line, e.Col = k.Line, k.Column
		}
		return nil, notes, es
	}
	return &c, notes, nil
}

// posOf finds the key node of path or of its nearest parent.
func posOf(pos map[string]*yaml.Node, path string) *yaml.Node {
	for path != "" {
		if k := pos[path]; k != nil {
			return k
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return nil
}

// Decode decodes an effective config, as found in the "config" field of an
// experiment record (llem-exec and the workers call it). It validates and
// finalizes like Parse, so a decoded config re-encodes to the same bytes and
// the same id.
func Decode(raw []byte) (*Config, error) {
	c, _, err := Parse("config", raw)
	return c, err
}

// Field returns the value at a dotted field path (e.g. pytorch.batch_size,
// vllm.engine.attention.backend, or a passthrough key) as a plain Go value
// (string, bool, int64, float64, nil, or a free-form value), and whether the
// path exists in this config.
func (c *Config) Field(path string) (any, bool) {
	v := reflect.ValueOf(c).Elem()
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return nil, i == len(segs)
			}
			v = v.Elem()
		}
		if v.Type() == typDataset {
			ds := v.Interface().(Dataset)
			if ds.Synthetic == nil {
				return nil, false
			}
			v = reflect.ValueOf(ds.Synthetic).Elem()
		}
		switch v.Kind() {
		case reflect.Struct:
			si := infoOf(v.Type())
			if fi, ok := si.byName[seg]; ok {
				v = v.Field(si.fields[fi].index)
				continue
			}
			if si.extra < 0 {
				return nil, false
			}
			m, _ := v.Field(si.extra).Interface().(map[string]any)
			return lookupGeneric(m, segs[i:])
		case reflect.Map:
			m, _ := v.Interface().(map[string]any)
			return lookupGeneric(m, segs[i:])
		default:
			return nil, false
		}
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, true
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.String:
		return v.String(), true
	case reflect.Bool:
		return v.Bool(), true
	case reflect.Int, reflect.Int64:
		return v.Int(), true
	case reflect.Float64:
		return v.Float(), true
	}
	if v.Type() == typDataset {
		ds := v.Interface().(Dataset)
		if ds.Synthetic == nil {
			return ds.Name, true
		}
		b, _ := appendStruct(nil, reflect.ValueOf(ds.Synthetic).Elem())
		return string(b), true
	}
	if v.Kind() == reflect.Struct {
		b, _ := appendStruct(nil, v)
		return string(b), true
	}
	return v.Interface(), true
}

func lookupGeneric(m map[string]any, segs []string) (any, bool) {
	var cur any = m
	for _, s := range segs {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[s]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// FormatValue writes a field value for people: strings bare, null as "null",
// anything else as canonical JSON.
func FormatValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "null"
	}
	b, err := canonjson.Append(nil, v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

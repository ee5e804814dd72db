package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/llem/llem/internal/canonjson"
)

// Limits that keep a hostile input from costing unbounded time or memory.
const (
	// MaxNodes bounds the YAML nodes one Overlay call visits, aliases
	// expanded: an alias bomb ("billion laughs") stops here with an error.
	MaxNodes = 1 << 20
	// MaxDepth bounds the nesting of free-form values (passthrough keys).
	MaxDepth = 64
	// MaxString bounds one string value.
	MaxString = 1 << 20
)

// Decoder decodes YAML nodes onto configs, collecting every problem with its
// file:line:col and field path rather than stopping at the first.
type Decoder struct {
	File string
	// Notes are remarks that are not errors (an ignored key, a mapped value).
	Notes []string
	// Pos, when not nil, receives the key node of every field set, by field
	// path, so that a cross-field problem found later can name its line.
	Pos map[string]*yaml.Node

	errs      Errors
	budget    int
	exhausted bool
	noted     map[string]bool
	genRoot   string
	limit     int // node budget of one call; 0: MaxNodes
	started   int
}

// SetLimit sets the node budget of each later call (0: MaxNodes).
func (d *Decoder) SetLimit(n int) { d.limit = n }

// Cost returns the nodes the last call visited, aliases expanded.
func (d *Decoder) Cost() int { return d.started - d.budget }

// NewDecoder returns a decoder whose errors name file.
func NewDecoder(file string) *Decoder { return &Decoder{File: file} }

// Errors returns the problems found so far.
func (d *Decoder) Errors() Errors { return d.errs }

// Reset forgets the problems found so far (notes are kept).
func (d *Decoder) Reset() { d.errs = d.errs[:0] }

// Errorf records a problem at node n.
func (d *Decoder) Errorf(n *yaml.Node, path, hint, format string, a ...any) {
	e := &Error{File: d.File, Path: path, Message: fmt.Sprintf(format, a...), Hint: hint}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// Note records a remark once.
func (d *Decoder) Note(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	if d.noted == nil {
		d.noted = map[string]bool{}
	}
	if !d.noted[s] {
		d.noted[s] = true
		d.Notes = append(d.Notes, s)
	}
}

func (d *Decoder) start() {
	d.budget = MaxNodes
	if d.limit > 0 {
		d.budget = d.limit
	}
	d.started, d.exhausted = d.budget, false
}

// spend charges one visited node; false once the budget is gone.
func (d *Decoder) spend(n *yaml.Node, path string) bool {
	d.budget--
	if d.budget >= 0 {
		return true
	}
	if !d.exhausted {
		d.exhausted = true
		d.Errorf(n, path, "remove deeply repeated aliases", "the document expands to more than %d nodes (alias expansion)", MaxNodes)
	}
	return false
}

// resolve follows aliases and unwraps a document node.
func (d *Decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n != nil && (n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode) {
		if !d.spend(n, path) {
			return nil
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return nil
		}
	}
	return n
}

// Overlay decodes a mapping node onto cfg: the keys present replace (scalars)
// or are merged into (sections) what cfg holds. path prefixes error paths.
func (d *Decoder) Overlay(cfg *Config, n *yaml.Node, path string) {
	d.start()
	n = d.resolve(n, path)
	if n == nil {
		return
	}
	d.overlayStruct(reflect.ValueOf(cfg).Elem(), n, path)
}

// OverlayAt sets the value n at the field named by the dotted path segs
// (e.g. vllm.engine.attention.backend), creating sections on the way.
// keyNode locates the path itself; errPath is the path errors name (e.g.
// sweep.vllm.engine.max_num_seqs[1]).
func (d *Decoder) OverlayAt(cfg *Config, segs []string, keyNode, n *yaml.Node, errPath string) {
	d.start()
	d.overlayPath(reflect.ValueOf(cfg).Elem(), segs, keyNode, n, errPath, "")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return fmt.Sprintf("the string %q", clip(n.Value))
		case "!!int":
			return "the integer " + clip(n.Value)
		case "!!float":
			return "the number " + clip(n.Value)
		case "!!bool":
			return "the boolean " + n.Value
		}
		return fmt.Sprintf("%q (%s)", clip(n.Value), n.ShortTag())
	}
	return "an unsupported node"
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

var (
	typDataset = reflect.TypeOf(Dataset{})
	typGeneric = reflect.TypeOf(map[string]any(nil))
	typStrings = reflect.TypeOf([]string(nil))
)

type defaulter interface{ setDefaults() }
type explicitMarker interface{ markExplicit(int) }

// keyString returns a mapping key as a string, or reports why it cannot be one.
func (d *Decoder) keyString(k *yaml.Node, path string) (string, bool) {
	k = d.resolve(k, path)
	if k == nil {
		return "", false
	}
	if k.Kind != yaml.ScalarNode {
		d.Errorf(k, path, "", "a key must be a plain name, got %s", kindName(k))
		return "", false
	}
	if k.Tag == "!!merge" || k.Value == "<<" && k.Style == 0 {
		d.Errorf(k, path, "write the keys out, or put shared fields in a base: file", "YAML merge keys (<<) are not supported")
		return "", false
	}
	if len(k.Value) > 256 {
		d.Errorf(k, path, "", "a key of %d bytes is too long", len(k.Value))
		return "", false
	}
	return k.Value, true
}

// pairs iterates a mapping node's key/value pairs, reporting duplicate keys.
func (d *Decoder) pairs(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) {
	var seen map[string]bool
	if len(n.Content) > 2 {
		seen = make(map[string]bool, len(n.Content)/2)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.spend(n.Content[i], path) {
			return
		}
		key, ok := d.keyString(n.Content[i], path)
		if !ok {
			continue
		}
		if seen != nil {
			if seen[key] {
				d.Errorf(n.Content[i], join(path, key), "remove one of them", "key %q appears twice in this mapping", key)
				continue
			}
			seen[key] = true
		}
		fn(key, n.Content[i], n.Content[i+1])
	}
}

func (d *Decoder) overlayStruct(v reflect.Value, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		d.Errorf(n, path, fmt.Sprintf("write %s: {<field>: <value>, ...}", lastSeg(path)), "expected a mapping, got %s", kindName(n))
		return
	}
	si := infoOf(v.Type())
	d.pairs(n, path, func(key string, k, val *yaml.Node) {
		p := join(path, key)
		i, ok := si.byName[key]
		if !ok {
			// A dotted key (pytorch.batch_size: 4) reaches a nested field, as
			// in a sweep; only when its first segment is a field here.
			if segs := strings.Split(key, "."); len(segs) > 1 {
				if _, known := si.byName[segs[0]]; known && !hasEmpty(segs) {
					d.overlayPath(v, segs, k, val, p, path)
					return
				}
			}
			if v.Type() == reflect.TypeOf(Synthetic{}) && key == "n" {
				d.Note("%s is ignored: the number of prompts is the top-level n", p)
				return
			}
			if si.extra < 0 {
				d.unknown(k, p, key, si.names)
				return
			}
			d.setExtra(v.Field(si.extra), []string{key}, k, val, p, si.names)
			return
		}
		f := &si.fields[i]
		if d.Pos != nil {
			d.Pos[p] = k
		}
		d.overlayValue(v.Field(f.index), f, val, p)
		if m, ok := v.Addr().Interface().(explicitMarker); ok {
			m.markExplicit(f.index)
		}
	})
}

func (d *Decoder) unknown(k *yaml.Node, path, key string, names []string) {
	hint := ""
	if s := Suggest(key, names); s != "" {
		hint = fmt.Sprintf("did you mean %q?", s)
	} else if len(names) <= 12 {
		hint = "valid keys: " + strings.Join(names, ", ")
	}
	d.Errorf(k, path, hint, "unknown field %q", key)
}

// setExtra stores a passthrough key of a backend section (copy on write:
// configs share maps until one changes).
func (d *Decoder) setExtra(m reflect.Value, segs []string, k, val *yaml.Node, path string, names []string) {
	if s := Suggest(segs[0], names); s != "" && s != segs[0] {
		d.Note("%s is not a field llem knows; it is passed to the engine as is (did you mean %q?)", path, s)
	}
	g, ok := d.generic(val, path, 0)
	if !ok {
		return
	}
	old, _ := m.Interface().(map[string]any)
	m.Set(reflect.ValueOf(setGeneric(old, segs, g)))
}

// setGeneric returns a copy of m with value g merged in at the path segs.
func setGeneric(m map[string]any, segs []string, g any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	if len(segs) == 1 {
		out[segs[0]] = mergeGeneric(m[segs[0]], g)
		return out
	}
	sub, _ := m[segs[0]].(map[string]any)
	out[segs[0]] = setGeneric(sub, segs[1:], g)
	return out
}

// mergeGeneric deep-merges b over a: mappings merge key by key, anything
// else is replaced. Neither input is modified.
func mergeGeneric(a, b any) any {
	am, ok1 := a.(map[string]any)
	bm, ok2 := b.(map[string]any)
	if !ok1 || !ok2 {
		return b
	}
	out := make(map[string]any, len(am)+len(bm))
	for k, v := range am {
		out[k] = v
	}
	for k, v := range bm {
		out[k] = mergeGeneric(am[k], v)
	}
	return out
}

// generic converts a node to a free-form JSON value.
func (d *Decoder) generic(n *yaml.Node, path string, depth int) (any, bool) {
	n = d.resolve(n, path)
	if n == nil || !d.spend(n, path) {
		return nil, false
	}
	if depth == 0 {
		d.genRoot = path
	}
	if depth > MaxDepth {
		d.Errorf(n, d.genRoot, "flatten the value", "values nested more than %d levels deep are not supported", MaxDepth)
		return nil, false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, true
		case "!!bool":
			b, err := strconv.ParseBool(n.Value)
			if err != nil {
				d.Errorf(n, path, "", "expected true or false, got %q", clip(n.Value))
				return nil, false
			}
			return b, true
		case "!!int":
			i, err := parseYAMLInt(n.Value)
			if err != nil || i > canonjson.MaxSafeInt || i < -canonjson.MaxSafeInt {
				d.Errorf(n, path, "write it as a string", "integer %s is out of range (±2^53)", clip(n.Value))
				return nil, false
			}
			return i, true
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				d.Errorf(n, path, "", "expected a finite number, got %s", clip(n.Value))
				return nil, false
			}
			return f, true
		}
		if len(n.Value) > MaxString {
			d.Errorf(n, path, "", "a string of %d bytes is longer than the limit of %d", len(n.Value), MaxString)
			return nil, false
		}
		return n.Value, true
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			g, ok := d.generic(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if !ok {
				return nil, false
			}
			out = append(out, g)
		}
		return out, true
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		ok := true
		d.pairs(n, path, func(key string, _, v *yaml.Node) {
			if !ok {
				return
			}
			var g any
			g, ok = d.generic(v, join(path, key), depth+1)
			out[key] = g
		})
		return out, ok
	}
	d.Errorf(n, path, "", "unsupported YAML node")
	return nil, false
}

func parseYAMLInt(s string) (int64, error) {
	return strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
}

func (d *Decoder) overlayValue(v reflect.Value, f *field, n *yaml.Node, path string) {
	n = d.resolve(n, path)
	if n == nil {
		return
	}
	isNull := n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
	t := v.Type()
	switch {
	case t == typDataset:
		d.overlayDataset(v.Addr().Interface().(*Dataset), n, path)
	case t == typGeneric:
		if isNull {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.MappingNode {
			d.Errorf(n, path, "", "expected a mapping, got %s", kindName(n))
			return
		}
		g, ok := d.generic(n, path, 0)
		if ok {
			old, _ := v.Interface().(map[string]any)
			v.Set(reflect.ValueOf(mergeGeneric(old, g)))
		}
	case t == typStrings:
		if isNull {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.Errorf(n, path, "", "expected a list of strings, got %s", kindName(n))
			return
		}
		out := make([]string, 0, len(n.Content))
		for i, e := range n.Content {
			e = d.resolve(e, path)
			if e == nil {
				return
			}
			ep := fmt.Sprintf("%s[%d]", path, i)
			if e.Kind != yaml.ScalarNode || e.ShortTag() != "!!str" {
				d.Errorf(e, ep, "", "expected a string, got %s", kindName(e))
				return
			}
			out = append(out, e.Value)
		}
		v.Set(reflect.ValueOf(out))
	case t.Kind() == reflect.Pointer:
		if isNull {
			v.Set(reflect.Zero(t))
			return
		}
		nv := reflect.New(t.Elem())
		if !v.IsNil() {
			nv.Elem().Set(v.Elem()) // copy on write: the old value may be shared
		} else if df, ok := nv.Interface().(defaulter); ok {
			df.setDefaults()
		}
		if t.Elem().Kind() == reflect.Struct {
			d.overlayStruct(nv.Elem(), n, path)
		} else if !d.scalar(nv.Elem(), f, n, path) {
			return
		}
		v.Set(nv)
	case t.Kind() == reflect.Struct:
		if isNull {
			d.Errorf(n, path, "remove the key to keep the defaults", "expected a mapping, got null")
			return
		}
		d.overlayStruct(v, n, path)
	default:
		d.scalar(v, f, n, path)
	}
}

// scalar decodes a scalar node into v (string, bool, int, int64, float64),
// checking the field's rule. It reports whether v was set.
func (d *Decoder) scalar(v reflect.Value, f *field, n *yaml.Node, path string) bool {
	before := len(d.errs)
	ok := d.scalar1(v, f, n, path)
	for _, e := range d.errs[before:] {
		if e.Hint == "" {
			e.Hint = "write e.g. " + lastSeg(path) + ": " + example(f.rule, v.Kind())
		}
	}
	return ok
}

func lastSeg(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		path = path[i+1:]
	}
	if i := strings.IndexByte(path, '['); i > 0 {
		path = path[:i]
	}
	return path
}

// example is a valid value for a rule, for hints.
func example(r rule, k reflect.Kind) string {
	switch {
	case len(r.enum) > 0:
		return r.enum[0]
	case len(r.oneof) > 0:
		return strconv.FormatInt(r.oneof[0], 10)
	case k == reflect.Bool:
		return "true"
	case k == reflect.String:
		return `"..."`
	}
	x := 0.0
	switch {
	case r.hasMin:
		x = r.min
		if r.minExclusive {
			x++
		}
	case r.hasMax:
		x = r.max
		if r.maxExclusive {
			x--
		}
	}
	if k == reflect.Int || k == reflect.Int64 {
		x = math.Ceil(x)
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

func (d *Decoder) scalar1(v reflect.Value, f *field, n *yaml.Node, path string) bool {
	r := &f.rule
	if n.Kind != yaml.ScalarNode {
		d.Errorf(n, path, "", "expected %s, got %s", r.expected(kindWord(v.Kind())), kindName(n))
		return false
	}
	if n.ShortTag() == "!!null" {
		d.Errorf(n, path, "remove the key to use the default", "expected %s, got null", r.expected(kindWord(v.Kind())))
		return false
	}
	switch v.Kind() {
	case reflect.String:
		return d.scalarString(v, r, n, path)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.ShortTag() != "!!bool" || err != nil {
			d.Errorf(n, path, "", "expected true or false, got %s", kindName(n))
			return false
		}
		v.SetBool(b)
		return true
	case reflect.Int, reflect.Int64:
		return d.scalarInt(v, r, n, path)
	case reflect.Float64:
		return d.scalarFloat(v, r, n, path)
	}
	panic("config: unsupported field type " + v.Type().String())
}

func (d *Decoder) scalarString(v reflect.Value, r *rule, n *yaml.Node, path string) bool {
	if n.ShortTag() != "!!str" {
		d.Errorf(n, path, fmt.Sprintf("quote it: \"%s\"", clip(n.Value)), "expected %s, got %s", r.expected("a string"), kindName(n))
		return false
	}
	s := n.Value
	if len(s) > MaxString {
		d.Errorf(n, path, "", "a string of %d bytes is longer than the limit of %d", len(s), MaxString)
		return false
	}
	if r.nonempty && s == "" {
		d.Errorf(n, path, "", "must not be empty")
		return false
	}
	if len(r.enum) > 0 && !contains(r.enum, s) {
		hint := ""
		if sg := Suggest(s, r.enum); sg != "" {
			hint = fmt.Sprintf("did you mean %q?", sg)
		}
		d.Errorf(n, path, hint, "expected one of %s, got %q", strings.Join(r.enum, ", "), clip(s))
		return false
	}
	v.SetString(s)
	return true
}

func (d *Decoder) scalarInt(v reflect.Value, r *rule, n *yaml.Node, path string) bool {
	var i int64
	switch n.ShortTag() {
	case "!!int":
		var err error
		i, err = parseYAMLInt(n.Value)
		if err != nil {
			d.Errorf(n, path, "", "integer %s is out of range (±2^53)", clip(n.Value))
			return false
		}
	case "!!float":
		fl, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || math.IsNaN(fl) || math.IsInf(fl, 0) || fl != math.Trunc(fl) {
			d.Errorf(n, path, "", "expected %s, got %s", r.expected("an integer"), kindName(n))
			return false
		}
		if math.Abs(fl) > canonjson.MaxSafeInt {
			d.Errorf(n, path, "", "integer %s is out of range (±2^53)", clip(n.Value))
			return false
		}
		i = int64(fl)
	default:
		d.Errorf(n, path, "", "expected %s, got %s", r.expected("an integer"), kindName(n))
		return false
	}
	if i > canonjson.MaxSafeInt || i < -canonjson.MaxSafeInt {
		d.Errorf(n, path, "", "integer %s is out of range (±2^53)", clip(n.Value))
		return false
	}
	if !r.check(float64(i)) {
		d.Errorf(n, path, "", "expected %s, got %d", r.expected("an integer"), i)
		return false
	}
	v.SetInt(i)
	return true
}

func (d *Decoder) scalarFloat(v reflect.Value, r *rule, n *yaml.Node, path string) bool {
	tag := n.ShortTag()
	if _, err := strconv.ParseFloat(n.Value, 64); tag == "!!str" && errors.Is(err, strconv.ErrRange) {
		d.Errorf(n, path, "", "number %s is out of range: expected a finite number", clip(n.Value))
		return false
	}
	if tag != "!!int" && tag != "!!float" {
		d.Errorf(n, path, "", "expected %s, got %s", r.expected("a number"), kindName(n))
		return false
	}
	fl, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
	if err != nil {
		if i, err2 := parseYAMLInt(n.Value); err2 == nil {
			fl, err = float64(i), nil
		}
	}
	if err != nil || math.IsNaN(fl) || math.IsInf(fl, 0) {
		d.Errorf(n, path, "", "expected %s, got %s", r.expected("a finite number"), kindName(n))
		return false
	}
	if !r.check(fl) {
		d.Errorf(n, path, "", "expected %s, got %s", r.expected("a number"), n.Value)
		return false
	}
	v.SetFloat(fl)
	return true
}

func kindWord(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	}
	return "a value"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var datasetAliases = []string{DatasetSynthetic, DatasetAIEnergyScore}

func (d *Decoder) overlayDataset(ds *Dataset, n *yaml.Node, path string) {
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		s := n.Value
		switch {
		case s == DatasetSynthetic:
			*ds = Dataset{Synthetic: defaultSynthetic()}
		case s == DatasetAIEnergyScore || strings.HasSuffix(s, ".jsonl") && len(s) <= 4096:
			*ds = Dataset{Name: s}
		default:
			hint := "write synthetic, aienergyscore, a path ending in .jsonl, or a mapping {input_len, output_len, seed, distribution, sigma}"
			if sg := Suggest(s, datasetAliases); sg != "" {
				hint = fmt.Sprintf("did you mean %q?", sg)
			}
			d.Errorf(n, path, hint, "unknown dataset %q", clip(s))
		}
	case n.Kind == yaml.MappingNode:
		syn := defaultSynthetic()
		if ds.Synthetic != nil {
			*syn = *ds.Synthetic
		}
		d.overlayStruct(reflect.ValueOf(syn).Elem(), n, path)
		*ds = Dataset{Synthetic: syn}
	default:
		d.Errorf(n, path, "write synthetic, aienergyscore, a path ending in .jsonl, or a mapping {input_len, output_len, seed, distribution, sigma}",
			"expected a dataset name or a mapping, got %s", kindName(n))
	}
}

// overlayPath walks segs from the struct v and overlays n at the end.
func (d *Decoder) overlayPath(v reflect.Value, segs []string, keyNode, n *yaml.Node, errPath, fieldPath string) {
	if v.Type() == typDataset {
		ds := v.Addr().Interface().(*Dataset)
		syn := defaultSynthetic()
		if ds.Synthetic != nil {
			*syn = *ds.Synthetic
		}
		d.overlayPath(reflect.ValueOf(syn).Elem(), segs, keyNode, n, errPath, fieldPath)
		*ds = Dataset{Synthetic: syn}
		return
	}
	si := infoOf(v.Type())
	seg := segs[0]
	p := join(fieldPath, seg)
	i, ok := si.byName[seg]
	if !ok {
		if si.extra >= 0 {
			d.setExtra(v.Field(si.extra), segs, keyNode, n, errPath, si.names)
			return
		}
		// The path does not exist: name the axis or key, not one of its values.
		if i := strings.LastIndexByte(errPath, '['); i > 0 && strings.HasSuffix(errPath, "]") {
			errPath = errPath[:i]
		}
		d.unknown(keyNode, errPath, seg, si.names)
		if len(segs) > 0 && fieldPath != "" {
			d.errs[len(d.errs)-1].Message = fmt.Sprintf("unknown field %q in %s", seg, fieldPath)
		}
		return
	}
	f := &si.fields[i]
	fv := v.Field(f.index)
	if len(segs) == 1 {
		d.overlayValue(fv, f, n, errPath)
		if m, ok := v.Addr().Interface().(explicitMarker); ok {
			m.markExplicit(f.index)
		}
		return
	}
	t := fv.Type()
	switch {
	case t == typDataset || t.Kind() == reflect.Struct:
		d.overlayPath(fv, segs[1:], keyNode, n, errPath, p)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		nv := reflect.New(t.Elem())
		if !fv.IsNil() {
			nv.Elem().Set(fv.Elem())
		} else if df, ok := nv.Interface().(defaulter); ok {
			df.setDefaults()
		}
		d.overlayPath(nv.Elem(), segs[1:], keyNode, n, errPath, p)
		fv.Set(nv)
	case t == typGeneric:
		g, ok := d.generic(n, errPath, 0)
		if ok {
			old, _ := fv.Interface().(map[string]any)
			fv.Set(reflect.ValueOf(setGeneric(old, segs[1:], g)))
		}
	default:
		d.Errorf(keyNode, errPath, "", "%s is a single value; it has no field %q", p, segs[1])
	}
}

func hasEmpty(segs []string) bool {
	for _, s := range segs {
		if s == "" {
			return true
		}
	}
	return false
}

// OverlayStruct decodes a mapping node onto any struct that follows this
// package's tag conventions (json names, v rules, pointers for nullable
// fields); the study package decodes its execution block with it.
func (d *Decoder) OverlayStruct(dst any, n *yaml.Node, path string) {
	d.start()
	n = d.resolve(n, path)
	if n == nil {
		return
	}
	d.overlayStruct(reflect.ValueOf(dst).Elem(), n, path)
}

// Generic converts a node to a free-form JSON value (nil, bool, int64,
// float64, string, []any, map[string]any) under the same limits.
func (d *Decoder) Generic(n *yaml.Node, path string) (any, bool) {
	d.start()
	return d.generic(n, path, 0)
}

// Resolve follows aliases (counting them against the node budget).
func (d *Decoder) Resolve(n *yaml.Node, path string) *yaml.Node {
	d.start()
	return d.resolve(n, path)
}

package serverargs

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/canonjson"
)

// boolStyle is how a server's command line spells a boolean.
type boolStyle int

const (
	// negatable: --x for true, --no-x for false (vLLM's options are
	// argparse BooleanOptionalAction).
	negatable boolStyle = iota
	// presence: --x for true, nothing for false, which is the option's
	// default (SGLang's store_true options, trtllm-serve's click flags).
	presence
)

// flagWriter appends a section's fields to a command line as flags, in a
// fixed order (typed fields in declaration order, then extra keys sorted),
// refusing a flag given twice or one llem sets itself.
type flagWriter struct {
	argv  []string
	style boolStyle
	// name turns a field name into its flag (snake_case → --kebab-case).
	name func(field string) string
	// owner maps the flags llem sets itself to the setting that decides them.
	owner map[string]string
	seen  map[string]string // flag → the field path that gave it
	err   error
}

func newWriter(argv []string, style boolStyle, name func(string) string, owner map[string]string) *flagWriter {
	return &flagWriter{argv: argv, style: style, name: name, owner: owner, seen: map[string]string{}}
}

func kebab(field string) string { return "--" + strings.ReplaceAll(field, "_", "-") }
func snake(field string) string { return "--" + field }

// flagName is what an extra key must look like to become a flag.
var flagName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// add appends field (at path, for errors) with value v; nil adds nothing.
func (w *flagWriter) add(path, field string, v any) {
	if w.err != nil || v == nil {
		return
	}
	if !flagName.MatchString(field) {
		w.err = fmt.Errorf("%s: %q is not an option name (letters, digits, _ and - only)", path, field)
		return
	}
	flag := w.name(field)
	if why, ok := w.owner[flag]; ok {
		w.err = fmt.Errorf("%s: llem sets %s itself, from %s; remove the key", path, flag, why)
		return
	}
	if prev, ok := w.seen[flag]; ok {
		w.err = fmt.Errorf("%s: %s is given by %s already; keep one of them", path, flag, prev)
		return
	}
	w.seen[flag] = path
	switch x := v.(type) {
	case bool:
		switch {
		case x:
			w.argv = append(w.argv, flag)
		case w.style == negatable:
			w.argv = append(w.argv, "--no-"+strings.TrimPrefix(flag, "--"))
		}
	case []string: // a list option (argparse nargs="+")
		if len(x) > 0 {
			w.argv = append(append(w.argv, flag), x...)
		}
	default:
		s, err := scalar(v)
		if err != nil {
			w.err = fmt.Errorf("%s: %w", path, err)
			return
		}
		w.argv = append(w.argv, flag, s)
	}
}

// scalar writes a value as one argument: strings as they are, numbers in
// their shortest form, lists and mappings as canonical JSON (the servers
// parse JSON for their structured options).
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		b, err := canonjson.AppendFloat(nil, x)
		return string(b), err
	}
	b, err := canonjson.Append(nil, v)
	return string(b), err
}

// section adds the typed fields of the struct s (a pointer; nil adds
// nothing) except those in skip, then its extra keys (the map field tagged
// llem:"extra") sorted. path prefixes the field paths of errors.
func (w *flagWriter) section(path string, s any, skip ...string) {
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	v = v.Elem()
	var extra map[string]any
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Tag.Get("llem") == "extra" {
			extra, _ = v.Field(i).Interface().(map[string]any)
			continue
		}
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" || contains(skip, name) {
			continue
		}
		w.add(path+"."+name, name, plain(v.Field(i)))
	}
	w.extras(path, extra)
}

// extras adds free-form keys, sorted.
func (w *flagWriter) extras(path string, m map[string]any) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.add(path+"."+k, k, m[k])
	}
}

// asMap is the struct s (a pointer) as a JSON object: its non-null typed
// fields except those in skip, and its extra keys.
func asMap(s any, skip ...string) map[string]any {
	v := reflect.ValueOf(s).Elem()
	out := map[string]any{}
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if f.Tag.Get("llem") == "extra" {
			m, _ := v.Field(i).Interface().(map[string]any)
			for k, x := range m {
				out[k] = x
			}
			continue
		}
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if x := plain(v.Field(i)); x != nil && name != "-" && !contains(skip, name) {
			out[name] = x
		}
	}
	return out
}

// plain is a field's value as add takes it: nil for a null pointer or an
// empty map or list.
func plain(v reflect.Value) any {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Map, reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
	case reflect.Int, reflect.Int64:
		return v.Int()
	}
	return v.Interface()
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

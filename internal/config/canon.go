package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"

	"github.com/llem/llem/internal/canonjson"
)

// AppendCanonical appends the config as RFC 8785 canonical JSON: every field
// present (null where unset), backend passthrough keys merged into their
// section in key order.
func (c *Config) AppendCanonical(dst []byte) ([]byte, error) {
	return appendStruct(dst, reflect.ValueOf(c).Elem())
}

// Canonical returns the config as RFC 8785 canonical JSON.
func (c *Config) Canonical() ([]byte, error) { return c.AppendCanonical(make([]byte, 0, 2048)) }

// IDOf returns the identity of canonical config JSON: the first 16 hex digits
// of its SHA-256.
func IDOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:8])
}

// ID returns the config's identity: the first 16 hex digits of the SHA-256 of
// its canonical JSON.
func (c *Config) ID() (string, error) {
	b, err := c.Canonical()
	if err != nil {
		return "", err
	}
	return IDOf(b), nil
}

// MarshalJSON writes the canonical form.
func (c Config) MarshalJSON() ([]byte, error) { return c.Canonical() }

// UnmarshalJSON decodes an effective config (see Decode).
func (c *Config) UnmarshalJSON(b []byte) error {
	cfg, err := Decode(b)
	if err != nil {
		return err
	}
	*c = *cfg
	return nil
}

func appendStruct(dst []byte, v reflect.Value) ([]byte, error) {
	si := infoOf(v.Type())
	var extra map[string]any
	if si.extra >= 0 {
		extra, _ = v.Field(si.extra).Interface().(map[string]any)
	}
	var keys []string
	if len(extra) > 0 {
		keys = make([]string, 0, len(extra))
		for k := range extra {
			keys = append(keys, k)
		}
		canonjson.SortKeys(keys)
	}
	dst = append(dst, '{')
	first := true
	var err error
	ki := 0
	for _, fi := range si.sorted {
		f := &si.fields[fi]
		for ki < len(keys) && canonjson.Less(keys[ki], f.name) {
			if dst, err = appendExtra(dst, keys[ki], extra[keys[ki]], &first); err != nil {
				return dst, err
			}
			ki++
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, f.key...)
		if dst, err = appendValue(dst, v.Field(f.index)); err != nil {
			return dst, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	for ; ki < len(keys); ki++ {
		if dst, err = appendExtra(dst, keys[ki], extra[keys[ki]], &first); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendExtra(dst []byte, k string, v any, first *bool) ([]byte, error) {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = canonjson.AppendString(dst, k)
	dst = append(dst, ':')
	return canonjson.Append(dst, v)
}

func appendValue(dst []byte, v reflect.Value) ([]byte, error) {
	switch v.Kind() {
	case reflect.String:
		return canonjson.AppendString(dst, v.String()), nil
	case reflect.Bool:
		if v.Bool() {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case reflect.Int, reflect.Int64:
		return canonjson.AppendInt(dst, v.Int())
	case reflect.Float64:
		return canonjson.AppendFloat(dst, v.Float())
	case reflect.Pointer:
		if v.IsNil() {
			return append(dst, "null"...), nil
		}
		return appendValue(dst, v.Elem())
	case reflect.Map:
		if v.IsNil() {
			return append(dst, "null"...), nil
		}
		return canonjson.Append(dst, v.Interface())
	case reflect.Slice:
		if v.IsNil() {
			return append(dst, "null"...), nil
		}
		return canonjson.Append(dst, v.Interface())
	case reflect.Struct:
		if v.Type() == typDataset {
			ds := v.Addr().Interface().(*Dataset)
			if ds.Synthetic != nil {
				return appendStruct(dst, reflect.ValueOf(ds.Synthetic).Elem())
			}
			return canonjson.AppendString(dst, ds.Name), nil
		}
		return appendStruct(dst, v)
	}
	return dst, fmt.Errorf("unsupported type %s", v.Type())
}

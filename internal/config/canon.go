package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"sync"
	"unsafe"

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

// The encoder is compiled once per type into closures that read fields
// through their offsets: several times faster than walking reflect.Values,
// which matters when a sweep hashes a million configs.
type encFn func(dst []byte, p unsafe.Pointer) ([]byte, error)

var encCache sync.Map // reflect.Type → encFn

func encoderOf(t reflect.Type) encFn {
	if f, ok := encCache.Load(t); ok {
		return f.(encFn)
	}
	f := compileEnc(t)
	encCache.Store(t, f)
	return f
}

func appendStruct(dst []byte, v reflect.Value) ([]byte, error) {
	if !v.CanAddr() {
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		v = p.Elem()
	}
	return encoderOf(v.Type())(dst, v.Addr().UnsafePointer())
}

func compileEnc(t reflect.Type) encFn {
	switch {
	case t == typDataset:
		syn := encoderOf(reflect.TypeOf(Synthetic{}))
		return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
			ds := (*Dataset)(p)
			if ds.Synthetic != nil {
				return syn(dst, unsafe.Pointer(ds.Synthetic))
			}
			return canonjson.AppendString(dst, ds.Name), nil
		}
	case t == typGeneric:
		return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
			m := *(*map[string]any)(p)
			if m == nil {
				return append(dst, "null"...), nil
			}
			return canonjson.Append(dst, m)
		}
	case t == typStrings:
		return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
			s := *(*[]string)(p)
			if s == nil {
				return append(dst, "null"...), nil
			}
			return canonjson.Append(dst, s)
		}
	}
	switch t.Kind() {
	case reflect.String:
		return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
			return canonjson.AppendString(dst, *(*string)(p)), nil
		}
	case reflect.Bool:
		return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
			if *(*bool)(p) {
				return append(dst, "true"...), nil
			}
			return append(dst, "false"...), nil
		}
	case reflect.Int:
		return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
			return canonjson.AppendInt(dst, int64(*(*int)(p)))
		}
	case reflect.Int64:
		return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
			return canonjson.AppendInt(dst, *(*int64)(p))
		}
	case reflect.Float64:
		return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
			return canonjson.AppendFloat(dst, *(*float64)(p))
		}
	case reflect.Pointer:
		elem := encoderOf(t.Elem())
		return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
			q := *(*unsafe.Pointer)(p)
			if q == nil {
				return append(dst, "null"...), nil
			}
			return elem(dst, q)
		}
	case reflect.Struct:
		return compileStruct(t)
	}
	panic("config: cannot encode " + t.String())
}

func compileStruct(t reflect.Type) encFn {
	si := infoOf(t)
	type fenc struct {
		name     string
		key      []byte
		off      uintptr
		enc      encFn
		omitNull bool
	}
	fs := make([]fenc, len(si.sorted))
	for i, fi := range si.sorted {
		f := &si.fields[fi]
		if f.omitNull && f.typ.Kind() != reflect.Pointer {
			panic("config: llem:\"omitnull\" on a field that is not a pointer: " + f.name)
		}
		fs[i] = fenc{f.name, f.key, t.Field(f.index).Offset, encoderOf(f.typ), f.omitNull}
	}
	extraOff, hasExtra := uintptr(0), si.extra >= 0
	if hasExtra {
		extraOff = t.Field(si.extra).Offset
	}
	return func(dst []byte, p unsafe.Pointer) ([]byte, error) {
		var extra map[string]any
		if hasExtra {
			extra = *(*map[string]any)(unsafe.Add(p, extraOff))
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
		for i := range fs {
			f := &fs[i]
			for ki < len(keys) && canonjson.Less(keys[ki], f.name) {
				if dst, err = appendExtra(dst, keys[ki], extra[keys[ki]], &first); err != nil {
					return dst, err
				}
				ki++
			}
			if f.omitNull && *(*unsafe.Pointer)(unsafe.Add(p, f.off)) == nil {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, f.key...)
			if dst, err = f.enc(dst, unsafe.Add(p, f.off)); err != nil {
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

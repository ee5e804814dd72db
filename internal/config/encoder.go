package config

import (
	"bytes"
	"reflect"
	"unsafe"
)

// Encoder appends configs as canonical JSON, reusing the encoding of each
// top-level section that is bit for bit the same as in the previous config it
// encoded (same values, same pointers). Configs made by this package share
// sections copy-on-write — a section reached through a pointer is never
// changed in place, only replaced — so an unchanged pointer means unchanged
// content. Callers that modify a config's sections in place must not use an
// Encoder. An Encoder is not safe for concurrent use.
//
// A sweep changes a few fields between consecutive configs; the Encoder then
// re-encodes only those.
type Encoder struct {
	slots []encSlot
}

type encSlot struct {
	snap reflect.Value // typed copy of the field: keeps its pointers alive, so addresses cannot be reused
	enc  []byte
	ok   bool
}

type topField struct {
	key  []byte
	off  uintptr
	size uintptr
	typ  reflect.Type
	enc  encFn
	memo bool
	// omitNull: left out while nil (llem:"omitnull"), as AppendCanonical does
	omitNull bool
}

var topPlan = func() []topField {
	t := reflect.TypeOf(Config{})
	si := infoOf(t)
	plan := make([]topField, len(si.sorted))
	for i, fi := range si.sorted {
		f := &si.fields[fi]
		sf := t.Field(f.index)
		k := f.typ.Kind()
		plan[i] = topField{key: f.key, off: sf.Offset, size: f.typ.Size(), typ: f.typ, enc: encoderOf(f.typ),
			memo: k == reflect.Struct || k == reflect.Pointer || k == reflect.Map, omitNull: f.omitNull}
	}
	return plan
}()

// Append appends c's canonical JSON (the same bytes as AppendCanonical).
func (e *Encoder) Append(dst []byte, c *Config) ([]byte, error) {
	if e.slots == nil {
		e.slots = make([]encSlot, len(topPlan))
	}
	p := unsafe.Pointer(c)
	dst = append(dst, '{')
	var err error
	first := true
	for i := range topPlan {
		f := &topPlan[i]
		fp := unsafe.Add(p, f.off)
		if f.omitNull && *(*unsafe.Pointer)(fp) == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, f.key...)
		if !f.memo {
			if dst, err = f.enc(dst, fp); err != nil {
				return dst, err
			}
			continue
		}
		s := &e.slots[i]
		cur := unsafe.Slice((*byte)(fp), f.size)
		if s.ok && bytes.Equal(cur, unsafe.Slice((*byte)(s.snap.Addr().UnsafePointer()), f.size)) {
			dst = append(dst, s.enc...)
			continue
		}
		start := len(dst)
		if dst, err = f.enc(dst, fp); err != nil {
			s.ok = false
			return dst, err
		}
		if !s.snap.IsValid() {
			s.snap = reflect.New(f.typ).Elem()
		}
		s.snap.Set(reflect.NewAt(f.typ, fp).Elem())
		s.enc = append(s.enc[:0], dst[start:]...)
		s.ok = true
	}
	return append(dst, '}'), nil
}

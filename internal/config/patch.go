package config

import (
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Patch is a value decoded once for a dotted field path, to be set on many
// configs quickly (a sweep sets the same few values on a million configs).
// Paths that merge rather than replace (sections, maps, the dataset,
// passthrough keys) keep the node and overlay it each time.
type Patch struct {
	segs    []string
	keyNode *yaml.Node
	node    *yaml.Node
	errPath string
	fast    bool
	hops    []int // field indexes from Config to the leaf
	value   reflect.Value
	// Cost is the YAML nodes one application visits (aliases expanded): 1
	// for a fast patch.
	Cost int
}

// NewPatch decodes n for the path segs on a copy of base, reporting problems
// to d (with errPath). The patch is usable when d reports no errors.
func (d *Decoder) NewPatch(base *Config, segs []string, keyNode, n *yaml.Node, errPath string) *Patch {
	p := &Patch{segs: segs, keyNode: keyNode, node: n, errPath: errPath}
	scratch := *base
	before := len(d.errs)
	d.OverlayAt(&scratch, segs, keyNode, n, errPath)
	p.Cost = d.Cost()
	if len(d.errs) > before {
		return p
	}
	// Fast when every hop is a known field, the inner hops are structs or
	// pointers to structs, and the leaf is a scalar or a pointer to one.
	t := reflect.TypeOf(Config{})
	v := reflect.ValueOf(&scratch).Elem()
	for i, seg := range segs {
		si := infoOf(t)
		fi, ok := si.byName[seg]
		if !ok {
			return p
		}
		f := si.fields[fi]
		p.hops = append(p.hops, f.index)
		v = v.Field(f.index)
		ft := f.typ
		if i < len(segs)-1 {
			if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct && ft.Elem() != typDataset {
				if v.IsNil() {
					return p
				}
				t, v = ft.Elem(), v.Elem()
				continue
			}
			if ft.Kind() == reflect.Struct && ft != typDataset {
				t = ft
				continue
			}
			return p
		}
		leaf := ft
		if leaf.Kind() == reflect.Pointer {
			leaf = leaf.Elem()
		}
		switch leaf.Kind() {
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Float64:
		default:
			return p
		}
		p.value = reflect.New(ft).Elem()
		p.value.Set(v)
		p.fast = true
		p.Cost = 1
	}
	return p
}

// Apply sets the patch's value on c (copying the sections on the way, which
// may be shared with other configs).
func (d *Decoder) Apply(c *Config, p *Patch) {
	if !p.fast {
		d.OverlayAt(c, p.segs, p.keyNode, p.node, p.errPath)
		return
	}
	v := reflect.ValueOf(c).Elem()
	last := len(p.hops) - 1
	for _, idx := range p.hops[:last] {
		fv := v.Field(idx)
		if fv.Kind() == reflect.Pointer {
			nv := reflect.New(fv.Type().Elem())
			if !fv.IsNil() {
				nv.Elem().Set(fv.Elem())
			} else if df, ok := nv.Interface().(defaulter); ok {
				df.setDefaults()
			}
			fv.Set(nv)
			v = nv.Elem()
		} else {
			v = fv
		}
	}
	v.Field(p.hops[last]).Set(p.value)
	if v.Type() == reflect.TypeOf(DecoderConfig{}) {
		v.Addr().Interface().(*DecoderConfig).markExplicit(p.hops[last])
	}
}

// String names the patch's path.
func (p *Patch) String() string { return strings.Join(p.segs, ".") }

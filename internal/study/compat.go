package study

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/llem/llem/internal/config"
)

// Forms of LLenergyMeasure v0.8's study grammar that llem accepts on top of
// its own (docs/expand.md, "Deliberate differences from v0.8").

// defaultBackend is the backend of the sweep's configs when neither a backend
// axis nor the shared fields name one: the shared backend, else the one the
// model implies (config.DefaultBackend). When a model axis names models that
// imply different backends it returns "" and each config decides for itself
// in Finalize; a backend-scoped axis then has no backend to belong to, which
// plan reports.
func (s *Study) defaultBackend() string {
	if s.base.Backend != "" {
		return s.base.Backend
	}
	var model *axis
	for _, a := range s.axes {
		if len(a.segs) == 1 && a.segs[0] == "model" {
			model = a
		}
	}
	if model == nil {
		return config.DefaultBackend(&s.base)
	}
	got := ""
	for _, v := range model.values {
		c := s.base
		c.Model = v.Value
		b := config.DefaultBackend(&c)
		if got != "" && b != got {
			return ""
		}
		got = b
	}
	return got
}

// topBackendList reads a top-level `backend:` whose value is a list (v0.8's
// `backend: [pytorch, vllm]`): it is the backend axis, as if written under
// sweep:. It reports whether v was such a list.
func (s *Study) topBackendList(k, v *yaml.Node) bool {
	r := s.dec.Resolve(v, "backend")
	if r == nil || r.Kind != yaml.SequenceNode {
		return false
	}
	if len(r.Content) == 0 {
		s.errorf(r, "backend", "give at least one backend, e.g. backend: [pytorch, vllm]", "an empty backend list")
		return true
	}
	a := &axis{key: "backend", keyNode: k, segs: []string{"backend"}, values: r.Content}
	for j := range a.values {
		a.paths = append(a.paths, fmt.Sprintf("backend[%d]", j))
	}
	s.topBackend = a
	return true
}

// addTopBackend makes the top-level backend list the study's backend axis,
// first in the axis order, once the sweep is read. A backend list in both
// places is an error: it is not clear which one is meant.
func (s *Study) addTopBackend() {
	a := s.topBackend
	if a == nil {
		return
	}
	if s.backendAxis != nil {
		s.errorf(a.keyNode, "backend", "keep one of the two lists",
			"backend is a list at the top level and a sweep axis (sweep.backend, line %d)", s.backendAxis.keyNode.Line)
		return
	}
	d := s.dec
	for j, v := range a.values {
		a.patches = append(a.patches, d.NewPatch(&s.base, a.segs, a.keyNode, v, a.paths[j]))
	}
	if es := d.Errors(); len(es) > 0 {
		s.errs = append(s.errs, es...)
		d.Reset()
		return
	}
	s.backendAxis = a
	s.axes = append([]*axis{a}, s.axes...)
}

// scopeHint is the advice for a backend-scoped axis whose backend the study
// does not use.
func scopeHint(scope string, backends []string) string {
	if len(backends) == 1 && backends[0] == "" {
		return fmt.Sprintf("the models of the model axis imply different backends; set backend: %s or list the backends (backend: [...])", scope)
	}
	return fmt.Sprintf("set backend: %s, or add %s to a backend axis (sweep: {backend: [%s, %s]})", scope, scope, strings.Join(backends, ", "), scope)
}

// backendNames lists backends for messages; "" is a block whose configs take
// the backend their model implies.
func backendNames(backends []string) string {
	out := make([]string, len(backends))
	for i, b := range backends {
		out[i] = b
		if b == "" {
			out[i] = "the backend each model implies"
		}
	}
	return strings.Join(out, ", ")
}

// entryErrors says, on an unknown key inside one experiments entry, that the
// whole file is refused (v0.8 skipped that entry and ran the rest): a typo
// must not silently drop an experiment.
func entryErrors(es config.Errors, entry string) config.Errors {
	for _, e := range es {
		if strings.HasPrefix(e.Message, "unknown field") {
			e.Message += "; the whole study is refused, not only " + entry
		}
	}
	return es
}

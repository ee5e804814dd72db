package study

import (
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
)

// Study-only top-level keys; every other top-level key is a shared field.
var studyKeys = []string{"name", "base", "version", "sweep", "experiments", "execution", "runners"}

// MaxConfigs bounds the configs one study may generate (before validation).
const MaxConfigs = 50_000_000

// Bounds on the work a hostile file can ask for through YAML aliases: one
// sweep value or experiment entry may expand to at most MaxValueNodes nodes,
// all of them together to MaxPrepareNodes, and the whole expansion (configs ×
// nodes decoded per config) to MaxWorkNodes.
const (
	MaxValueNodes   = 10_000
	MaxPrepareNodes = 2_000_000
	MaxWorkNodes    = 200_000_000
)

// Options are the command line's overrides.
type Options struct {
	Sets   []string // path=value, a shared field (dotted paths reach sections) or name
	Cycles int      // 0: from the file, else 3
	Order  string   // "": from the file, else shuffled
	Seed   *uint64  // nil: from the file, else derived from the study hash
	NoGaps bool
	// Columns computes the widths of the swept fields for the table format.
	Columns bool
	// MaxConfigs bounds the configs generated (0: the package's MaxConfigs).
	MaxConfigs int
}

// Execution is the study's execution block as the file wrote it (nil = unset).
type Execution struct {
	NCycles              *int     `json:"n_cycles" v:"min=1,max=1000000"`
	CycleOrder           *string  `json:"cycle_order" v:"enum=sequential|interleaved|shuffled"`
	ExperimentGapSeconds *float64 `json:"experiment_gap_seconds" v:"min=0,max=86400"`
	CycleGapSeconds      *float64 `json:"cycle_gap_seconds" v:"min=0,max=86400"`
	ShuffleSeed          *int64   `json:"shuffle_seed" v:"min=0"`
	SkipPreflight        *bool    `json:"skip_preflight"`
}

// axis is one sweep dimension.
type axis struct {
	key     string
	keyNode *yaml.Node
	segs    []string
	scope   string // backend name for a backend-scoped axis, "" for a universal one
	values  []*yaml.Node
	paths   []string // error path of each value: sweep.<key>[i]
	patches []*config.Patch
	cost    int // the most nodes one of its values costs to apply
}

// block is the product of the axes of one backend.
type block struct {
	base    config.Config // the shared fields with this backend and its section
	backend string
	dims    []*axis
	size    int
}

func (s *Study) errorf(n *yaml.Node, path, hint, format string, a ...any) {
	e := &config.Error{File: s.File, Path: path, Message: fmt.Sprintf(format, a...), Hint: hint}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	s.errs = append(s.errs, e)
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// stem is the default study name: the file's stem, made safe as a folder name.
func stem(file string) string {
	if file == "-" || file == "" {
		return "stdin"
	}
	b := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	b = regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(b, "-")
	b = strings.TrimLeft(b, "._-")
	if b == "" {
		return "study"
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return b
}

// load parses the study file into the base config, axes, experiments,
// execution block and runners. Every problem is collected.
func (s *Study) load(data []byte, opts Options) {
	top, err := config.ParseYAML(s.File, data)
	if err != nil {
		s.errs = append(s.errs, asConfigError(err))
		return
	}
	s.Name = stem(s.File)
	d := config.NewDecoder(s.File)
	s.dec = d
	s.base = config.Default()
	var sweepNode, expNode, execNode, runnersNode, baseNode *yaml.Node
	shared := &yaml.Node{Kind: yaml.MappingNode, Line: top.Line, Column: top.Column}
	allKeys := append(config.TopLevelFields(), studyKeys...)
	seen := map[string]bool{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			s.errorf(k, "", "", "a key must be a plain name")
			continue
		}
		if seen[k.Value] {
			s.errorf(k, k.Value, "remove one of them", "key %q appears twice", k.Value)
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "version":
		case "name":
			s.loadName(v)
		case "base":
			baseNode = v
		case "sweep":
			sweepNode = v
		case "experiments":
			expNode = v
		case "execution":
			execNode = v
		case "runners":
			runnersNode = v
		default:
			if k.Value == "backend" && s.topBackendList(k, v) {
				continue
			}
			first, _, _ := strings.Cut(k.Value, ".")
			if !contains(config.TopLevelFields(), first) {
				hint := ""
				if sg := config.Suggest(k.Value, allKeys); sg != "" {
					hint = fmt.Sprintf("did you mean %q?", sg)
				}
				s.errorf(k, k.Value, hint, "unknown field %q", k.Value)
				continue
			}
			shared.Content = append(shared.Content, k, v)
		}
	}
	if baseNode != nil {
		s.loadBase(baseNode)
	}
	d.Overlay(&s.base, shared, "")
	s.errs = append(s.errs, d.Errors()...)
	d.Reset()
	s.applySets(opts.Sets)
	s.loadExecution(execNode, opts)
	s.loadRunners(runnersNode)
	if sweepNode != nil {
		s.loadSweep(sweepNode)
	}
	s.addTopBackend()
	if expNode != nil {
		s.loadExperiments(expNode)
	}
	s.isStudy = sweepNode != nil || expNode != nil
	for _, n := range d.Notes {
		s.note(n)
	}
}

func (s *Study) loadName(v *yaml.Node) {
	v = s.dec.Resolve(v, "name")
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" || !safeName.MatchString(v.Value) {
		s.errorf(v, "name", "letters, digits, '.', '_' and '-', at most 128, starting with a letter or digit",
			"the study name must be safe as a folder name")
	} else {
		s.Name = v.Value
	}
}

func asConfigError(err error) *config.Error {
	if e, ok := err.(*config.Error); ok {
		return e
	}
	return &config.Error{Message: err.Error()}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Study) loadBase(n *yaml.Node) {
	n = s.dec.Resolve(n, "base")
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || n.Value == "" {
		s.errorf(n, "base", "write base: common.yaml", "expected the path of an experiment file")
		return
	}
	p := n.Value
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.Dir, p)
	}
	st, err := os.Stat(p)
	if err == nil && st.Size() > config.MaxFileBytes {
		s.errorf(n, "base", "", "base file %s is larger than %d bytes", p, config.MaxFileBytes)
		return
	}
	data, err := os.ReadFile(p)
	if err != nil {
		s.errorf(n, "base", "the path is relative to the study file's folder", "cannot read base file: %v", err)
		return
	}
	top, err := config.ParseYAML(p, data)
	if err != nil {
		s.errs = append(s.errs, asConfigError(err))
		return
	}
	body := &yaml.Node{Kind: yaml.MappingNode, Line: top.Line, Column: top.Column}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if contains(studyKeys, top.Content[i].Value) {
			continue // study-only keys of a base file are ignored
		}
		body.Content = append(body.Content, top.Content[i], top.Content[i+1])
	}
	bd := config.NewDecoder(p)
	bd.Overlay(&s.base, body, "")
	s.errs = append(s.errs, bd.Errors()...)
	s.notes = append(s.notes, bd.Notes...)
}

// applySets applies --set path=value overrides to the shared fields. The
// value is read as YAML (so 50 is a number, [1, 2] a list, 'x' a string).
func (s *Study) applySets(sets []string) {
	for _, kv := range sets {
		src := "--set " + kv
		path, val, ok := strings.Cut(kv, "=")
		if !ok || path == "" {
			s.errs = append(s.errs, &config.Error{File: "--set", Message: fmt.Sprintf("%q is not path=value", kv), Hint: "e.g. --set n=50 or --set pytorch.batch_size=4"})
			continue
		}
		if path == "name" {
			if !safeName.MatchString(val) {
				s.errs = append(s.errs, &config.Error{File: "--set", Path: "name", Message: "the study name must be safe as a folder name"})
			} else {
				s.Name = val
			}
			continue
		}
		first, _, _ := strings.Cut(path, ".")
		if contains(studyKeys, first) {
			s.errs = append(s.errs, &config.Error{File: "--set", Path: path, Message: "--set overrides shared experiment fields only",
				Hint: "use --cycles, --order, --seed or --no-gaps for the execution block"})
			continue
		}
		var doc yaml.Node
		vn := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val, Line: 1, Column: len(path) + 2}
		if err := yaml.Unmarshal([]byte(val), &doc); err == nil && len(doc.Content) == 1 && len(val) > 0 {
			vn = doc.Content[0]
			vn.Line, vn.Column = 1, len(path)+2
		}
		segs := strings.Split(path, ".")
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: path, Line: 1, Column: 1}
		d := config.NewDecoder(src)
		for _, sg := range segs {
			if sg == "" {
				d.Errorf(key, path, "", "empty segment in the path")
			}
		}
		if len(d.Errors()) == 0 {
			d.OverlayAt(&s.base, segs, key, vn, path)
		}
		for _, e := range d.Errors() {
			e.Line, e.Col = 0, 0 // positions inside a flag are not useful
		}
		s.errs = append(s.errs, d.Errors()...)
	}
}

func (s *Study) loadExecution(n *yaml.Node, opts Options) {
	var ex Execution
	if n != nil {
		d := config.NewDecoder(s.File)
		if r := d.Resolve(n, "execution"); r != nil && !(r.Kind == yaml.ScalarNode && r.ShortTag() == "!!null") {
			d.OverlayStruct(&ex, r, "execution")
		}
		s.errs = append(s.errs, d.Errors()...)
	}
	// The CLI-effective defaults of the original's CLI: 3 cycles, shuffled.
	s.NCycles = 3
	if ex.NCycles != nil {
		s.NCycles = *ex.NCycles
	}
	if opts.Cycles != 0 {
		if opts.Cycles < 1 || opts.Cycles > 1000000 {
			s.errs = append(s.errs, &config.Error{File: "--cycles", Message: fmt.Sprintf("expected 1 to 1000000 cycles, got %d", opts.Cycles)})
		}
		s.NCycles = opts.Cycles
	}
	s.Order = OrderShuffled
	if ex.CycleOrder != nil {
		s.Order = *ex.CycleOrder
	}
	if opts.Order != "" {
		if !contains([]string{OrderSequential, OrderInterleaved, OrderShuffled}, opts.Order) {
			hint := ""
			if sg := config.Suggest(opts.Order, []string{OrderSequential, OrderInterleaved, OrderShuffled}); sg != "" {
				hint = fmt.Sprintf("did you mean %q?", sg)
			}
			s.errs = append(s.errs, &config.Error{File: "--order", Message: fmt.Sprintf("expected sequential, interleaved or shuffled, got %q", opts.Order), Hint: hint})
		}
		s.Order = opts.Order
	}
	if ex.ShuffleSeed != nil {
		v := uint64(*ex.ShuffleSeed)
		s.seed = &v
	}
	if opts.Seed != nil {
		s.seed = opts.Seed
	}
	if ex.ExperimentGapSeconds != nil {
		s.ExperimentGapS = *ex.ExperimentGapSeconds
	}
	if ex.CycleGapSeconds != nil {
		s.CycleGapS = *ex.CycleGapSeconds
	}
	if opts.NoGaps {
		s.ExperimentGapS, s.CycleGapS = 0, 0
	}
}

func (s *Study) loadRunners(n *yaml.Node) {
	s.runners = map[string]record.Runner{}
	if n == nil {
		return
	}
	d := config.NewDecoder(s.File)
	n = d.Resolve(n, "runners")
	if n == nil {
		s.errs = append(s.errs, d.Errors()...)
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		s.errorf(n, "runners", "write runners: {pytorch: docker, vllm: \"docker:<image>\"}", "expected a mapping from backend to runner")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], d.Resolve(n.Content[i+1], "runners")
		p := "runners." + k.Value
		if !config.IsBackend(k.Value) {
			hint := "backends: " + strings.Join(config.Backends, ", ")
			if sg := config.Suggest(k.Value, config.Backends); sg != "" {
				hint = fmt.Sprintf("did you mean %q?", sg)
			}
			s.errorf(k, p, hint, "unknown backend %q", k.Value)
			continue
		}
		if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			s.errorf(n.Content[i+1], p, "write local, docker or docker:<image>", "expected a runner string")
			continue
		}
		r, ok := ParseRunner(v.Value)
		if !ok {
			hint := "write local, docker or docker:<image>"
			if sg := config.Suggest(v.Value, []string{"local", "docker"}); sg != "" {
				hint = fmt.Sprintf("did you mean %q?", sg)
			}
			s.errorf(v, p, hint, "unknown runner %q", clipS(v.Value))
			continue
		}
		s.runners[k.Value] = r
	}
	s.errs = append(s.errs, d.Errors()...)
}

// ParseRunner reads local | docker | docker:<image> (the image may hold ':').
func ParseRunner(v string) (record.Runner, bool) {
	switch {
	case v == "local":
		return record.Runner{Type: "local"}, true
	case v == "docker":
		return record.Runner{Type: "docker"}, true
	case strings.HasPrefix(v, "docker:") && len(v) > len("docker:") && !strings.ContainsAny(v, " \t\n"):
		return record.Runner{Type: "docker", Image: v[len("docker:"):]}, true
	}
	return record.Runner{}, false
}

func clipS(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// section resolves a top-level section's node (aliases followed): nil when
// it is null (nothing to load) or cannot be resolved (the error recorded).
func (s *Study) section(n *yaml.Node, name string) *yaml.Node {
	d := s.dec
	if n = d.Resolve(n, name); n == nil {
		s.errs = append(s.errs, d.Errors()...)
		d.Reset()
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	return n
}

func (s *Study) loadSweep(n *yaml.Node) {
	d := s.dec
	if n = s.section(n, "sweep"); n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		s.errorf(n, "sweep", "write sweep: {precision: [fp16, bf16]}", "expected a mapping from field path to values, got a %s", nodeKind(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], d.Resolve(n.Content[i+1], "sweep")
		if v == nil {
			break
		}
		if a := s.sweepAxis(k, v, seen); a != nil {
			if k.Value == "backend" {
				s.backendAxis = a
			}
			s.axes = append(s.axes, a)
		}
	}
	s.checkAxes()
}

// sweepAxis reads one axis of the sweep: its field path k and its values v
// (a list, or one value); nil, with the error noted, when it is not one.
func (s *Study) sweepAxis(k, v *yaml.Node, seen map[string]bool) *axis {
	if k.Kind != yaml.ScalarNode || k.Value == "" {
		s.errorf(k, "sweep", "", "an axis must be a field path")
		return nil
	}
	p := "sweep." + k.Value
	if seen[k.Value] {
		s.errorf(k, p, "merge the two lists", "axis %q appears twice", k.Value)
		return nil
	}
	seen[k.Value] = true
	segs := strings.Split(k.Value, ".")
	for _, sg := range segs {
		if sg == "" {
			s.errorf(k, p, "write a path such as vllm.engine.max_num_seqs", "empty segment in the axis path")
			return nil
		}
	}
	a := &axis{key: k.Value, keyNode: k, segs: segs}
	if config.IsBackend(segs[0]) {
		a.scope = segs[0]
	}
	switch {
	case v.Kind == yaml.SequenceNode:
		if len(v.Content) == 0 {
			s.errorf(v, p, "give at least one value, or remove the axis", "an axis needs at least one value")
			return nil
		}
		a.values = v.Content
	case v.Kind == yaml.MappingNode && a.scope != "" && len(segs) == 1:
		a.values = []*yaml.Node{v} // one whole-section value
	case v.Kind == yaml.MappingNode && k.Value != "dataset":
		s.errorf(v, p, fmt.Sprintf("use dotted keys, e.g. %s.<field>: [a, b]", k.Value), "expected a list of values, got a mapping")
		return nil
	default:
		a.values = []*yaml.Node{v}
	}
	for j := range a.values {
		a.paths = append(a.paths, fmt.Sprintf("%s[%d]", p, j))
	}
	return a
}

// checkAxes type-checks every value once, at its own position; product
// points then only combine values known to decode.
func (s *Study) checkAxes() {
	d := s.dec
	d.SetLimit(MaxValueNodes)
	defer d.SetLimit(0)
	for _, a := range s.axes {
		for j, v := range a.values {
			p := d.NewPatch(&s.base, a.segs, a.keyNode, v, a.paths[j])
			a.patches = append(a.patches, p)
			if p.Cost > a.cost {
				a.cost = p.Cost
			}
			if s.prepCost += p.Cost; s.prepCost > MaxPrepareNodes {
				s.errorf(v, a.paths[j], "remove repeated aliases", "the sweep's values expand to more than %d YAML nodes", MaxPrepareNodes)
				return
			}
			if len(d.Errors()) > 0 {
				s.errs = append(s.errs, d.Errors()...)
				d.Reset()
				if j == 0 && strings.Contains(s.errs[len(s.errs)-1].Message, "unknown field") {
					break // one report for a path that does not exist
				}
			}
		}
	}
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "node"
}

func (s *Study) loadExperiments(n *yaml.Node) {
	d := s.dec
	if n = s.section(n, "experiments"); n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		s.errorf(n, "experiments", "write experiments: [{model: llem-small}]", "expected a list of experiments, got a %s", nodeKind(n))
		return
	}
	for i, e := range n.Content {
		p := fmt.Sprintf("experiments[%d]", i)
		e = d.Resolve(e, p)
		if e == nil {
			break
		}
		if e.Kind != yaml.MappingNode {
			s.errorf(e, p, "write each experiment as a mapping, e.g. - {model: llem-small}", "expected a mapping, got a %s", nodeKind(e))
			continue
		}
		scratch := s.base
		d.SetLimit(MaxValueNodes)
		d.Overlay(&scratch, e, p)
		d.SetLimit(0)
		s.explicitCost += d.Cost()
		if s.prepCost += d.Cost(); s.prepCost > MaxPrepareNodes {
			s.errorf(e, p, "remove repeated aliases", "the experiments expand to more than %d YAML nodes", MaxPrepareNodes)
			return
		}
		if len(d.Errors()) > 0 {
			s.errs = append(s.errs, entryErrors(d.Errors(), p)...)
			d.Reset()
			continue
		}
		s.explicit = append(s.explicit, e)
		s.explicitPaths = append(s.explicitPaths, p)
	}
}

// plan computes the blocks: the backends of the study and, for each, the
// product of the universal axes and its own scoped axes.
func (s *Study) plan(limit int) {
	if limit <= 0 {
		limit = MaxConfigs
	}
	var backends []string
	if s.backendAxis != nil {
		for _, v := range s.backendAxis.values {
			if !contains(backends, v.Value) {
				backends = append(backends, v.Value)
			}
		}
	} else {
		backends = []string{s.defaultBackend()}
	}
	for _, a := range s.axes {
		if a.scope != "" && !contains(backends, a.scope) {
			s.errorf(a.keyNode, "sweep."+a.key, scopeHint(a.scope, backends),
				"axis is scoped to backend %s, but the sweep's experiments use %s", a.scope, backendNames(backends))
		}
	}
	if len(s.axes) == 0 && (len(s.explicit) > 0 || s.isStudy && s.base.Model == "") {
		backends = nil // only explicit experiments, or an empty study
	}
	total := 0
	for _, b := range backends {
		bl := block{backend: b, size: 1, base: s.base}
		bl.base.Backend = b
		// Create the backend's section once, so that the block's configs share
		// it (and its encoding); fill the preset architecture only when no
		// axis changes the model.
		modelAxis := false
		for _, a := range s.axes {
			if a.segs[0] == "model" {
				modelAxis = true
			}
		}
		if modelAxis {
			bl.base.CreateSection()
		} else {
			bl.base.EnsureSection()
		}
		for _, a := range s.axes {
			if a == s.backendAxis || a.scope != "" && a.scope != b {
				continue
			}
			bl.dims = append(bl.dims, a)
			hi, lo := bits.Mul64(uint64(bl.size), uint64(len(a.values)))
			if hi != 0 || lo > uint64(limit) {
				s.errorf(a.keyNode, "sweep", "split the study into smaller ones (llem-exec merges streams)", "the sweep generates more than %d configs", limit)
				return
			}
			bl.size = int(lo)
		}
		work := 0
		for _, a := range bl.dims {
			work += a.cost
		}
		if hi, lo := bits.Mul64(uint64(bl.size), uint64(work)); hi != 0 || lo > MaxWorkNodes {
			s.errorf(s.axes[0].keyNode, "sweep", "use fewer or smaller values, or split the study", "expanding the sweep would decode more than %d YAML nodes", MaxWorkNodes)
			return
		}
		total += bl.size
		if total > limit {
			s.errorf(s.axes[0].keyNode, "sweep", "split the study into smaller ones", "the sweep generates more than %d configs", limit)
			return
		}
		s.blocks = append(s.blocks, bl)
	}
	s.generated = total + len(s.explicit)
}

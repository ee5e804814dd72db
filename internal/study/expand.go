// Package study expands a study file into the stream of runs llem executes:
// it composes the base file, the shared fields, the sweep's axes (universal
// and backend-scoped, at any depth) and the explicit experiments; fills the
// defaults of every config and validates it (skipping invalid combinations);
// keeps identical configs once; orders the cycles; and gives every run its
// identity.
//
// Expansion streams. Configs are generated lazily from their position in the
// product (a mixed-radix number), so only 4 bytes a unique config (its
// position) and 8 bytes of id (for dedup) are kept. A first pass computes ids,
// dedup and the study hash (which every record carries); a second generates
// the runs in execution order.
package study

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"gopkg.in/yaml.v3"

	"github.com/llem/llem/internal/canonjson"
	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
)

// Cycle orders.
const (
	OrderSequential  = "sequential"
	OrderInterleaved = "interleaved"
	OrderShuffled    = "shuffled"
)

// Study is an expanded study, ready to stream its runs.
type Study struct {
	File string
	Dir  string // base: paths are relative to it
	Name string
	// Hash is the study hash: the first 16 hex digits of the SHA-256 of the
	// canonical JSON list of the unique configs' ids, in expansion order
	// (["id1","id2",...]). Each id is itself the SHA-256 of a config, so the
	// hash covers the ordered list of unique configs; name, execution block
	// and runners are not part of it.
	Hash           string
	NCycles        int
	Order          string
	Seed           uint64 // shuffle seed (the effective one)
	ExperimentGapS float64
	CycleGapS      float64

	Generated  int // configs generated (sweep points + explicit experiments)
	Unique     int // valid, unique configs
	Skipped    int // invalid configs
	Duplicates int // valid configs identical to an earlier one

	// Columns are the swept field paths (the table's extra columns) and, when
	// Options.Columns was set, their widths over the unique configs.
	Columns []string
	Widths  map[string]int

	isStudy       bool
	base          config.Config
	dec           *config.Decoder
	axes          []*axis
	backendAxis   *axis
	topBackend    *axis // a top-level backend list (v0.8), before it joins axes
	blocks        []block
	explicit      []*yaml.Node
	explicitPaths []string
	generated     int
	runners       map[string]record.Runner
	seed          *uint64
	prepCost      int
	explicitCost  int

	kept      []uint32 // generator positions of the unique configs, in expansion order
	ids       []uint64 // their ids (the first 8 bytes of the SHA-256)
	skipped   []uint32 // generator positions of the invalid configs
	skipNotes []string // first reasons, for the summary
	dupNotes  []string
	notes     []string
	errs      config.Errors
	prefix    []byte
}

// Expand reads a study (or single-experiment) file and runs the first pass.
// file names the input in errors ("-" for stdin); base: paths resolve from
// the file's folder (the working directory for stdin). Errors are
// config.Errors (exit 2).
func Expand(file string, data []byte, opts Options) (*Study, error) {
	s := &Study{File: file, Dir: "."}
	if file != "-" && file != "" {
		s.Dir = filepath.Dir(file)
	}
	s.load(data, opts)
	if len(s.errs) == 0 {
		s.plan(opts.MaxConfigs)
	}
	if len(s.errs) > 0 {
		return nil, s.errs
	}
	if s.generated == 0 {
		return nil, config.Errors{{File: file, Line: 1, Col: 1, Message: "the study produced no experiments",
			Hint: "add sweep: axes or experiments: entries"}}
	}
	for _, a := range s.axes {
		if a != s.backendAxis || len(s.blocks) > 0 {
			s.Columns = append(s.Columns, a.key)
		}
	}
	if err := s.firstPass(opts.Columns); err != nil {
		return nil, err
	}
	return s, nil
}

// Notes are remarks for stderr (ignored keys, mapped values, duplicates).
func (s *Study) Notes() []string { return s.notes }

// gen builds the config at generator position i (not yet finalized).
func (s *Study) gen(d *config.Decoder, i int) (config.Config, string) {
	c := s.base
	for _, b := range s.blocks {
		if i >= b.size {
			i -= b.size
			continue
		}
		c = b.base
		// Mixed radix, last axis fastest: the first axis varies slowest.
		rem := i
		idx := make([]int, len(b.dims))
		for k := len(b.dims) - 1; k >= 0; k-- {
			n := len(b.dims[k].values)
			idx[k] = rem % n
			rem /= n
		}
		for k, a := range b.dims {
			d.Apply(&c, a.patches[idx[k]])
		}
		return c, "sweep"
	}
	d.Overlay(&c, s.explicit[i], s.explicitPaths[i])
	return c, s.explicitPaths[i]
}

// effective builds, finalizes and validates the config at position i with
// decoder d; it returns the config, its canonical JSON appended to buf (nil
// when invalid), the reasons it is invalid, and remarks.
func (s *Study) effective(w *worker, i int, buf []byte) (config.Config, []byte, config.Errors, []string) {
	d := w.dec
	c, _ := s.gen(d, i)
	es := append(config.Errors(nil), d.Errors()...)
	d.Reset()
	notes := c.Finalize()
	if len(es) == 0 {
		es = c.Validate()
	}
	if len(es) > 0 {
		return c, nil, es, notes
	}
	b, err := w.enc.Append(buf[:0], &c)
	if err != nil {
		return c, nil, config.Errors{{Message: err.Error()}}, notes
	}
	return c, b, nil, notes
}

func (s *Study) note(n string) {
	for _, x := range s.notes {
		if x == n {
			return
		}
	}
	if len(s.notes) < 100 {
		s.notes = append(s.notes, n)
	}
}

// Label is the short description of a config used in summaries.
func Label(c *config.Config) string { return c.Backend + ", " + c.Precision }

// chunk is how many generator positions a worker handles at a time.
const chunk = 512

// pass1Chunk is a worker's result for one chunk of generator positions.
type pass1Chunk struct {
	lo      int
	ids     []uint64 // the ids of the valid configs
	pos     []uint32 // their positions
	cfgs    []config.Config
	skipped []uint32
	reasons []string
	notes   []string
}

func (s *Study) firstPass(columns bool) error {
	ids := make(map[uint64]uint32)
	h := sha256.New()
	h.Write([]byte{'['})
	if columns {
		s.Widths = map[string]int{"model": len("model"), "backend": len("backend"), "precision": len("precision")}
		for _, c := range s.Columns {
			s.Widths[c] = len(c)
		}
	}
	decs := s.decoders()
	bufs := make([][]byte, len(decs))
	nChunks := (s.generated + chunk - 1) / chunk
	err := ordered(nChunks, func(w, k int, _ *atomic.Bool) *pass1Chunk {
		var r *pass1Chunk
		r, bufs[w] = s.pass1(decs[w], bufs[w], k, columns)
		return r
	}, func(_ int, r *pass1Chunk) error {
		s.merge1(r, ids, h, columns)
		return nil
	})
	if err != nil {
		return err
	}
	h.Write([]byte{']'})
	s.Unique = len(s.kept)
	s.Generated = s.generated
	if s.Unique == 0 {
		msg := fmt.Sprintf("nothing to run: all %d generated configs are invalid", s.generated)
		es := config.Errors{{File: s.File, Message: msg, Hint: "first failures: " + strings.Join(s.skipNotes[:min(3, len(s.skipNotes))], "; ")}}
		return es
	}
	s.Hash = hex.EncodeToString(h.Sum(nil)[:8])
	if s.seed != nil {
		s.Seed = *s.seed
	} else {
		s.Seed, _ = strconv.ParseUint(s.Hash, 16, 64)
	}
	s.prefix = s.recordPrefix()
	return nil
}

// pass1 builds chunk k's configs with one worker's decoder and encoding
// buffer (returned, grown, for its next chunk): their ids, or why each
// invalid one is skipped.
func (s *Study) pass1(dec *worker, buf []byte, k int, columns bool) (*pass1Chunk, []byte) {
	lo, hi := k*chunk, min((k+1)*chunk, s.generated)
	r := &pass1Chunk{lo: lo}
	for i := lo; i < hi; i++ {
		c, b, es, notes := s.effective(dec, i, buf)
		r.notes = append(r.notes, notes...)
		if len(es) > 0 {
			r.skipped = append(r.skipped, uint32(i))
			if len(r.reasons) < 10 {
				r.reasons = append(r.reasons, fmt.Sprintf("%s: %s", Label(&c), es[0].Error()))
			}
			continue
		}
		buf = b
		sum := sha256.Sum256(b)
		r.ids = append(r.ids, binary.BigEndian.Uint64(sum[:8]))
		r.pos = append(r.pos, uint32(i))
		if columns {
			r.cfgs = append(r.cfgs, c)
		}
	}
	return r, buf
}

// merge1 takes a chunk's results in generation order: notes, skips, and
// each id not seen before is kept and hashed into the study hash.
func (s *Study) merge1(r *pass1Chunk, ids map[uint64]uint32, h hash.Hash, columns bool) {
	for _, n := range r.notes {
		s.note(n)
	}
	s.Skipped += len(r.skipped)
	s.skipped = append(s.skipped, r.skipped...)
	for _, n := range r.reasons {
		if len(s.skipNotes) < 10 {
			s.skipNotes = append(s.skipNotes, n)
		}
	}
	var idb [8]byte
	for j, id := range r.ids {
		if first, dup := ids[id]; dup {
			s.Duplicates++
			if len(s.dupNotes) < 5 {
				s.dupNotes = append(s.dupNotes, fmt.Sprintf("%s duplicates %s (id %016x): kept once", s.where(int(r.pos[j])), s.where(int(first)), id))
			}
			continue
		}
		ids[id] = r.pos[j]
		if len(s.kept) > 0 {
			h.Write([]byte{','})
		}
		var q [18]byte
		q[0], q[17] = '"', '"'
		binary.BigEndian.PutUint64(idb[:], id)
		hex.Encode(q[1:17], idb[:])
		h.Write(q[:])
		s.kept = append(s.kept, r.pos[j])
		s.ids = append(s.ids, id)
		if columns {
			s.widen(&r.cfgs[j])
		}
	}
}

// worker holds what one goroutine needs to build configs (neither a decoder
// nor an encoder is safe for concurrent use).
type worker struct {
	dec *config.Decoder
	enc config.Encoder
	// the last config built by run, reused while the order repeats it
	has     bool
	lastJ   uint32
	lastCfg config.Config
	lastB   []byte
}

func (s *Study) newWorker() *worker { return &worker{dec: config.NewDecoder(s.File)} }

// decoders returns one worker per core.
func (s *Study) decoders() []*worker {
	w := make([]*worker, runtime.GOMAXPROCS(0))
	for i := range w {
		w[i] = s.newWorker()
	}
	return w
}

func (s *Study) widen(c *config.Config) {
	set := func(k, v string) {
		if l := len([]rune(v)); l > s.Widths[k] {
			s.Widths[k] = min(l, 48)
		}
	}
	set("model", c.Model)
	set("backend", c.Backend)
	set("precision", c.Precision)
	for _, col := range s.Columns {
		v, ok := c.Field(col)
		if ok {
			set(col, config.FormatValue(v))
		}
	}
}

// where names a generator position for people: sweep point or experiment.
func (s *Study) where(i int) string {
	for _, b := range s.blocks {
		if i < b.size {
			return fmt.Sprintf("sweep point %d (backend %s)", i, backendNames([]string{b.backend}))
		}
		i -= b.size
	}
	if i < len(s.explicitPaths) {
		return s.explicitPaths[i]
	}
	return "config"
}

// Summary describes the expansion in a few lines for stderr.
func (s *Study) Summary() []string {
	out := []string{fmt.Sprintf("study %s [%s]: %d configs × %d cycles = %d runs, order %s%s",
		s.Name, s.Hash, s.Unique, s.NCycles, s.Unique*s.NCycles, s.Order, s.seedText())}
	if s.Skipped > 0 {
		out = append(out, fmt.Sprintf("skipped %d of %d generated configs (invalid combinations):", s.Skipped, s.Generated))
		for _, n := range s.skipNotes {
			out = append(out, "  - "+n)
		}
		if s.Skipped > len(s.skipNotes) {
			out = append(out, fmt.Sprintf("  ... and %d more (--emit-skipped lists them all)", s.Skipped-len(s.skipNotes)))
		}
		if s.Skipped*2 > s.Generated {
			out = append(out, fmt.Sprintf("  warning: %d%% of the generated configs are invalid; check the sweep's axes", s.Skipped*100/s.Generated))
		}
	}
	if s.Duplicates > 0 {
		out = append(out, fmt.Sprintf("note: %d duplicate configs kept once:", s.Duplicates))
		for _, n := range s.dupNotes {
			out = append(out, "  - "+n)
		}
	}
	for _, n := range s.notes {
		out = append(out, "note: "+n)
	}
	return out
}

func (s *Study) seedText() string {
	if s.Order == OrderShuffled {
		return fmt.Sprintf(" (seed %d)", s.Seed)
	}
	return ""
}

// Runner returns the runner of a backend (local unless the study said otherwise).
func (s *Study) Runner(backend string) record.Runner {
	if r, ok := s.runners[backend]; ok {
		return r
	}
	return record.Runner{Type: "local"}
}

// Run is one planned run, handed to the callback of Each. Its slices are
// valid only during the callback.
type Run struct {
	Seq        int
	Cycle      int
	ID         string
	RunID      string
	GapBeforeS float64
	CycleStart bool
	Config     *config.Config
	Canonical  []byte // the config's RFC 8785 JSON
	Runner     record.Runner
}

// slot is one run in execution order: the index j of its config in the
// unique list, its cycle, and whether it starts a pass over the configs.
type slot struct {
	j          uint32
	cycle      int
	cycleStart bool
}

// schedule calls fn with the runs of each stretch of the execution order: the
// whole sequential order at once, else one cycle at a time (a shuffled cycle
// is a fresh Fisher–Yates permutation from the one generator).
func (s *Study) schedule(fn func(n int, at func(r int) slot) error) error {
	U, C := len(s.kept), s.NCycles
	switch s.Order {
	case OrderSequential:
		return fn(U*C, func(r int) slot { return slot{uint32(r / C), r%C + 1, false} })
	case OrderInterleaved:
		for cy := 1; cy <= C; cy++ {
			if err := fn(U, func(r int) slot { return slot{uint32(r), cy, r == 0} }); err != nil {
				return err
			}
		}
		return nil
	}
	rng := NewSplitMix64(s.Seed)
	perm := make([]uint32, U)
	for cy := 1; cy <= C; cy++ {
		for j := range perm {
			perm[j] = uint32(j)
		}
		Shuffle(perm, rng)
		if err := fn(U, func(r int) slot { return slot{perm[r], cy, r == 0} }); err != nil {
			return err
		}
	}
	return nil
}

// run fills r for the run at execution position seq.
func (s *Study) run(d *worker, r *Run, c *config.Config, seq int, sl slot, buf []byte) ([]byte, error) {
	var b []byte
	if d.has && d.lastJ == sl.j {
		// The sequential order repeats a config for each cycle: build it once.
		*c, b = d.lastCfg, d.lastB
	} else {
		cfg, bb, es, _ := s.effective(d, int(s.kept[sl.j]), buf)
		if len(es) > 0 { // cannot happen: it was valid in the first pass
			return buf, fmt.Errorf("config at %s became invalid: %v", s.where(int(s.kept[sl.j])), es)
		}
		*c, b = cfg, bb
		d.has, d.lastJ, d.lastCfg, d.lastB = true, sl.j, cfg, bb
	}
	var id [16]byte
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], s.ids[sl.j])
	hex.Encode(id[:], raw[:])
	r.Seq, r.Cycle, r.Config, r.Canonical = seq, sl.cycle, c, b
	r.ID = string(id[:])
	r.RunID = r.ID + "-c" + strconv.Itoa(sl.cycle)
	r.CycleStart = sl.cycleStart || seq == 0
	r.GapBeforeS = 0
	if seq > 0 {
		r.GapBeforeS = s.ExperimentGapS
		if sl.cycleStart {
			r.GapBeforeS += s.CycleGapS
		}
	}
	r.Runner = s.Runner(c.Backend)
	return b, nil
}

// Each calls fn for every run in execution order, on the calling goroutine.
func (s *Study) Each(fn func(*Run) error) error {
	var r Run
	var c config.Config
	buf := make([]byte, 0, 4096)
	d := s.newWorker()
	seq := 0
	return s.schedule(func(n int, at func(int) slot) error {
		for i := 0; i < n; i++ {
			var err error
			if buf, err = s.run(d, &r, &c, seq, at(i), buf); err != nil {
				return err
			}
			seq++
			if err := fn(&r); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeRuns writes every run as an NDJSON experiment record, building the
// records on every core and writing them in order.
func (s *Study) writeRuns(w io.Writer) error {
	decs := s.decoders()
	seq0 := 0
	return s.schedule(func(n int, at func(int) slot) error {
		type out struct {
			b   []byte
			err error
		}
		nChunks := (n + chunk - 1) / chunk
		err := ordered(nChunks, func(wk, k int, stop *atomic.Bool) out {
			if stop.Load() {
				return out{}
			}
			lo, hi := k*chunk, min((k+1)*chunk, n)
			var o out
			o.b = make([]byte, 0, (hi-lo)*1800)
			var r Run
			var c config.Config
			buf := make([]byte, 0, 4096)
			for i := lo; i < hi; i++ {
				if buf, o.err = s.run(decs[wk], &r, &c, seq0+i, at(i), buf); o.err != nil {
					return o
				}
				o.b = s.AppendRecord(o.b, &r)
			}
			return o
		}, func(_ int, o out) error {
			if o.err != nil {
				return o.err
			}
			_, err := w.Write(o.b)
			return err
		})
		seq0 += n
		return err
	})
}

// EachSkipped calls fn with a skipped record for every invalid config, in
// expansion order.
func (s *Study) EachSkipped(fn func(*record.Skipped) error) error {
	buf := make([]byte, 0, 4096)
	d := s.newWorker()
	for _, pos := range s.skipped {
		c, _, es, _ := s.effective(d, int(pos), buf)
		raw, err := c.AppendCanonical(nil)
		if err != nil {
			raw = []byte("null")
		}
		rec := &record.Skipped{Kind: record.KindSkipped, V: record.Version, Study: s.Name, StudyHash: s.Hash,
			Label: Label(&c), Config: raw, Reasons: es.Problems()}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

func (s *Study) recordPrefix() []byte {
	b := []byte(`{"kind":"experiment","v":`)
	b = strconv.AppendInt(b, record.Version, 10)
	b = append(b, `,"study":`...)
	b = canonjson.AppendString(b, s.Name)
	b = append(b, `,"study_hash":"`...)
	b = append(b, s.Hash...)
	b = append(b, `","n_cycles":`...)
	b = strconv.AppendInt(b, int64(s.NCycles), 10)
	return b
}

// AppendRecord appends the run as one NDJSON line of an experiment record
// (the JSON of record.Experiment, written directly for speed).
func (s *Study) AppendRecord(dst []byte, r *Run) []byte {
	dst = append(dst, s.prefix...)
	dst = append(dst, `,"id":"`...)
	dst = append(dst, r.ID...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, int64(r.Seq), 10)
	dst = append(dst, `,"cycle":`...)
	dst = strconv.AppendInt(dst, int64(r.Cycle), 10)
	dst = append(dst, `,"run_id":"`...)
	dst = append(dst, r.RunID...)
	dst = append(dst, `","backend":`...)
	dst = canonjson.AppendString(dst, r.Config.Backend)
	dst = append(dst, `,"model":`...)
	dst = canonjson.AppendString(dst, r.Config.Model)
	dst = append(dst, `,"gap_before_s":`...)
	dst, _ = canonjson.AppendFloat(dst, r.GapBeforeS)
	if r.CycleStart {
		dst = append(dst, `,"cycle_start":true`...)
	}
	dst = append(dst, `,"config":`...)
	dst = append(dst, r.Canonical...)
	dst = append(dst, `,"runner":{"type":`...)
	dst = canonjson.AppendString(dst, r.Runner.Type)
	if r.Runner.Image != "" {
		dst = append(dst, `,"image":`...)
		dst = canonjson.AppendString(dst, r.Runner.Image)
	}
	dst = append(dst, "}}\n"...)
	return dst
}

// Record returns the run as a record.Experiment (for callers that want the type).
func (s *Study) Record(r *Run) record.Experiment {
	return record.Experiment{Kind: record.KindExperiment, V: record.Version, Study: s.Name, StudyHash: s.Hash,
		ID: r.ID, Seq: r.Seq, Cycle: r.Cycle, NCycles: s.NCycles, RunID: r.RunID, Backend: r.Config.Backend,
		Model: r.Config.Model, GapBeforeS: r.GapBeforeS, CycleStart: r.CycleStart,
		Config: append([]byte(nil), r.Canonical...), Runner: r.Runner}
}

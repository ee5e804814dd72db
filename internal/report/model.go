package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/record"
)

// Options choose what the report shows.
type Options struct {
	By      []string // grouping columns: config keys (dotted) or id, study, backend, model, host, basis
	Metrics []string // metric names (record or column names); "all" for every one in the input
	Sort    []string // sort keys: a metric or a --by key, "-key" or "key:desc" for descending
	Root    string   // look for moved run directories under Root
	Run     string   // the run whose power trace the HTML report plots ("" = the first ok run with samples)
	// Rows: all (default), configs or runs.
	Rows string
	// Title overrides the report's title.
	Title string
}

// Config is one config id: its summary and its runs.
type Config struct {
	ID       string
	Study    string
	Backend  string
	Model    string
	Basis    string
	Summary  *record.Summary // nil when the input had none for this id
	Runs     []*Run
	Flat     map[string]string // the effective config, flattened to dotted keys
	Keys     []string          // values of the --by columns
	Estimate bool
	order    int
}

// Run is one energy record with its config.
type Run struct {
	E      *record.Energy
	Config *Config
	Dir    string // run directory, resolved under Options.Root
}

// Report is the model every format renders.
type Report struct {
	Studies  []Study
	Configs  []*Config
	Runs     []*Run // grouped by config (in config order), then by cycle
	By       []string
	Metrics  []*Metric
	Varying  []string // config keys that take more than one value across configs
	Other    string   // ignored record kinds and counts
	Replaced int
	Opt      Options
	fp       footprints // carbon and cost assumptions of the input
	known    map[string]bool
	keyCount map[string]int // configs per combination of --by values
	serving  []*servingSweep
}

// Study names one study of the input.
type Study struct {
	Name string `json:"name"`
	Hash string `json:"hash"`
}

// Pseudo-keys usable in --by and --sort besides the config's dotted keys.
var pseudoKeys = []string{"id", "study", "backend", "model", "host", "basis"}

// Build groups the input by config and checks the options against it.
func Build(in *Input, opt Options) (*Report, error) {
	if len(in.Energies) == 0 && len(in.Summaries) == 0 {
		hint := ""
		if in.Other[record.KindRun] > 0 {
			hint = ": pipe run records through llem-aggregate first"
		}
		if o := in.OtherSummary(); o != "" {
			return nil, fmt.Errorf("no energy or summary records in the input (found %s)%s", o, hint)
		}
		return nil, fmt.Errorf("no energy or summary records in the input")
	}
	rp := &Report{Other: in.OtherSummary(), Replaced: in.Replaced, Opt: opt, known: map[string]bool{}}
	rp.fp = absorbFootprints(in)
	rp.group(in, opt.Root)
	rp.Varying = varyingKeys(rp.Configs)
	if err := rp.setBy(opt.By); err != nil {
		return nil, err
	}
	if err := rp.setMetrics(opt.Metrics); err != nil {
		return nil, err
	}
	keys, err := rp.sortKeys(opt.Sort)
	if err != nil {
		return nil, err
	}
	rp.sortConfigs(keys)
	rp.buildServing()
	for _, c := range rp.Configs {
		sort.SliceStable(c.Runs, func(i, j int) bool {
			a, b := c.Runs[i].E, c.Runs[j].E
			if a.Cycle != b.Cycle {
				return a.Cycle < b.Cycle
			}
			return a.Seq < b.Seq
		})
		rp.Runs = append(rp.Runs, c.Runs...)
	}
	if opt.Run != "" {
		found := false
		for _, r := range rp.Runs {
			found = found || r.E.RunID == opt.Run
		}
		if !found {
			return nil, fmt.Errorf("--run %s: no such run in the input", opt.Run)
		}
	}
	return rp, nil
}

// group gathers summaries and energy records by config id, in input
// order, and lists the studies.
func (rp *Report) group(in *Input, root string) {
	byID := map[string]*Config{}
	studies := map[Study]bool{}
	get := func(id, study, backend, model, basis string, cfg json.RawMessage) *Config {
		c := byID[id]
		if c == nil {
			c = &Config{ID: id, Study: study, Backend: backend, Model: model, Basis: basis, Flat: flatten(cfg), order: len(byID)}
			byID[id] = c
			rp.Configs = append(rp.Configs, c)
		}
		return c
	}
	for _, s := range in.Summaries {
		c := get(s.ID, s.Study, s.Backend, s.Model, s.Basis, s.Config)
		c.Summary = s
		c.Estimate = c.Estimate || s.Estimate
		for k := range s.Metrics {
			rp.known[k] = true
		}
		studies[Study{s.Study, s.StudyHash}] = true
	}
	for _, e := range in.Energies {
		c := get(e.ID, e.Study, e.Backend, e.Model, e.Basis, e.Config)
		r := &Run{E: e, Config: c, Dir: record.ResolveRunDir(e.RunDir, root)}
		c.Runs = append(c.Runs, r)
		c.Estimate = c.Estimate || e.Estimate
		for k := range e.Metrics {
			rp.known[k] = true
		}
		studies[Study{e.Study, e.StudyHash}] = true
	}
	for s := range studies {
		rp.Studies = append(rp.Studies, s)
	}
	sort.Slice(rp.Studies, func(i, j int) bool {
		return rp.Studies[i].Name+rp.Studies[i].Hash < rp.Studies[j].Name+rp.Studies[j].Hash
	})
}

// setBy checks --by (default: the keys that vary, else model) and fills
// each config's values of it.
func (rp *Report) setBy(by []string) error {
	rp.By = by
	if len(rp.By) == 0 {
		rp.By = rp.Varying
		if len(rp.By) == 0 {
			rp.By = []string{"model"}
		}
	}
	for _, k := range rp.By {
		if !rp.hasKey(k) {
			return fmt.Errorf("--by %s: no such key in the configs (try %s)", k, strings.Join(rp.keyHints(), ", "))
		}
	}
	for _, c := range rp.Configs {
		c.Keys = make([]string, len(rp.By))
		for i, k := range rp.By {
			c.Keys[i] = c.key(k)
		}
	}
	return nil
}

// setMetrics checks --metrics (default: DefaultMetrics; all: every known one).
func (rp *Report) setMetrics(names []string) error {
	if len(names) == 0 {
		names = rp.defaultMetrics()
	}
	if len(names) == 1 && names[0] == "all" {
		names = nil
		for _, n := range metricNames(rp.known) {
			if rp.known[n] {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		m, ok := LookupMetric(n, rp.known)
		if !ok {
			return fmt.Errorf("--metrics %s: unknown metric (known: %s)", n, strings.Join(metricNames(rp.known), ", "))
		}
		rp.Metrics = append(rp.Metrics, rp.withCurrency(m))
	}
	return nil
}

// sortKey is one --sort key: a metric (by its mean) or a config key.
type sortKey struct {
	key  string
	desc bool
	m    *Metric
}

// sortKeys reads --sort: KEY, -KEY, KEY:desc or KEY:asc.
func (rp *Report) sortKeys(sorts []string) ([]sortKey, error) {
	var keys []sortKey
	for _, s := range sorts {
		sk := sortKey{key: s}
		if strings.HasPrefix(s, "-") {
			sk.key, sk.desc = s[1:], true
		} else if k, ok := strings.CutSuffix(s, ":desc"); ok {
			sk.key, sk.desc = k, true
		} else if k, ok := strings.CutSuffix(s, ":asc"); ok {
			sk.key = k
		}
		if m, ok := LookupMetric(sk.key, rp.known); ok {
			sk.m = m
		} else if !rp.hasKey(sk.key) {
			return nil, fmt.Errorf("--sort %s: not a metric or config key (try a metric such as %s, or %s)", s, record.MJPerOutputToken, strings.Join(rp.keyHints(), ", "))
		}
		keys = append(keys, sk)
	}
	return keys, nil
}

// sortConfigs orders the configs by the --sort keys, then the --by values,
// then input order.
func (rp *Report) sortConfigs(keys []sortKey) {
	// Values of a --by key sort numerically where they are numbers, else in
	// the order the study first used them (llem-tiny before llem-base).
	firstSeen := make([]map[string]int, len(rp.By))
	for k := range rp.By {
		firstSeen[k] = map[string]int{}
		for _, c := range rp.Configs {
			if _, ok := firstSeen[k][c.Keys[k]]; !ok {
				firstSeen[k][c.Keys[k]] = len(firstSeen[k])
			}
		}
	}
	cmpKey := func(k int, a, b string) int {
		_, ea := strconv.ParseFloat(a, 64)
		_, eb := strconv.ParseFloat(b, 64)
		if ea == nil && eb == nil {
			return cmpStr(a, b)
		}
		return firstSeen[k][a] - firstSeen[k][b]
	}
	sort.SliceStable(rp.Configs, func(i, j int) bool {
		a, b := rp.Configs[i], rp.Configs[j]
		for _, sk := range keys {
			var c int
			if sk.m != nil {
				c = cmpNum(a.mean(sk.m.Name), b.mean(sk.m.Name), sk.desc)
			} else {
				c = cmpStr(a.key(sk.key), b.key(sk.key))
				if sk.desc {
					c = -c
				}
			}
			if c != 0 {
				return c < 0
			}
		}
		for k := range a.Keys {
			if c := cmpKey(k, a.Keys[k], b.Keys[k]); c != 0 {
				return c < 0
			}
		}
		return a.order < b.order
	})
}

func (rp *Report) hasKey(k string) bool {
	for _, p := range pseudoKeys {
		if k == p {
			return true
		}
	}
	for _, c := range rp.Configs {
		if _, ok := c.Flat[k]; ok {
			return true
		}
	}
	return false
}

func (rp *Report) keyHints() []string {
	h := append([]string(nil), rp.Varying...)
	return append(h, pseudoKeys...)
}

// key is the value of a --by key for this config.
func (c *Config) key(k string) string {
	switch k {
	case "id":
		return c.ID
	case "study":
		return c.Study
	case "backend":
		return c.Backend
	case "model":
		return c.Model
	case "basis":
		return c.Basis
	case "host":
		if len(c.Runs) > 0 {
			return c.Runs[0].E.Host
		}
		return Dash
	}
	if v, ok := c.Flat[k]; ok {
		return v
	}
	return Dash
}

// Stat returns the summary statistic of metric name, or nil.
func (c *Config) Stat(name string) *record.Stat {
	if c.Summary == nil {
		return nil
	}
	return c.Summary.Metrics[name]
}

func (c *Config) mean(name string) *float64 {
	if s := c.Stat(name); s != nil {
		return s.Mean
	}
	return nil
}

// OK counts the config's ok runs (from the summary where there is one).
func (c *Config) OK() (ok, total int) {
	if c.Summary != nil {
		return c.Summary.RunsOK, c.Summary.Runs
	}
	for _, r := range c.Runs {
		if r.E.Status == record.StatusOK {
			ok++
		}
	}
	return ok, len(c.Runs)
}

// Label names the config by its --by values: "llem-base bf16 batch_size=4".
func (rp *Report) Label(c *Config) string {
	// A word that is not a number says what it is (llem-base, bf16); a
	// number or a flag needs its key (batch_size=4).
	var parts []string
	for i, k := range rp.By {
		v := c.Keys[i]
		if _, err := strconv.ParseFloat(v, 64); err != nil && v != "true" && v != "false" && v != Dash {
			parts = append(parts, v)
			continue
		}
		parts = append(parts, shortKey(k)+"="+v)
	}
	l := strings.Join(parts, " ")
	// Two configs with the same label (the --by keys do not tell them apart) get their id.
	if rp.keyCount == nil {
		rp.keyCount = map[string]int{}
		for _, o := range rp.Configs {
			rp.keyCount[strings.Join(o.Keys, "\x00")]++
		}
	}
	if rp.keyCount[strings.Join(c.Keys, "\x00")] > 1 {
		l += " [" + shortID(c.ID) + "]"
	}
	return l
}

func shortKey(k string) string {
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		return k[i+1:]
	}
	return k
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// cmpNum orders numbers, nulls last whatever the direction.
func cmpNum(a, b *float64, desc bool) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	c := 0
	if *a < *b {
		c = -1
	} else if *a > *b {
		c = 1
	}
	if desc {
		c = -c
	}
	return c
}

// cmpStr compares numerically where both parse as numbers, else as strings.
func cmpStr(a, b string) int {
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	if ea == nil && eb == nil {
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}

// flatten turns a config object into dotted keys with display values.
func flatten(raw json.RawMessage) map[string]string {
	out := map[string]string{}
	if len(raw) == 0 {
		return out
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return out
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 && prefix != "" {
				out[prefix] = "{}"
			}
			for k, c := range x {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, c)
			}
		case nil:
			out[prefix] = Dash
		case string:
			out[prefix] = x
		case json.Number:
			out[prefix] = x.String()
		case bool:
			out[prefix] = strconv.FormatBool(x)
		default:
			b, _ := json.Marshal(x)
			out[prefix] = string(b)
		}
	}
	walk("", v)
	return out
}

// varyingKeys lists the config keys with at least two distinct values:
// backend, model and precision first, then alphabetically.
func varyingKeys(cs []*Config) []string {
	vals := map[string]map[string]bool{}
	for _, c := range cs {
		for k, v := range c.Flat {
			if v == Dash {
				continue
			}
			if vals[k] == nil {
				vals[k] = map[string]bool{}
			}
			vals[k][v] = true
		}
	}
	rank := func(k string) int {
		switch k {
		case "backend":
			return 0
		case "model":
			return 1
		case "precision":
			return 2
		}
		return 3
	}
	var out []string
	for k, vs := range vals {
		if len(vs) > 1 {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if ri, rj := rank(out[i]), rank(out[j]); ri != rj {
			return ri < rj
		}
		return out[i] < out[j]
	})
	return out
}

// flagCodes lists the distinct codes of flags, in order of first appearance.
func flagCodes(fs []record.Flag) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range fs {
		if !seen[f.Code] {
			seen[f.Code] = true
			out = append(out, f.Code)
		}
	}
	return out
}

// Flagged says whether a run's figures carry any validity flag.
func (r *Run) Flagged() bool { return len(r.E.Flags) > 0 }

// OK says whether the run finished ok.
func (r *Run) OK() bool { return r.E.Status == record.StatusOK }

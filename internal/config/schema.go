package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/llem/llem/internal/canonjson"
)

// rule is a field's validation rule, parsed from its `v` tag.
type rule struct {
	nonempty     bool
	hasMin       bool
	min          float64
	hasMax       bool
	max          float64
	minExclusive bool // gt
	maxExclusive bool // lt
	enum         []string
	oneof        []int64
}

// expected says in words what the rule accepts, for error messages.
func (r rule) expected(kind string) string {
	if len(r.enum) > 0 {
		return "one of " + strings.Join(r.enum, ", ")
	}
	if len(r.oneof) > 0 {
		s := make([]string, len(r.oneof))
		for i, v := range r.oneof {
			s[i] = strconv.FormatInt(v, 10)
		}
		return "one of " + strings.Join(s, ", ")
	}
	var parts []string
	if r.hasMin {
		op := "≥"
		if r.minExclusive {
			op = ">"
		}
		parts = append(parts, op+" "+fmtNum(r.min))
	}
	if r.hasMax {
		op := "≤"
		if r.maxExclusive {
			op = "<"
		}
		parts = append(parts, op+" "+fmtNum(r.max))
	}
	if len(parts) == 0 {
		return kind
	}
	return kind + " " + strings.Join(parts, " and ")
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (r rule) check(f float64) bool {
	if r.hasMin && (f < r.min || r.minExclusive && f == r.min) {
		return false
	}
	if r.hasMax && (f > r.max || r.maxExclusive && f == r.max) {
		return false
	}
	if len(r.oneof) > 0 {
		for _, v := range r.oneof {
			if float64(v) == f {
				return true
			}
		}
		return false
	}
	return true
}

func parseRule(tag string) rule {
	var r rule
	for _, part := range strings.Split(tag, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "":
		case "nonempty":
			r.nonempty = true
		case "min", "gt":
			r.hasMin, r.min, r.minExclusive = true, mustFloat(v), k == "gt"
		case "max", "lt":
			r.hasMax, r.max, r.maxExclusive = true, mustFloat(v), k == "lt"
		case "enum":
			r.enum = strings.Split(v, "|")
		case "oneof":
			for _, s := range strings.Split(v, "|") {
				r.oneof = append(r.oneof, int64(mustFloat(s)))
			}
		default:
			panic("config: bad rule " + part)
		}
	}
	return r
}

func mustFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic("config: bad number in rule: " + s)
	}
	return f
}

// field is one schema field of a struct type.
type field struct {
	name  string
	index int
	typ   reflect.Type
	rule  rule
	// omitNull (tag llem:"omitnull", pointer fields only) leaves the field out
	// of the canonical form while it is null: a field added later then does
	// not change the id of any config that does not set it.
	omitNull bool
	key      []byte // canonical `"name":`
}

// structInfo is the schema of one struct type, computed once.
type structInfo struct {
	fields []field
	byName map[string]int
	sorted []int // field positions in RFC 8785 key order
	extra  int   // index of the Extra map, or -1
	names  []string
}

var infoCache sync.Map // reflect.Type → *structInfo

func infoOf(t reflect.Type) *structInfo {
	if v, ok := infoCache.Load(t); ok {
		return v.(*structInfo)
	}
	si := &structInfo{byName: map[string]int{}, extra: -1}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Tag.Get("llem") == "extra" {
			si.extra = i
			continue
		}
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		fi := field{name: name, index: i, typ: f.Type, rule: parseRule(f.Tag.Get("v")), omitNull: f.Tag.Get("llem") == "omitnull"}
		fi.key = append(canonjson.AppendString(nil, name), ':')
		si.byName[name] = len(si.fields)
		si.fields = append(si.fields, fi)
		si.names = append(si.names, name)
	}
	si.sorted = make([]int, len(si.fields))
	for i := range si.sorted {
		si.sorted[i] = i
	}
	sort.Slice(si.sorted, func(a, b int) bool {
		return canonjson.Less(si.fields[si.sorted[a]].name, si.fields[si.sorted[b]].name)
	})
	v, _ := infoCache.LoadOrStore(t, si)
	return v.(*structInfo)
}

// Fields returns the schema's field names of a section ("" for the top level,
// else a dotted path such as "vllm.engine"), for help texts and did-you-mean.
func Fields(path string) ([]string, error) {
	t := reflect.TypeOf(Config{})
	if path != "" {
		for _, seg := range strings.Split(path, ".") {
			si := infoOf(t)
			i, ok := si.byName[seg]
			if !ok {
				return nil, fmt.Errorf("no section %q in %s", seg, path)
			}
			t = si.fields[i].typ
			if t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t == reflect.TypeOf(Dataset{}) {
				t = reflect.TypeOf(Synthetic{})
			}
			if t.Kind() != reflect.Struct {
				return nil, fmt.Errorf("%s is not a section", path)
			}
		}
	}
	return append([]string(nil), infoOf(t).names...), nil
}

// TopLevelFields lists the config's top-level keys.
func TopLevelFields() []string { f, _ := Fields(""); return f }

// Suggest returns the candidate closest to s within edit distance 3
// (Levenshtein, with a swap of neighbours counted as one edit)
// (case-insensitive match first), or "".
func Suggest(s string, candidates []string) string {
	best, bestD := "", 4
	for _, c := range candidates {
		if strings.EqualFold(c, s) {
			return c
		}
	}
	if len(s) > 64 {
		return ""
	}
	for _, c := range candidates {
		if d := levenshtein(strings.ToLower(s), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	pprev := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			// A swap of two neighbours counts as one edit (fp61 → fp16).
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], pprev[j-2]+1)
			}
		}
		pprev, prev, cur = prev, cur, pprev
	}
	return prev[len(rb)]
}

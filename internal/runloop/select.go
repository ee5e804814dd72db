package runloop

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/llem/llem/internal/record"
)

// ParseSelect reads --select: a comma list of run ids and seq ranges
// ("3", "5-9", "12-"), and returns the predicate that keeps those runs.
func ParseSelect(s string) (func(record.Experiment) bool, error) {
	ids := map[string]bool{}
	type rng struct{ lo, hi int } // hi < 0: open
	var rs []rng
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		if a, err := strconv.Atoi(lo); err == nil && a >= 0 {
			if !isRange {
				rs = append(rs, rng{a, a})
				continue
			}
			if hi == "" {
				rs = append(rs, rng{a, -1})
				continue
			}
			if b, err := strconv.Atoi(hi); err == nil && b >= a {
				rs = append(rs, rng{a, b})
				continue
			}
		}
		if !safeName.MatchString(part) {
			return nil, fmt.Errorf("--select %q: %q is neither a run id nor a seq range (a, a-b, a-)", s, part)
		}
		ids[part] = true
	}
	if len(ids) == 0 && len(rs) == 0 {
		return nil, fmt.Errorf("--select %q selects nothing", s)
	}
	return func(e record.Experiment) bool {
		if ids[e.RunID] {
			return true
		}
		for _, r := range rs {
			if e.Seq >= r.lo && (r.hi < 0 || e.Seq <= r.hi) {
				return true
			}
		}
		return false
	}, nil
}

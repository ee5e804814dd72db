package runloop

import (
	"sync"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/dataset"
	"github.com/llem/llem/internal/record"
)

// promptCache resolves a config's prompts once per config id, so workers
// (the Python ones above all) need no dataset code. A config this llem-exec
// cannot decode (a newer or foreign one) gets no prompts: the worker resolves
// them itself, as the native worker does.
func promptCache() func(record.Experiment) ([]string, error) {
	type res struct {
		p   []string
		err error
	}
	cache := map[string]res{}
	var mu sync.Mutex // runs side by side (--parallel) resolve at once
	return func(e record.Experiment) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if r, ok := cache[e.ID]; ok {
			return r.p, r.err
		}
		var r res
		if cfg, err := config.Decode(e.Config); err == nil {
			r.p, r.err = dataset.Load(cfg, "")
		}
		if r.p == nil {
			r.p = []string{}
		}
		cache[e.ID] = r
		return r.p, r.err
	}
}

package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/llem/llem/internal/power"
	"github.com/llem/llem/internal/record"
)

// reqTimes are one request's latencies, in seconds (NaN where unknown).
type reqTimes struct {
	TTFT, E2E float64
	StartNS   int64
	EndNS     int64
}

// eventData is what the report takes from a run's events.ndjson.
type eventData struct {
	Requests []reqTimes
	Phases   map[string]record.Window
}

// readEvents reads the request and phase events of a worker's events file.
func readEvents(path string) (*eventData, error) {
	// Only the fields the report needs: itl_ns arrays are skipped, not kept.
	type req struct {
		TStart int64 `json:"t_start"`
		TFirst int64 `json:"t_first_token"`
		TEnd   int64 `json:"t_end"`
	}
	type ev struct {
		Event   string `json:"event"`
		T       int64  `json:"t"`
		Phase   string `json:"phase"`
		Edge    string `json:"edge"`
		Request *req   `json:"request"`
	}
	d := &eventData{Phases: map[string]record.Window{}}
	err := record.ScanEvents(path, func(l record.Line) error {
		var e ev
		if err := l.DecodeLax(&e); err != nil {
			return err
		}
		switch e.Event {
		case record.EventRequest:
			if e.Request == nil {
				return nil
			}
			r := e.Request
			rt := reqTimes{TTFT: nan, E2E: nan, StartNS: r.TStart, EndNS: r.TEnd}
			if r.TFirst > 0 && r.TFirst >= r.TStart {
				rt.TTFT = float64(r.TFirst-r.TStart) / 1e9
			}
			if r.TEnd >= r.TStart {
				rt.E2E = float64(r.TEnd-r.TStart) / 1e9
			}
			d.Requests = append(d.Requests, rt)
		case record.EventPhase:
			w := d.Phases[e.Phase]
			if e.Edge == record.EdgeStart {
				w.StartNS = e.T
			} else if e.Edge == record.EdgeEnd {
				w.EndNS = e.T
			}
			d.Phases[e.Phase] = w
		}
		return nil
	})
	return d, err
}

// series is one device's power trace, downsampled for drawing.
type series struct {
	Device string
	Source string
	Scope  string
	T      []int64
	W      []float64
	Rows   int // readings in the file
}

// readPower reads a sample stream and keeps at most about maxPts points per
// device: the lowest and the highest reading of each time bucket, so spikes
// survive downsampling.
func readPower(path string, fromNS, toNS int64, maxPts int) ([]*series, *power.Meta, error) {
	r, err := power.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	type pt struct {
		t int64
		w float64
	}
	raw := map[int32][]pt{}
	for r.Next() {
		b := r.Batch()
		for i := 0; i < b.N; i++ {
			if b.PowerOK != nil && !b.PowerOK[i] {
				continue
			}
			if b.T[i] < fromNS || b.T[i] > toNS {
				continue
			}
			raw[b.Dev[i]] = append(raw[b.Dev[i]], pt{b.T[i], b.PowerW[i]})
		}
	}
	if err := r.Err(); err != nil {
		return nil, nil, err
	}
	devs := r.Devices()
	var idx []int32
	for k := range raw {
		idx = append(idx, k)
	}
	sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
	var out []*series
	for _, k := range idx {
		pts := raw[k]
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].t < pts[j].t })
		d := devs[k]
		s := &series{Device: d.Device, Source: d.Source, Scope: d.Scope, Rows: len(pts)}
		if s.Scope == "" {
			s.Scope = power.ScopeOf(d.Source, d.Device)
		}
		if len(pts) <= maxPts {
			for _, p := range pts {
				s.T = append(s.T, p.t)
				s.W = append(s.W, p.w)
			}
		} else {
			buckets := maxPts / 2
			t0, t1 := pts[0].t, pts[len(pts)-1].t
			span := float64(t1-t0) + 1
			i := 0
			for bk := 0; bk < buckets && i < len(pts); bk++ {
				end := t0 + int64(span*float64(bk+1)/float64(buckets))
				lo, hi := -1, -1
				for ; i < len(pts) && pts[i].t <= end; i++ {
					if lo < 0 || pts[i].w < pts[lo].w {
						lo = i
					}
					if hi < 0 || pts[i].w > pts[hi].w {
						hi = i
					}
				}
				if lo < 0 {
					continue
				}
				a, b := min(lo, hi), max(lo, hi)
				s.T = append(s.T, pts[a].t)
				s.W = append(s.W, pts[a].w)
				if b != a {
					s.T = append(s.T, pts[b].t)
					s.W = append(s.W, pts[b].w)
				}
			}
		}
		out = append(out, s)
	}
	m := r.Meta()
	return out, &m, nil
}

// readRunJSON reads the run record llem-exec left in a run directory.
func readRunJSON(dir string) (*record.Run, error) {
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		return nil, err
	}
	var r record.Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, "run.json"), err)
	}
	return &r, nil
}

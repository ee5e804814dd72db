package aggregate

import (
	"sort"

	"github.com/llem/llem/internal/record"
)

// KindRequestEnergy is the kind of the lines of a run's per-request energy file.
const KindRequestEnergy = "request_energy"

// RequestsEnergyFile is the per-request file's name inside the run directory.
const RequestsEnergyFile = "requests_energy.ndjson"

// RequestEnergy is the energy attributed to one measured request.
//
// The measure window is cut into intervals (the sampling interval, at most
// Options.GridMax of them). The basis scope's energy in each interval is split
// among the requests in proportion to the tokens each had in flight there:
// its prefill (input tokens spread evenly from t_start to t_first_token) and
// its decode steps (one token spread over each inter-token gap). Energy of
// intervals in which no request was in flight is shared in proportion to
// each request's total tokens (IdleShareJ). The parts add up to the window's
// energy. SimpleJ is the naive window J per output token × output tokens.
type RequestEnergy struct {
	Kind         string   `json:"kind"`
	V            int      `json:"v"`
	RunID        string   `json:"run_id"`
	ID           int      `json:"id"`
	InputTokens  int      `json:"input_tokens"`
	OutputTokens int      `json:"output_tokens"`
	EnergyJ      float64  `json:"energy_j"`     // PrefillJ + DecodeJ + IdleShareJ
	PrefillJ     float64  `json:"prefill_j"`    // share of intervals where its prefill was in flight
	DecodeJ      float64  `json:"decode_j"`     // share of intervals where its decode steps were in flight
	IdleShareJ   float64  `json:"idle_share_j"` // share of intervals with nothing in flight
	NetJ         *float64 `json:"net_j"`        // EnergyJ × window net / window gross; null without a baseline
	SimpleJ      *float64 `json:"simple_j"`     // window J per output token × output tokens
	JPerOutToken *float64 `json:"j_per_output_token"`
}

// segment is work of one request spread evenly over [a, b].
type segment struct {
	a, b    int64
	mass    float64
	prefill bool
}

func segments(r record.RequestEvent) []segment {
	var s []segment
	first := r.TFirstNS
	if first <= 0 {
		// No token came out: all of it was prefill (or a failure in it).
		return []segment{{r.TStartNS, r.TEndNS, float64(r.InputTokens), true}}
	}
	s = append(s, segment{r.TStartNS, first, float64(r.InputTokens), true})
	decode := r.OutputTokens - 1
	if decode <= 0 {
		return s
	}
	if len(r.ITLNS) > 0 {
		t := first
		for _, g := range r.ITLNS {
			s = append(s, segment{t, t + g, 1, false})
			t += g
		}
		return s
	}
	return append(s, segment{first, r.TEndNS, float64(decode), false})
}

// spread calls f(i, weight) for every grid interval i that the segment
// overlaps, with the share of its mass that falls there.
func spread(grid []int64, sg segment, f func(i int, w float64)) {
	n := len(grid) - 1
	a, b := max(sg.a, grid[0]), min(sg.b, grid[n])
	if sg.mass == 0 {
		return
	}
	if sg.b <= sg.a {
		// An instant: all of it in the interval holding it.
		if sg.a < grid[0] || sg.a > grid[n] {
			return
		}
		i := sort.Search(n, func(i int) bool { return grid[i+1] > sg.a })
		f(min(i, n-1), sg.mass)
		return
	}
	if b <= a {
		return
	}
	dens := sg.mass / float64(sg.b-sg.a)
	i := sort.Search(n, func(i int) bool { return grid[i+1] > a })
	for ; i < n && grid[i] < b; i++ {
		lo, hi := max(a, grid[i]), min(b, grid[i+1])
		if hi > lo {
			f(i, dens*float64(hi-lo))
		}
	}
}

// attribute splits the measure window's basis energy among the requests.
// It returns nil when the energy of some basis device is unknown.
func attribute(e *record.Energy, reqs []record.RequestEvent, grid []int64, tracks []*DeviceTrack) []RequestEnergy {
	pm := e.Phases[record.PhaseMeasure]
	if pm == nil {
		return nil
	}
	ei := intervalEnergy(e, pm, grid, tracks)
	if ei == nil {
		return nil
	}
	total := 0.0
	for _, x := range ei {
		total += x
	}

	W := make([]float64, len(ei))
	segs := make([][]segment, len(reqs))
	mass := make([]float64, len(reqs))
	massSum := 0.0
	for ri, r := range reqs {
		segs[ri] = segments(r)
		for _, sg := range segs[ri] {
			spread(grid, sg, func(i int, w float64) { W[i] += w; mass[ri] += w })
		}
		massSum += mass[ri]
	}
	idleE := 0.0
	for i := range W {
		if W[i] == 0 {
			idleE += ei[i]
		}
	}
	out := make([]RequestEnergy, len(reqs))
	var outTok int64
	for _, r := range reqs {
		outTok += int64(r.OutputTokens)
	}
	gross, net := e.Metrics[record.MEnergyJ], e.Metrics[record.MEnergyNetJ]
	for ri, r := range reqs {
		re := RequestEnergy{Kind: KindRequestEnergy, V: record.Version, RunID: e.RunID, ID: r.ID,
			InputTokens: r.InputTokens, OutputTokens: r.OutputTokens}
		for _, sg := range segs[ri] {
			spread(grid, sg, func(i int, w float64) {
				part := ei[i] * w / W[i]
				if sg.prefill {
					re.PrefillJ += part
				} else {
					re.DecodeJ += part
				}
			})
		}
		switch {
		case massSum > 0:
			re.IdleShareJ = idleE * mass[ri] / massSum
		default:
			re.IdleShareJ = idleE / float64(len(reqs))
		}
		re.EnergyJ = re.PrefillJ + re.DecodeJ + re.IdleShareJ
		if gross != nil && net != nil && *gross > 0 {
			re.NetJ = ptr(re.EnergyJ * *net / *gross)
		}
		if outTok > 0 {
			re.SimpleJ = ptr(total / float64(outTok) * float64(r.OutputTokens))
		}
		if r.OutputTokens > 0 {
			re.JPerOutToken = ptr(re.EnergyJ / float64(r.OutputTokens))
		}
		out[ri] = re
	}
	return out
}

// intervalEnergy is the basis devices' energy in each interval of grid, by
// the figure (counter or integral) each device's window used; nil when a
// basis device's energy is unknown or no device is in the basis.
func intervalEnergy(e *record.Energy, pm *record.PhaseEnergy, grid []int64, tracks []*DeviceTrack) []float64 {
	ei := make([]float64, len(grid)-1)
	used := 0
	for di, de := range pm.Devices {
		inBasis := de.Scope == e.Basis || e.Basis == record.ScopeTotal && inTotal(de.Scope, e.TotalScopes)
		if !inBasis {
			continue
		}
		if de.EnergyJ == nil {
			return nil
		}
		c := tracks[di].Curve
		prev := 0.0
		for k, t := range grid {
			ed := c.r[c.Query(t)]
			v := ed.IntJ
			if de.Method == "counter" {
				v = ed.CtrJ
			}
			if k > 0 {
				ei[k-1] += v - prev
			}
			prev = v
		}
		used++
	}
	if used == 0 {
		return nil
	}
	return ei
}

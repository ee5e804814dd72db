package aggregate

import (
	"math"
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
	InputTokens  *int     `json:"input_tokens"` // null where the server reported none (serving)
	OutputTokens int      `json:"output_tokens"`
	EnergyJ      float64  `json:"energy_j"`     // PrefillJ + DecodeJ + IdleShareJ (+ WaitJ)
	PrefillJ     float64  `json:"prefill_j"`    // share of intervals where its prefill was in flight
	DecodeJ      float64  `json:"decode_j"`     // share of intervals where its decode steps were in flight
	IdleShareJ   float64  `json:"idle_share_j"` // share of intervals with nothing in flight
	NetJ         *float64 `json:"net_j"`        // EnergyJ × window net / window gross; null without a baseline
	SimpleJ      *float64 `json:"simple_j"`     // window J per output token × output tokens
	JPerOutToken *float64 `json:"j_per_output_token"`
	// Serving runs only (absent in batch runs): WaitJ is its share of the
	// intervals where requests were in flight but no token came out
	// (queueing, long prefills), by the time each spent there;
	// WindowOutputTokens the tokens it emitted within the window, which
	// j_per_output_token and simple_j count in a serving run.
	WaitJ              *float64 `json:"wait_j,omitempty"`
	WindowOutputTokens *float64 `json:"window_output_tokens,omitempty"`
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

// attrRule says where a request's work lies in time and how intervals
// without token work are shared. The batch rule (the zero value) spreads
// the prefill over t_start–t_first_token and each decode step over its gap;
// the serving rule (servingRule) counts tokens where they came out.
type attrRule struct {
	segments func(record.RequestEvent) []segment // nil: segments
	// inFlight: an interval where no token work lies but requests were in
	// flight (queued, or a long prefill) goes to those requests by the time
	// each spent in it (WaitJ), not to the idle share.
	inFlight bool
	// windowTokens: per-request J per token and simple_j count the tokens
	// each request emitted within the window, not its whole output (a
	// serving window cuts requests at both ends).
	windowTokens bool
}

// requestWork is the work of the requests on the grid.
type requestWork struct {
	segs   [][]segment
	W      []float64 // token work per interval
	F      []float64 // in-flight time per interval (rule.inFlight only)
	mass   []float64 // each request's token work within the window
	massSm float64
}

func (rule attrRule) place(grid []int64, reqs []record.RequestEvent) *requestWork {
	segf := rule.segments
	if segf == nil {
		segf = segments
	}
	n := len(grid) - 1
	at := &requestWork{segs: make([][]segment, len(reqs)), W: make([]float64, n), F: make([]float64, n), mass: make([]float64, len(reqs))}
	for ri, r := range reqs {
		at.segs[ri] = segf(r)
		for _, sg := range at.segs[ri] {
			spread(grid, sg, func(i int, w float64) { at.W[i] += w; at.mass[ri] += w })
		}
		at.massSm += at.mass[ri]
		if rule.inFlight {
			spread(grid, flightSegment(r), func(i int, w float64) { at.F[i] += w })
		}
	}
	return at
}

// flightSegment is the time a request was in flight, weighted by its length.
func flightSegment(r record.RequestEvent) segment {
	return segment{r.TStartNS, r.TEndNS, float64(r.TEndNS - r.TStartNS), false}
}

// attribute splits the measure window's basis energy among the requests.
// It returns nil when the energy of some basis device is unknown.
func attribute(e *record.Energy, reqs []record.RequestEvent, grid []int64, tracks []*DeviceTrack) []RequestEnergy {
	return attrRule{}.attribute(e, reqs, grid, tracks)
}

func (rule attrRule) attribute(e *record.Energy, reqs []record.RequestEvent, grid []int64, tracks []*DeviceTrack) []RequestEnergy {
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
	at := rule.place(grid, reqs)
	idleE := 0.0
	for i := range at.W {
		if at.W[i] == 0 && at.F[i] == 0 {
			idleE += ei[i]
		}
	}
	var outTok float64
	for ri, r := range reqs {
		outTok += rule.tokens(r, at.mass[ri])
	}
	out := make([]RequestEnergy, len(reqs))
	for ri, r := range reqs {
		re := rule.share(e, r, grid, ei, at, ri)
		switch {
		case at.massSm > 0:
			re.IdleShareJ = idleE * at.mass[ri] / at.massSm
		default:
			re.IdleShareJ = idleE / float64(len(reqs))
		}
		rule.finish(e, &re, r, at.mass[ri], total, outTok)
		out[ri] = re
	}
	return out
}

// tokens are the output tokens a request's per-token figures count.
func (rule attrRule) tokens(r record.RequestEvent, mass float64) float64 {
	if rule.windowTokens {
		return mass
	}
	return float64(r.OutputTokens)
}

// share is request ri's part of the intervals with work in them.
func (rule attrRule) share(e *record.Energy, r record.RequestEvent, grid []int64, ei []float64, at *requestWork, ri int) RequestEnergy {
	re := RequestEnergy{Kind: KindRequestEnergy, V: record.Version, RunID: e.RunID, ID: r.ID,
		InputTokens: ptrInt(r.InputTokens), OutputTokens: r.OutputTokens}
	for _, sg := range at.segs[ri] {
		spread(grid, sg, func(i int, w float64) {
			part := ei[i] * w / at.W[i]
			if sg.prefill {
				re.PrefillJ += part
			} else {
				re.DecodeJ += part
			}
		})
	}
	if rule.inFlight {
		wait := 0.0
		spread(grid, flightSegment(r), func(i int, w float64) {
			if at.W[i] == 0 {
				wait += ei[i] * w / at.F[i]
			}
		})
		re.WaitJ = ptr(wait)
		re.WindowOutputTokens = ptr(at.mass[ri])
	}
	return re
}

// finish sums the parts and derives the scaled and per-token figures.
func (rule attrRule) finish(e *record.Energy, re *RequestEnergy, r record.RequestEvent, mass, total, outTok float64) {
	re.EnergyJ = re.PrefillJ + re.DecodeJ + re.IdleShareJ
	if re.WaitJ != nil {
		re.EnergyJ += *re.WaitJ
	}
	gross, net := e.Metrics[record.MEnergyJ], e.Metrics[record.MEnergyNetJ]
	if gross != nil && net != nil && *gross > 0 {
		re.NetJ = ptr(re.EnergyJ * *net / *gross)
	}
	tok := rule.tokens(r, mass)
	if outTok > 0 {
		re.SimpleJ = ptr(total / outTok * tok)
	}
	if tok > 0 {
		re.JPerOutToken = ptr(re.EnergyJ / tok)
	}
}

func ptrInt(v int) *int { return &v }

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

// servingRule attributes a serving run's window: "each interval's energy is
// shared among the requests active in it by the tokens each produced in it,
// prefill counted at its first token". In a serving run the time from
// t_start to the first token is queueing as much as prefill, so the batch
// rule (prefill spread over it) would charge a request for waiting; here the
// prefill is the first token, placed where it came out. Intervals where no
// token came out go to the requests in flight there (WaitJ).
var servingRule = attrRule{segments: servingSegments, inFlight: true, windowTokens: true}

// servingSegments places each chunk's tokens at the moment the chunk
// arrived: output_tokens shared evenly over the chunks (one per inter-token
// gap, plus the first), the first chunk being the prefill's. Without
// inter-token gaps the tokens after the first are spread evenly over
// t_first_token–t_end.
func servingSegments(r record.RequestEvent) []segment {
	first := r.TFirstNS
	if len(r.ITLNS) == 0 {
		s := []segment{{first, first, math.Min(1, float64(r.OutputTokens)), true}}
		if r.OutputTokens > 1 {
			s = append(s, segment{first, r.TEndNS, float64(r.OutputTokens - 1), false})
		}
		return s
	}
	per := float64(r.OutputTokens) / float64(len(r.ITLNS)+1)
	s := make([]segment, 0, len(r.ITLNS)+1)
	s = append(s, segment{first, first, per, true})
	t := first
	for _, g := range r.ITLNS {
		t += g
		s = append(s, segment{t, t, per, false})
	}
	return s
}

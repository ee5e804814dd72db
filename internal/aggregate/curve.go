package aggregate

import (
	"math"
	"sort"
)

// Curve turns one device's sample stream into its cumulative energy, evaluated
// at a fixed, sorted set of query times (the edges of every window of
// interest), while the samples stream past in time order. Window energy is then
// a difference of two evaluations, so any number of windows, overlapping or
// not, costs one pass over the samples and memory proportional to the number
// of queries, never to the length of the stream.
//
// Two independent tracks are kept:
//
//   - the power track: the trapezoid integral of power, i.e. the exact integral
//     of the piecewise-linear power curve through the samples. A query between
//     two samples integrates up to the query with the power interpolated there.
//     A null power reading is skipped (the curve bridges it), which is the
//     trapezoid over the gap.
//   - the counter track: the device's cumulative energy counter, linearly
//     interpolated between samples. A reading at most JitterJ below the last
//     is jitter (the sensor's resolution, or a repeated row): it is skipped,
//     the counter holds. Where the counter runs further backwards (a wrap or
//     a reset) the jump is bridged with the counter modulus when it is known,
//     else with the power integral over that interval, else the interval is
//     marked broken and windows across it get no counter figure. A step the
//     power readings cannot explain (more than SpikeFactor × the highest power
//     seen × the interval) is rejected: that interval takes the power
//     integral instead, as does the step back from a rejected spike.
//
// Rows repeating the previous row's timestamp are duplicates: the first
// reading of each track at a timestamp is kept, the row is not counted again.
//
// Queries outside the samples are extrapolated by holding the nearest power
// reading; the distance is recorded, so callers can flag missing edges.
type Curve struct {
	q []int64 // query times, sorted ascending
	r []Edge  // results, r[i] for q[i]

	// WrapJ is the counter's modulus in joules where known (RAPL's
	// max_energy_range); 0 means unknown.
	WrapJ float64
	// JitterJ is the largest backward counter step taken for jitter rather
	// than a reset (DefaultJitterJ).
	JitterJ float64
	// SpikeFactor bounds a plausible counter step: SpikeFactor × the highest
	// power seen × max(interval, MinSpikeIntervalS); 0 turns the check off.
	SpikeFactor float64

	// power track
	pi   int // next query not yet resolved on the power track
	pN   int64
	pT   int64
	pV   float64
	pCum float64 // J since the first power sample
	pMax float64 // highest power reading so far
	// okStepJ: a step up to this is plausible whatever the interval (the
	// bound at the shortest interval), so most rows skip the full check.
	okStepJ float64

	// counter track
	ci     int
	eN     int64
	eT     int64
	eRaw   float64 // last raw counter value
	eOff   float64 // correction added to raw values (wraps, resets)
	ePCum  float64 // pCum at the last counter sample, when power was valid there
	ePCumK bool
	broken [][2]int64 // intervals where the counter jumped and could not be bridged
	spiked bool       // the last counter step was rejected as a spike

	// all rows with any reading: sample counts per window
	ai int
	aN int64

	lastT int64
	lastP float64 // readings of the first row at lastT, to tell duplicates that differ
	lastE float64
	done  bool

	Wraps int // counter jumps backwards seen (bridged or not)
	// How the wraps were bridged: by the counter's range, by the power
	// integral (BridgedJ in all), or not at all.
	WrapsRange, WrapsPower, WrapsBroken int
	BridgedJ                            float64
	// Jitter counts counter readings a few resolutions below the last, skipped.
	Jitter int
	// Rejected counts counter steps the power readings cannot explain (a
	// spike and the step back from it), replaced by the power integral over
	// RejectedNS in all; RejectedMaxJ is the largest step rejected.
	Rejected     int
	RejectedNS   int64
	RejectedMaxJ float64
	// Duplicates counts rows at the previous row's timestamp (DupDiffer of
	// them with other readings); the first row at a timestamp is kept.
	Duplicates, DupDiffer int64
	// Unordered counts rows that went back in time and were skipped.
	Unordered int64
}

// Defaults of the counter's plausibility checks. NVML's energy counter counts
// whole millijoules: ten of them is jitter, not a reset. A step more than ten
// times what the highest power seen could deliver in the interval (at least
// two of the sensor's 100 ms update periods, since a counter updated late
// delivers two periods at once) cannot be energy.
const (
	DefaultJitterJ     = 0.01
	DefaultSpikeFactor = 10
	MinSpikeIntervalS  = 0.2
)

// Edge is the curve evaluated at one query time.
type Edge struct {
	IntJ   float64 // cumulative power integral (J), relative to the first power sample
	IntOK  bool
	IntOut int64 // ns between the query and the nearest power sample when it lay outside them; 0 inside
	CtrJ   float64
	CtrOK  bool
	CtrOut int64
	Before int64 // rows with a reading strictly before the query
}

// NewCurve makes a curve evaluated at queries, which must be sorted ascending.
func NewCurve(queries []int64) *Curve {
	return &Curve{q: queries, r: make([]Edge, len(queries)), JitterJ: DefaultJitterJ, SpikeFactor: DefaultSpikeFactor, okStepJ: math.Inf(1)}
}

// SortedUnique sorts ts and removes duplicates, in place.
func SortedUnique(ts []int64) []int64 {
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	out := ts[:0]
	for i, t := range ts {
		if i == 0 || t != out[len(out)-1] {
			out = append(out, t)
		}
	}
	return out
}

// Add feeds one row. pOK and eOK say whether the power and counter readings
// exist. Rows must come in time order; a row earlier than the previous one on
// a track is skipped and counted in Unordered. It reports whether the row
// was taken as a new reading (not skipped, not a duplicate).
func (c *Curve) Add(t int64, p float64, pOK bool, e float64, eOK bool) bool {
	if !pOK && !eOK {
		return false
	}
	if c.aN > 0 && t < c.lastT {
		c.Unordered++
		return false
	}
	if c.aN > 0 && t == c.lastT {
		// A duplicate: each track keeps its first reading at t (a reading
		// the first row lacked is taken from this one); not a new sample.
		c.Duplicates++
		if pOK && p != c.lastP || eOK && e != c.lastE {
			c.DupDiffer++
		}
		c.addTracks(t, p, pOK, e, eOK)
		return false
	}
	c.lastT, c.lastP, c.lastE = t, p, e
	for c.ai < len(c.q) && c.q[c.ai] <= t {
		c.r[c.ai].Before = c.aN
		c.ai++
	}
	c.aN++
	c.addTracks(t, p, pOK, e, eOK)
	return true
}

func (c *Curve) addTracks(t int64, p float64, pOK bool, e float64, eOK bool) {
	if pOK && !math.IsNaN(p) {
		c.addPower(t, p)
	}
	if eOK && !math.IsNaN(e) {
		c.addCounter(t, e, pOK)
	}
}

func (c *Curve) addPower(t int64, p float64) {
	if c.pN == 0 {
		for c.pi < len(c.q) && c.q[c.pi] <= t {
			q := c.q[c.pi]
			c.r[c.pi] = withInt(c.r[c.pi], -float64(t-q)*1e-9*p, t-q)
			c.pi++
		}
		c.pN, c.pT, c.pV = 1, t, p
		c.raiseMax(p)
		return
	}
	dt := t - c.pT
	if dt <= 0 {
		if dt < 0 {
			c.Unordered++
		}
		return
	}
	fdt := float64(dt)
	for c.pi < len(c.q) && c.q[c.pi] <= t {
		q := c.q[c.pi]
		x := float64(q - c.pT)
		pq := c.pV + (p-c.pV)*(x/fdt)
		c.r[c.pi] = withInt(c.r[c.pi], c.pCum+x*1e-9*(c.pV+pq)/2, 0)
		c.pi++
	}
	c.pCum += fdt * 1e-9 * (c.pV + p) / 2
	c.pN++
	c.pT, c.pV = t, p
	if p > c.pMax {
		c.raiseMax(p)
	}
}

// raiseMax records a new highest power and the step always plausible under it.
func (c *Curve) raiseMax(p float64) {
	c.pMax = math.Max(c.pMax, p)
	c.okStepJ = math.Inf(1)
	if c.SpikeFactor > 0 && c.pMax > 0 {
		c.okStepJ = c.SpikeFactor*c.pMax*MinSpikeIntervalS + c.JitterJ
	}
}

func withInt(e Edge, j float64, out int64) Edge {
	e.IntJ, e.IntOK, e.IntOut = j, true, out
	return e
}

func withCtr(e Edge, j float64, ok bool, out int64) Edge {
	e.CtrJ, e.CtrOK, e.CtrOut = j, ok, out
	return e
}

// powerHere reports the power cumulative at the current row when the power
// track has just taken a sample at time t.
func (c *Curve) powerHere(t int64, pOK bool) (float64, bool) {
	return c.pCum, pOK && c.pN > 0 && c.pT == t
}

func (c *Curve) addCounter(t int64, e float64, pOK bool) {
	pc, pcOK := c.powerHere(t, pOK)
	if c.eN == 0 {
		for c.ci < len(c.q) && c.q[c.ci] <= t {
			q := c.q[c.ci]
			// Before the first counter sample: only the power curve can say
			// what the counter would have read.
			if c.r[c.ci].IntOK && pcOK {
				c.r[c.ci] = withCtr(c.r[c.ci], e-(pc-c.r[c.ci].IntJ), true, t-q)
			} else {
				c.r[c.ci] = withCtr(c.r[c.ci], 0, false, t-q)
			}
			c.ci++
		}
		c.eN, c.eT, c.eRaw = 1, t, e
		c.ePCum, c.ePCumK = pc, pcOK
		return
	}
	dt := t - c.eT
	if dt <= 0 {
		if dt < 0 {
			c.Unordered++
		}
		return
	}
	if e < c.eRaw && c.eRaw-e <= c.JitterJ {
		// Jitter at the counter's resolution: the counter holds its last
		// reading, and the next one covers both intervals.
		c.Jitter++
		return
	}
	prev := c.eRaw + c.eOff
	if d := e - c.eRaw; d < 0 || d > c.okStepJ || c.spiked {
		c.eOff = prev + c.counterStep(t, e, pc, pcOK) - e
	}
	cur := e + c.eOff
	fdt := float64(dt)
	for c.ci < len(c.q) && c.q[c.ci] <= t {
		q := c.q[c.ci]
		c.r[c.ci] = withCtr(c.r[c.ci], prev+(cur-prev)*(float64(q-c.eT)/fdt), true, 0)
		c.ci++
	}
	c.eN++
	c.eT, c.eRaw = t, e
	c.ePCum, c.ePCumK = pc, pcOK
}

// counterStep is the energy the counter track takes for the interval from
// the last counter sample to t, whose raw reading is e: the counter's own
// step where it is plausible, else a bridge (the counter's range for a
// wrap, the power integral for a reset or a rejected step, 0 for a break).
func (c *Curve) counterStep(t int64, e, pc float64, pcOK bool) float64 {
	dt := t - c.eT
	powerJ, powerOK := pc-c.ePCum, pcOK && c.ePCumK
	d := e - c.eRaw
	wrapped := false
	if d < 0 && !c.spiked && c.WrapJ > 0 {
		d, wrapped = d+c.WrapJ, true
	}
	if d >= 0 && !c.implausible(d, dt, powerOK) {
		if wrapped {
			c.Wraps++
			c.WrapsRange++
		}
		c.spiked = false
		return d
	}
	switch {
	case d >= 0 || c.spiked && powerOK:
		// A step up the power cannot explain, or the step back down from
		// one: the interval takes the power integral.
		c.Rejected++
		c.RejectedNS += dt
		c.RejectedMaxJ = math.Max(c.RejectedMaxJ, math.Abs(e-c.eRaw))
		c.spiked = d >= 0
		return powerJ
	case powerOK:
		c.Wraps++
		c.WrapsPower++
		c.BridgedJ += powerJ
		c.spiked = false
		return powerJ
	}
	c.Wraps++
	c.WrapsBroken++
	c.spiked = false
	c.broken = append(c.broken, [2]int64{c.eT, t})
	return 0
}

// implausible tells whether a counter step of d J over dt ns is more than
// the power readings can explain. Without power readings at both ends of
// the interval nothing can be said, and the step stands.
func (c *Curve) implausible(d float64, dt int64, powerOK bool) bool {
	if c.SpikeFactor <= 0 || !powerOK || c.pMax <= 0 {
		return false
	}
	return d > c.SpikeFactor*c.pMax*math.Max(float64(dt)*1e-9, MinSpikeIntervalS)+c.JitterJ
}

// Finish resolves the queries after the last sample by holding the last power
// reading, and returns the evaluations, one per query.
func (c *Curve) Finish() []Edge {
	if c.done {
		return c.r
	}
	c.done = true
	for ; c.ai < len(c.q); c.ai++ {
		c.r[c.ai].Before = c.aN
	}
	for ; c.pi < len(c.q); c.pi++ {
		if c.pN == 0 {
			continue
		}
		q := c.q[c.pi]
		c.r[c.pi] = withInt(c.r[c.pi], c.pCum+float64(q-c.pT)*1e-9*c.pV, q-c.pT)
	}
	for ; c.ci < len(c.q); c.ci++ {
		if c.eN == 0 {
			continue
		}
		q := c.q[c.ci]
		cur := c.eRaw + c.eOff
		// After the last counter sample: extend with the last power reading.
		if c.pN > 0 {
			c.r[c.ci] = withCtr(c.r[c.ci], cur+float64(q-c.eT)*1e-9*c.pV, true, q-c.eT)
		} else {
			c.r[c.ci] = withCtr(c.r[c.ci], cur, false, q-c.eT)
		}
	}
	return c.r
}

// CounterBroken reports whether the counter jumped without a bridge inside [a, b].
func (c *Curve) CounterBroken(a, b int64) bool {
	for _, iv := range c.broken {
		if iv[1] > a && iv[0] < b {
			return true
		}
	}
	return false
}

// PowerSamples and CounterSamples count the readings of each track.
func (c *Curve) PowerSamples() int64   { return c.pN }
func (c *Curve) CounterSamples() int64 { return c.eN }

// Query returns the index of query time t (which must be one of the queries).
func (c *Curve) Query(t int64) int {
	i := sort.Search(len(c.q), func(i int) bool { return c.q[i] >= t })
	if i == len(c.q) || c.q[i] != t {
		return -1
	}
	return i
}

// Span is the energy of one window [a, b] on one device.
type Span struct {
	IntegralJ *float64 // trapezoid integral of power; nil without power readings
	CounterJ  *float64 // counter difference; nil without a usable counter
	IntOutNS  int64    // how far the window's edges lay outside the power samples (the larger of the two)
	CtrOutNS  int64    // the same for the counter samples
	Samples   int64    // rows with a reading in [a, b)
}

// Span returns the window's energy. a and b must be query times; call after Finish.
func (c *Curve) Span(a, b int64) Span {
	c.Finish()
	ia, ib := c.Query(a), c.Query(b)
	if ia < 0 || ib < 0 {
		panic("aggregate: Span on a time that is not a query")
	}
	ea, eb := c.r[ia], c.r[ib]
	s := Span{Samples: eb.Before - ea.Before}
	if ea.IntOK && eb.IntOK {
		v := eb.IntJ - ea.IntJ
		s.IntegralJ = &v
		s.IntOutNS = max(ea.IntOut, eb.IntOut)
	}
	if ea.CtrOK && eb.CtrOK && !c.CounterBroken(a, b) {
		v := eb.CtrJ - ea.CtrJ
		s.CounterJ = &v
		s.CtrOutNS = max(ea.CtrOut, eb.CtrOut)
	}
	return s
}

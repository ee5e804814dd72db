package aggregate

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/llem/llem/internal/record"
)

// Rows is a batch of samples in columnar form, the shape both ArrowSource
// (over power.Reader, the one reader of sample streams) and test fixtures
// produce. Dev indexes the
// source's Devices. A nil validity slice means every value is present.
type Rows struct {
	T        []int64
	Dev      []int32
	PowerW   []float64
	PowerOK  []bool
	EnergyJ  []float64
	EnergyOK []bool
	TempC    []float64 // optional
	TempOK   []bool
	Throttle []uint64 // optional: NVML clock-event reason bits
	ThrotOK  []bool
	// Optional: the run's and the machine's cumulative busy CPU seconds
	// (CPU devices of streams that carry them; see cpushare.go).
	RunCPU     []float64
	RunCPUOK   []bool
	MachineCPU []float64
	MachineOK  []bool
}

// Len is the number of rows.
func (r *Rows) Len() int { return len(r.T) }

// DeviceInfo describes one device of a sample stream.
type DeviceInfo struct {
	Name   string
	Source string  // nvml | rapl | estimate
	WrapJ  float64 // counter modulus where known, else 0
	// The estimate's model, where the stream states it.
	WattsPerCore       float64
	WattsPerCoreSource string
	CPUModel           string
}

// Source is a stream of sample batches in time order.
type Source interface {
	// Devices lists the devices seen so far; Rows.Dev indexes it. The list
	// may grow between batches but never reorders.
	Devices() []DeviceInfo
	// Next returns the next batch, or io.EOF at the end.
	Next() (*Rows, error)
	// IntervalNS is the sampler's nominal interval, 0 if unknown.
	IntervalNS() int64
	Close() error
}

// WindowStats are per-device statistics over one window, for the validity flags.
type WindowStats struct {
	Win        record.Window
	N          int64
	FirstT     int64
	LastT      int64
	MaxGapNS   int64 // largest gap between readings inside the window, edges included
	PrevT      int64 // last reading before the window (PrevOK)
	PrevOK     bool
	NextT      int64 // first reading after the window (NextOK)
	NextOK     bool
	TempN      int
	TempFirst  float64
	TempLast   float64
	TempMin    float64
	TempMax    float64
	ThrottleN  int64  // rows with a throttle reading
	ThrottledN int64  // rows whose bits include a slowdown reason
	ThrottleOr uint64 // OR of the slowdown bits seen
}

// Slowdown reasons of NVML's clock-event bitmask that mean the GPU ran slower
// than asked: SW power cap, HW slowdown, SW thermal, HW thermal, HW power brake.
const (
	ThrottleSWPowerCap = 0x4
	ThrottleHWSlowdown = 0x8
	ThrottleSWThermal  = 0x20
	ThrottleHWThermal  = 0x40
	ThrottleHWPowerBrk = 0x80
	ThrottleSlowdowns  = ThrottleSWPowerCap | ThrottleHWSlowdown | ThrottleSWThermal | ThrottleHWThermal | ThrottleHWPowerBrk
)

// ThrottleNames names the slowdown bits set in bits.
func ThrottleNames(bits uint64) string {
	var out []string
	for _, b := range []struct {
		bit  uint64
		name string
	}{{ThrottleSWPowerCap, "sw_power_cap"}, {ThrottleHWSlowdown, "hw_slowdown"}, {ThrottleSWThermal, "sw_thermal"},
		{ThrottleHWThermal, "hw_thermal"}, {ThrottleHWPowerBrk, "hw_power_brake"}} {
		if bits&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	return strings.Join(out, ", ")
}

func (s *WindowStats) add(t int64, temp float64, tempOK bool, thr uint64, thrOK bool) {
	if t < s.Win.StartNS {
		s.PrevT, s.PrevOK = t, true
		return
	}
	if t > s.Win.EndNS {
		if !s.NextOK {
			s.NextT, s.NextOK = t, true
		}
		return
	}
	if s.N == 0 {
		s.FirstT = t
		s.MaxGapNS = t - s.Win.StartNS
	} else if g := t - s.LastT; g > s.MaxGapNS {
		s.MaxGapNS = g
	}
	s.LastT = t
	s.N++
	if tempOK && !math.IsNaN(temp) {
		if s.TempN == 0 {
			s.TempFirst, s.TempMin, s.TempMax = temp, temp, temp
		}
		s.TempLast = temp
		s.TempMin, s.TempMax = math.Min(s.TempMin, temp), math.Max(s.TempMax, temp)
		s.TempN++
	}
	if thrOK {
		s.ThrottleN++
		if b := thr & ThrottleSlowdowns; b != 0 {
			s.ThrottledN++
			s.ThrottleOr |= b
		}
	}
}

func (s *WindowStats) finish() {
	if s.N == 0 {
		s.MaxGapNS = s.Win.EndNS - s.Win.StartNS
		return
	}
	if g := s.Win.EndNS - s.LastT; g > s.MaxGapNS {
		s.MaxGapNS = g
	}
}

// CoverGapNS is the longest stretch without a reading that overlaps a
// window holding fewer than two readings, from the last reading before it
// to the first after; false when the readings do not reach both sides.
func (s *WindowStats) CoverGapNS() (int64, bool) {
	switch {
	case s.N == 0 && s.PrevOK && s.NextOK:
		return s.NextT - s.PrevT, true
	case s.N == 1 && s.PrevOK && s.NextOK:
		return max(s.FirstT-s.PrevT, s.NextT-s.FirstT), true
	}
	return 0, false
}

// DeviceTrack is one device's curve and window statistics after a pass.
type DeviceTrack struct {
	Info  DeviceInfo
	Curve *Curve
	Stats []WindowStats // one per stat window, in the order given
	// Ahead counts rows stamped ahead of the rows after them (a clock
	// glitch), dropped; AheadMaxNS is the largest lead.
	Ahead      int64
	AheadMaxNS int64
	// CPUTime: the device's rows carried the run's CPU time. Machine, in
	// process attribution, is the same device's whole-machine track.
	CPUTime bool
	Machine *DeviceTrack

	// Two rows in place: buf[cur] is the held row (when held), the other
	// slot takes the next row, so rows are never copied.
	buf      [2]devRow
	cur      int
	held     bool
	emitted  bool
	lastEmit int64
}

// devRow is one row of one device.
type devRow struct {
	t          int64
	p, e, temp float64
	thr        uint64
	pOK, eOK   bool
	tOK, hOK   bool
}

// feed takes the device's next row, read into slot(). A row is held until
// the one after it arrives, so that one row stamped ahead of its neighbours
// (a clock glitch) costs only itself: when the next row goes back before the held one but
// not before the row ahead of it, the held row is the odd one and is
// dropped (counted in Ahead); when it goes back further, it is the odd one
// (counted in Unordered). With nothing before the held row to compare, the
// held row is dropped.
func (tr *DeviceTrack) feed() {
	if !tr.held {
		tr.held = true
		return
	}
	p, r := &tr.buf[tr.cur], &tr.buf[1-tr.cur]
	switch {
	case r.t >= p.t:
		tr.emit(p)
		tr.cur = 1 - tr.cur
	case !tr.emitted || r.t >= tr.lastEmit:
		tr.Ahead++
		tr.AheadMaxNS = max(tr.AheadMaxNS, p.t-r.t)
		tr.cur = 1 - tr.cur
	default:
		tr.Curve.Unordered++
	}
}

// slot is where the next row is read into: the free one of the two.
func (tr *DeviceTrack) slot() *devRow {
	if tr.held {
		return &tr.buf[1-tr.cur]
	}
	return &tr.buf[tr.cur]
}

// flush emits the held row at the end of the stream.
func (tr *DeviceTrack) flush() {
	if tr.held {
		tr.emit(&tr.buf[tr.cur])
		tr.held = false
	}
}

func (tr *DeviceTrack) emit(r *devRow) {
	tr.emitted, tr.lastEmit = true, r.t
	if !tr.Curve.Add(r.t, r.p, r.pOK, r.e, r.eOK) {
		return // a duplicate: the window statistics count it once
	}
	for k := range tr.Stats {
		tr.Stats[k].add(r.t, r.temp, r.tOK, r.thr, r.hOK)
	}
}

// Pass streams src once, evaluating every device's curve at queries (sorted,
// unique) and collecting statistics over statWins. Memory is proportional to
// the number of devices × (queries + windows), not to the stream's length.
func Pass(src Source, queries []int64, statWins []record.Window) ([]*DeviceTrack, error) {
	var tracks []*DeviceTrack
	grow := func() {
		devs := src.Devices()
		for len(tracks) < len(devs) {
			d := devs[len(tracks)]
			c := NewCurve(queries)
			c.WrapJ = d.WrapJ
			st := make([]WindowStats, len(statWins))
			for i, w := range statWins {
				st[i].Win = w
			}
			tracks = append(tracks, &DeviceTrack{Info: d, Curve: c, Stats: st})
		}
	}
	for {
		rows, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		grow()
		n := rows.Len()
		if len(rows.Dev) != n || len(rows.PowerW) != n || len(rows.EnergyJ) != n {
			return nil, fmt.Errorf("sample batch has columns of different lengths")
		}
		for i := 0; i < n; i++ {
			d := rows.Dev[i]
			if d < 0 || int(d) >= len(tracks) {
				return nil, fmt.Errorf("sample row %d names device %d of %d", i, d, len(tracks))
			}
			tr := tracks[d]
			if r := tr.slot(); rowAt(r, rows, i) {
				tr.feed()
			}
		}
	}
	grow()
	for _, tr := range tracks {
		tr.flush()
		tr.Curve.Finish()
		for k := range tr.Stats {
			tr.Stats[k].finish()
		}
	}
	return tracks, nil
}

// rowAt reads row i of a batch into r, its optional columns where present,
// and tells whether it holds a reading.
func rowAt(r *devRow, rows *Rows, i int) bool {
	r.t, r.p, r.e = rows.T[i], rows.PowerW[i], rows.EnergyJ[i]
	r.pOK = rows.PowerOK == nil || rows.PowerOK[i]
	r.eOK = rows.EnergyOK == nil || rows.EnergyOK[i]
	r.tOK, r.hOK = false, false
	if rows.TempC != nil {
		r.temp, r.tOK = rows.TempC[i], rows.TempOK == nil || rows.TempOK[i]
	}
	if rows.Throttle != nil {
		r.thr, r.hOK = rows.Throttle[i], rows.ThrotOK == nil || rows.ThrotOK[i]
	}
	return r.pOK || r.eOK
}

// SliceSource serves prepared batches; tests and the synthetic benchmark use it.
type SliceSource struct {
	Devs     []DeviceInfo
	Batches  []*Rows
	Interval int64
	i        int
}

func (s *SliceSource) Devices() []DeviceInfo { return s.Devs }
func (s *SliceSource) IntervalNS() int64     { return s.Interval }
func (s *SliceSource) Close() error          { return nil }
func (s *SliceSource) Next() (*Rows, error) {
	if s.i >= len(s.Batches) {
		return nil, io.EOF
	}
	s.i++
	return s.Batches[s.i-1], nil
}

package power

import (
	"fmt"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// Columns are found by name. Besides the types llem-sample writes, decode
// takes what other samplers of the same long format write:
//   - t: timestamp of any unit, or int64 ns;
//   - device, source: utf8, large utf8 or a dictionary of utf8; source may
//     be missing (a device named GPU-… is then nvml, any other rapl);
//   - power_w, energy_j, temp_c, util_pct: float64, float32 or null;
//   - throttle: uint64, int64, uint32 or int32.
//
// An optional column (temp_c, util_pct, mem_used_bytes, sm_clock_mhz,
// throttle, run_cpu_s, machine_cpu_s) of another type is read as absent.

// decode checks what it reads: Arrow takes a batch's row count, buffer sizes
// and dictionary indices from the file without comparing them, so a damaged
// batch can claim more rows than its columns hold. A panic left anyway is a
// malformed batch.
func (r *Reader) decode(rec arrow.Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed record batch (%v)", p)
		}
	}()
	b := &r.batch
	b.Record = rec
	b.N = int(rec.NumRows())
	// First, so that the row count is backed by real bytes (8 a row) before
	// anything is allocated from it.
	if err := r.decodeTime(rec); err != nil {
		return err
	}
	if err := b.decodeReadings(rec); err != nil {
		return err
	}
	b.Throttle, b.ThrotOK = nil, falses(b.N, b.ThrotOK)
	if c := column(rec, ColThrottle); c != nil {
		if v, ok := r.uints(c); ok {
			b.Throttle, b.ThrotOK = v, valid(c, b.ThrotOK)
		}
	}
	if err := r.decodeDevices(rec); err != nil {
		return err
	}
	return b.checkLengths()
}

// unitNS is nanoseconds per timestamp unit.
var unitNS = map[arrow.TimeUnit]int64{arrow.Second: 1e9, arrow.Millisecond: 1e6, arrow.Microsecond: 1e3, arrow.Nanosecond: 1}

func (r *Reader) decodeTime(rec arrow.Record) error {
	b := &r.batch
	switch t := column(rec, ColT).(type) {
	case *array.Timestamp:
		// timestamp is int64 underneath: view it without copying.
		v := arrow.Int64Traits.CastFromBytes(arrow.TimestampTraits.CastToBytes(t.TimestampValues()))
		mul := unitNS[t.DataType().(*arrow.TimestampType).Unit]
		if mul == 1 {
			b.T = v
			break
		}
		r.tbuf = r.tbuf[:0]
		for _, x := range v {
			r.tbuf = append(r.tbuf, x*mul)
		}
		b.T = r.tbuf
	case *array.Int64:
		b.T = t.Int64Values()
	default:
		return fmt.Errorf("column t is %s, want timestamp or int64 ns", column(rec, ColT).DataType())
	}
	if len(b.T) != b.N {
		return fmt.Errorf("column t has %d values in a batch of %d rows", len(b.T), b.N)
	}
	return nil
}

// decodeReadings fills the float and integer reading columns.
func (b *Batch) decodeReadings(rec arrow.Record) error {
	var err error
	if b.PowerW, b.PowerOK, err = floats(rec, ColPowerW, b.N, b.PowerOK); err != nil {
		return err
	}
	if b.EnergyJ, b.EnergyOK, err = floats(rec, ColEnergyJ, b.N, b.EnergyOK); err != nil {
		return err
	}
	if b.TempC, b.TempOK, err = floats(rec, ColTempC, b.N, b.TempOK); err != nil {
		b.TempC, b.TempOK = nil, falses(b.N, b.TempOK)
	}
	if b.UtilPct, b.UtilOK, err = floats(rec, ColUtilPct, b.N, b.UtilOK); err != nil {
		b.UtilPct, b.UtilOK = nil, falses(b.N, b.UtilOK)
	}
	if b.RunCPU, b.RunCPUOK, err = floats(rec, ColRunCPU, b.N, b.RunCPUOK); err != nil {
		b.RunCPU, b.RunCPUOK = nil, falses(b.N, b.RunCPUOK)
	}
	if b.MachineCPU, b.MachineOK, err = floats(rec, ColMachineCPU, b.N, b.MachineOK); err != nil {
		b.MachineCPU, b.MachineOK = nil, falses(b.N, b.MachineOK)
	}
	b.MemUsed, b.MemOK = nil, falses(b.N, b.MemOK)
	if c, ok := column(rec, ColMemUsed).(*array.Int64); ok {
		b.MemUsed, b.MemOK = c.Int64Values(), valid(c, b.MemOK)
	}
	b.SMClock, b.ClockOK = nil, falses(b.N, b.ClockOK)
	if c, ok := column(rec, ColSMClock).(*array.Uint32); ok {
		b.SMClock, b.ClockOK = c.Uint32Values(), valid(c, b.ClockOK)
	}
	return nil
}

// checkLengths: every column present has the batch's row count.
func (b *Batch) checkLengths() error {
	for _, c := range []struct {
		name     string
		n        int
		optional bool
	}{{ColPowerW, len(b.PowerW), false}, {ColEnergyJ, len(b.EnergyJ), false}, {ColDevice, len(b.Dev), false},
		{ColTempC, len(b.TempC), true}, {ColUtilPct, len(b.UtilPct), true}, {ColMemUsed, len(b.MemUsed), true},
		{ColSMClock, len(b.SMClock), true}, {ColThrottle, len(b.Throttle), true},
		{ColRunCPU, len(b.RunCPU), true}, {ColMachineCPU, len(b.MachineCPU), true}} {
		if c.n != b.N && (c.n != 0 || !c.optional) {
			return fmt.Errorf("column %s has %d values in a batch of %d rows", c.name, c.n, b.N)
		}
	}
	return nil
}

func column(rec arrow.Record, name string) arrow.Array {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil
	}
	return rec.Column(idx[0])
}

// floats returns column name's values and validity: a float64 column as
// it is, float32 widened, a null column as n missing readings, and a
// column the batch lacks as nil values with every row missing.
func floats(rec arrow.Record, name string, n int, ok []bool) ([]float64, []bool, error) {
	switch c := column(rec, name).(type) {
	case nil:
		return nil, falses(n, ok), nil
	case *array.Float64:
		return c.Float64Values(), valid(c, ok), nil
	case *array.Float32:
		v := make([]float64, c.Len())
		for i, x := range c.Float32Values() {
			v[i] = float64(x)
		}
		return v, valid(c, ok), nil
	case *array.Null:
		// Its length is a claim no buffer backs: allocate only for the
		// row count t has paid for.
		if c.Len() != n {
			return nil, nil, fmt.Errorf("column %s has %d values in a batch of %d rows", name, c.Len(), n)
		}
		return make([]float64, n), falses(n, ok), nil
	default:
		return nil, nil, fmt.Errorf("column %s is %s, want float64", name, c.DataType())
	}
}

// uints returns an integer column as uint64: viewed when it is uint64,
// else widened into a buffer the reader keeps; false for another type.
func (r *Reader) uints(a arrow.Array) ([]uint64, bool) {
	switch c := a.(type) {
	case *array.Uint64:
		return c.Uint64Values(), true
	case *array.Int64:
		r.thrBuf = widen(r.thrBuf, c.Int64Values())
	case *array.Uint32:
		r.thrBuf = widen(r.thrBuf, c.Uint32Values())
	case *array.Int32:
		r.thrBuf = widen(r.thrBuf, c.Int32Values())
	default:
		return nil, false
	}
	return r.thrBuf, true
}

func widen[T int64 | uint32 | int32](buf []uint64, v []T) []uint64 {
	buf = buf[:0]
	for _, x := range v {
		buf = append(buf, uint64(x))
	}
	return buf
}

func valid(a arrow.Array, ok []bool) []bool {
	if a == nil || a.NullN() == 0 {
		return nil
	}
	n := a.Len()
	if a.NullN() == n { // a column the sensor never had: no bitmap walk
		return falses(n, ok)
	}
	ok = ok[:0]
	bits, off := a.NullBitmapBytes(), a.Data().Offset()
	for i := 0; i < n; i++ {
		j := i + off
		ok = append(ok, bits[j>>3]&(1<<(j&7)) != 0)
	}
	return ok
}

// decodeDevices fills Dev, adding each device not seen before to the
// reader's list.
func (r *Reader) decodeDevices(rec arrow.Record) error {
	b := &r.batch
	devCol := column(rec, ColDevice)
	devOf, err := stringsOf(devCol)
	if err != nil {
		return fmt.Errorf("column device: %w", err)
	}
	srcOf, err := stringsOf(column(rec, ColSource))
	if err != nil {
		return fmt.Errorf("column source: %w", err)
	}
	if devCol.Len() != b.N {
		return fmt.Errorf("column device has %d values in a batch of %d rows", devCol.Len(), b.N)
	}
	b.Dev = b.Dev[:0]
	if d, ok := devCol.(*array.Dictionary); ok {
		// Remember the index per dictionary code.
		if d.Dictionary().Len() > 1<<16 {
			return fmt.Errorf("a dictionary of %d device names", d.Dictionary().Len())
		}
		r.devCode = r.devCode[:0]
		for k := 0; k < d.Dictionary().Len(); k++ {
			r.devCode = append(r.devCode, -1)
		}
		for i := 0; i < b.N; i++ {
			k := d.GetValueIndex(i)
			if r.devCode[k] < 0 {
				r.devCode[k] = r.devIndex(devOf(i), srcOf, i)
			}
			b.Dev = append(b.Dev, r.devCode[k])
		}
		return nil
	}
	// Rows rotate over a handful of devices: compare against the previous
	// row's name before searching.
	last, lastIdx := "", int32(-1)
	for i := 0; i < b.N; i++ {
		d := devOf(i)
		if lastIdx < 0 || d != last {
			last, lastIdx = d, r.devIndex(d, srcOf, i)
		}
		b.Dev = append(b.Dev, lastIdx)
	}
	return nil
}

// devIndex finds device d, or adds it with row i's source.
func (r *Reader) devIndex(d string, srcOf func(int) string, i int) int32 {
	// A handful of devices: a linear scan beats the map.
	if len(r.devs) <= 16 {
		for k := range r.devs {
			if r.devs[k].Device == d {
				return int32(k)
			}
		}
	} else if k, ok := r.devIdx[d]; ok {
		return k
	}
	src := srcOf(i)
	if src == "" { // a stream without a source column: tell by the name
		src = "rapl"
		if ScopeOf("", d) == "gpu" {
			src = "nvml"
		}
	}
	return r.addDev(Device{Device: d, Source: src, Scope: ScopeOf(src, d), Estimate: src == "estimate"})
}

// stringsOf returns a function giving row i's string of a utf8, large utf8
// or dictionary-of-utf8 column; "" for every row of a missing column.
func stringsOf(a arrow.Array) (func(i int) string, error) {
	switch c := a.(type) {
	case *array.String:
		return c.Value, nil
	case *array.LargeString:
		return c.Value, nil
	case *array.Dictionary:
		dict, ok := c.Dictionary().(*array.String)
		if !ok {
			return nil, fmt.Errorf("dictionary of %s, want utf8", c.Dictionary().DataType())
		}
		return func(i int) string { return dict.Value(c.GetValueIndex(i)) }, nil
	case nil:
		return func(int) string { return "" }, nil
	}
	return nil, fmt.Errorf("%s, want utf8", a.DataType())
}

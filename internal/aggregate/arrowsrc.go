package aggregate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"

	"github.com/llem/llem/internal/power"
)

// ArrowSource reads a sample stream in the Arrow IPC stream format with the
// columns of the sample schema (docs/design.md), found by name: t (timestamp or int64
// ns), device and source (string or dictionary of strings), power_w and
// energy_j (float64, nullable), and the optional temp_c and throttle. It
// holds one record batch at a time.
type ArrowSource struct {
	f        *os.File
	rd       *ipc.Reader
	name     string
	devs     []DeviceInfo
	interval int64
	rows     Rows
	rec      arrow.Record
	batch    int
	cut      bool
}

// Truncated tells whether the stream ended inside a message (the sampler
// died or the disk filled mid-batch); the rows before the cut were read.
func (s *ArrowSource) Truncated() bool { return s.cut }

// OpenArrow opens a sample stream file.
func OpenArrow(path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	rd, err := power.NewIPCReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: not an Arrow IPC stream: %w", path, err)
	}
	s := &ArrowSource{f: f, rd: rd, name: path}
	sc := rd.Schema()
	for _, c := range []string{"t", "device", "power_w", "energy_j"} {
		if len(sc.FieldIndices(c)) == 0 {
			s.Close()
			return nil, fmt.Errorf("%s: sample stream has no %q column", path, c)
		}
	}
	s.interval = intervalFromMeta(sc.Metadata())
	return s, nil
}

// intervalFromMeta reads the sampler's interval from the schema metadata under
// any of the names a sampler may use.
func intervalFromMeta(md arrow.Metadata) int64 {
	for _, k := range []string{"interval_ns", "interval_ms", "interval_s", "interval"} {
		i := md.FindKey(k)
		if i < 0 {
			continue
		}
		v := strings.TrimSpace(md.Values()[i])
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return int64(d)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			continue
		}
		switch k {
		case "interval_ns":
			return int64(f)
		case "interval_ms":
			return int64(f * 1e6)
		default:
			return int64(f * 1e9)
		}
	}
	return 0
}

func (s *ArrowSource) Devices() []DeviceInfo { return s.devs }
func (s *ArrowSource) IntervalNS() int64     { return s.interval }

func (s *ArrowSource) Close() error {
	if s.rec != nil {
		s.rec.Release()
		s.rec = nil
	}
	if s.rd != nil {
		s.rd.Release()
		s.rd = nil
	}
	if s.f != nil {
		err := s.f.Close()
		s.f = nil
		return err
	}
	return nil
}

func col(rec arrow.Record, name string) arrow.Array {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil
	}
	return rec.Column(idx[0])
}

// stringsOf returns a function giving row i's string of a string or
// dictionary-of-strings column.
func stringsOf(a arrow.Array) (func(i int) string, error) {
	switch c := a.(type) {
	case *array.String:
		return c.Value, nil
	case *array.LargeString:
		return c.Value, nil
	case *array.Dictionary:
		dict, ok := c.Dictionary().(*array.String)
		if !ok {
			return nil, fmt.Errorf("dictionary of %s, want strings", c.Dictionary().DataType())
		}
		return func(i int) string { return dict.Value(c.GetValueIndex(i)) }, nil
	case nil:
		return func(int) string { return "" }, nil
	}
	return nil, fmt.Errorf("column of %s, want strings", a.DataType())
}

func (s *ArrowSource) devIndex(dev, src string) int32 {
	for i := range s.devs {
		if s.devs[i].Name == dev {
			return int32(i)
		}
	}
	if src == "" { // a stream without a source column: tell by the name
		src = "rapl"
		if power.ScopeOf("", dev) == "gpu" {
			src = "nvml"
		}
	}
	s.devs = append(s.devs, DeviceInfo{Name: dev, Source: src})
	return int32(len(s.devs) - 1)
}

// Next decodes the next record batch into columns. Arrow takes a batch's
// row count and dictionary indices from the file without checking them
// against the buffers; a batch that does not hold together is an error
// naming the file and batch, never a panic.
func (s *ArrowSource) Next() (rows *Rows, err error) {
	defer func() {
		if p := recover(); p != nil {
			rows, err = nil, fmt.Errorf("%s: batch %d: malformed record batch (%v)", s.name, s.batch, p)
		}
	}()
	rows, err = s.next()
	if err == nil {
		n := len(rows.T)
		if len(rows.Dev) != n || len(rows.PowerW) != n || len(rows.EnergyJ) != n ||
			rows.PowerOK != nil && len(rows.PowerOK) != n || rows.EnergyOK != nil && len(rows.EnergyOK) != n ||
			rows.TempC != nil && len(rows.TempC) != n || rows.Throttle != nil && len(rows.Throttle) != n {
			return nil, fmt.Errorf("%s: batch %d: columns of different lengths", s.name, s.batch)
		}
	}
	return rows, err
}

func (s *ArrowSource) next() (*Rows, error) {
	if s.rec != nil {
		s.rec.Release()
		s.rec = nil
	}
	if !s.rd.Next() {
		if err := s.rd.Err(); err != nil && !errors.Is(err, io.EOF) {
			// A stream cut short (the sampler crashed) ends at its last whole batch.
			if errors.Is(err, io.ErrUnexpectedEOF) {
				s.cut = true
				return nil, io.EOF
			}
			return nil, fmt.Errorf("%s: batch %d: %w", s.name, s.batch+1, err)
		}
		return nil, io.EOF
	}
	s.batch++
	rec := s.rd.Record()
	rec.Retain()
	s.rec = rec
	n := int(rec.NumRows())
	r := &s.rows
	switch t := col(rec, "t").(type) {
	case *array.Timestamp:
		unit := t.DataType().(*arrow.TimestampType).Unit
		if unit == arrow.Nanosecond {
			// timestamp[ns] is int64 underneath: view it without copying.
			r.T = arrow.Int64Traits.CastFromBytes(arrow.TimestampTraits.CastToBytes(t.TimestampValues()))
			break
		}
		mul := map[arrow.TimeUnit]int64{arrow.Second: 1e9, arrow.Millisecond: 1e6, arrow.Microsecond: 1e3}[unit]
		r.T = make([]int64, len(t.TimestampValues()))
		for i, v := range t.TimestampValues() {
			r.T[i] = int64(v) * mul
		}
	case *array.Int64:
		r.T = t.Int64Values()
	default:
		return nil, fmt.Errorf("%s: column t is %s, want timestamp[ns]", s.name, col(rec, "t").DataType())
	}
	// The row count is trusted only once the t column's bytes back it.
	if len(r.T) != n {
		return nil, fmt.Errorf("%s: batch %d: column t has %d values in a batch of %d rows", s.name, s.batch, len(r.T), n)
	}
	var err error
	r.PowerW, r.PowerOK, err = floats(col(rec, "power_w"), r.PowerOK)
	if err != nil {
		return nil, fmt.Errorf("%s: power_w: %w", s.name, err)
	}
	r.EnergyJ, r.EnergyOK, err = floats(col(rec, "energy_j"), r.EnergyOK)
	if err != nil {
		return nil, fmt.Errorf("%s: energy_j: %w", s.name, err)
	}
	r.TempC, r.TempOK = nil, nil
	if c := col(rec, "temp_c"); c != nil {
		if r.TempC, r.TempOK, err = floats(c, nil); err != nil {
			r.TempC, r.TempOK = nil, nil
		}
	}
	r.Throttle, r.ThrotOK = nil, nil
	if c := col(rec, "throttle"); c != nil {
		r.Throttle, r.ThrotOK = uints(c)
	}
	devOf, err := stringsOf(col(rec, "device"))
	if err != nil {
		return nil, fmt.Errorf("%s: device: %w", s.name, err)
	}
	srcOf, err := stringsOf(col(rec, "source"))
	if err != nil {
		return nil, fmt.Errorf("%s: source: %w", s.name, err)
	}
	r.Dev = r.Dev[:0]
	// Rows rotate over a handful of devices: remember the last index per
	// dictionary code, or compare against the known names.
	if d, ok := col(rec, "device").(*array.Dictionary); ok {
		if d.Dictionary().Len() > 1<<16 {
			return nil, fmt.Errorf("%s: batch %d: a dictionary of %d device names", s.name, s.batch, d.Dictionary().Len())
		}
		m := make([]int32, d.Dictionary().Len())
		for k := range m {
			m[k] = -1
		}
		for i := 0; i < n; i++ {
			k := d.GetValueIndex(i)
			if m[k] < 0 {
				m[k] = s.devIndex(devOf(i), srcOf(i))
			}
			r.Dev = append(r.Dev, m[k])
		}
	} else {
		for i := 0; i < n; i++ {
			r.Dev = append(r.Dev, s.devIndex(devOf(i), srcOf(i)))
		}
	}
	return r, nil
}

// floats returns a float64 column's values and validity (nil when all valid).
func floats(a arrow.Array, ok []bool) ([]float64, []bool, error) {
	c, isF := a.(*array.Float64)
	if !isF {
		if a != nil && a.DataType().ID() == arrow.FLOAT32 {
			f32 := a.(*array.Float32)
			v := make([]float64, f32.Len())
			for i := range v {
				v[i] = float64(f32.Value(i))
			}
			return v, validity(a, ok), nil
		}
		if _, null := a.(*array.Null); null {
			v := make([]float64, a.Len())
			return v, make([]bool, a.Len()), nil
		}
		return nil, nil, fmt.Errorf("column of %s, want float64", a.DataType())
	}
	return c.Float64Values(), validity(a, ok), nil
}

func validity(a arrow.Array, ok []bool) []bool {
	if a.NullN() == 0 {
		return nil
	}
	ok = ok[:0]
	for i := 0; i < a.Len(); i++ {
		ok = append(ok, a.IsValid(i))
	}
	return ok
}

func uints(a arrow.Array) ([]uint64, []bool) {
	n := a.Len()
	v := make([]uint64, n)
	switch c := a.(type) {
	case *array.Uint64:
		copy(v, c.Uint64Values())
	case *array.Int64:
		for i, x := range c.Int64Values() {
			v[i] = uint64(x)
		}
	case *array.Uint32:
		for i, x := range c.Uint32Values() {
			v[i] = uint64(x)
		}
	case *array.Int32:
		for i, x := range c.Int32Values() {
			v[i] = uint64(x)
		}
	default:
		return nil, nil
	}
	return v, validity(a, nil)
}

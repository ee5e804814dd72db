package power

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"

	"github.com/llem/llem/internal/record"
)

// Batch is one record batch in columns. Slices alias the Arrow buffers and
// are valid until the next call to Next. A nil ...OK slice means every value
// of that column is valid; otherwise OK[i] tells whether row i has a reading.
type Batch struct {
	N        int
	T        []int64 // Unix ns
	Dev      []int32 // index into Reader.Devices()
	PowerW   []float64
	PowerOK  []bool
	EnergyJ  []float64
	EnergyOK []bool
	TempC    []float64
	TempOK   []bool
	UtilPct  []float64
	UtilOK   []bool
	MemUsed  []int64
	MemOK    []bool
	SMClock  []uint32
	ClockOK  []bool
	Throttle []uint64
	ThrotOK  []bool
	Record   arrow.Record // the underlying batch
}

// Reader streams a sample file back, one record batch at a time.
type Reader struct {
	name    string
	f       io.Closer
	br      *bufio.Reader
	rd      *ipc.Reader
	meta    Meta
	devs    []Device
	devIdx  map[string]int32
	batch   Batch
	err     error
	done    bool
	trailer *Trailer
	cut     bool
}

// Open opens a sample stream file.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	return r, nil
}

// NewReader reads a sample stream from in; name is used in errors.
func NewReader(in io.Reader, name string) (*Reader, error) {
	br := bufio.NewReaderSize(in, 1<<20)
	rd, err := NewIPCReader(br)
	if err != nil {
		return nil, fmt.Errorf("%s: not an Arrow IPC sample stream: %w", name, err)
	}
	r := &Reader{name: name, br: br, rd: rd, devIdx: map[string]int32{}}
	sc := rd.Schema()
	for _, c := range []string{ColT, ColSource, ColDevice, ColPowerW, ColEnergyJ} {
		if len(sc.FieldIndices(c)) == 0 {
			rd.Release()
			return nil, fmt.Errorf("%s: sample stream has no %q column", name, c)
		}
	}
	if err := r.meta.parse(sc.Metadata()); err != nil {
		rd.Release()
		return nil, fmt.Errorf("%s: schema metadata: %w", name, err)
	}
	for _, d := range r.meta.Devices {
		r.addDev(d)
	}
	return r, nil
}

func (m *Meta) parse(md arrow.Metadata) error {
	get := func(k string) string {
		if i := md.FindKey(k); i >= 0 {
			return md.Values()[i]
		}
		return ""
	}
	m.Host = get(MetaHost)
	m.SamplerVersion = get(MetaSamplerVersion)
	m.PowerField = get(MetaPowerField)
	if v := get(MetaIntervalNS); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", MetaIntervalNS, err)
		}
		m.IntervalNS = n
	}
	if v := get(MetaStartNS); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", MetaStartNS, err)
		}
		m.StartNS = n
	}
	if v := get(MetaSources); v != "" {
		m.Sources = strings.Split(v, ",")
	}
	m.Estimate = get(MetaEstimate) == "true"
	if v := get(MetaDevices); v != "" {
		if err := json.Unmarshal([]byte(v), &m.Devices); err != nil {
			return fmt.Errorf("%s: %w", MetaDevices, err)
		}
	}
	if v := get(MetaHostInfo); v != "" {
		m.HostInfo = new(record.Host)
		if err := json.Unmarshal([]byte(v), m.HostInfo); err != nil {
			return fmt.Errorf("%s: %w", MetaHostInfo, err)
		}
	}
	return nil
}

func (r *Reader) addDev(d Device) int32 {
	if i, ok := r.devIdx[d.Device]; ok {
		return i
	}
	r.devs = append(r.devs, d)
	i := int32(len(r.devs) - 1)
	r.devIdx[d.Device] = i
	return i
}

// Meta returns the stream's schema metadata.
func (r *Reader) Meta() Meta { return r.meta }

// Devices lists the devices of the metadata, then any other device seen in
// the rows so far (Batch.Dev indexes it). It only grows.
func (r *Reader) Devices() []Device { return r.devs }

// Schema is the stream's Arrow schema.
func (r *Reader) Schema() *arrow.Schema { return r.rd.Schema() }

// Next decodes the next record batch; false at the end or on error (Err).
func (r *Reader) Next() bool {
	if r.done {
		return false
	}
	for {
		if !r.rd.Next() {
			r.done = true
			if err := r.rd.Err(); err != nil && !errors.Is(err, io.EOF) {
				// A stream cut short (the sampler died, the disk filled)
				// ends at its last whole batch.
				if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF") {
					r.cut = true
					return false
				}
				r.err = fmt.Errorf("%s: %w", r.name, err)
				return false
			}
			r.readTrailer()
			return false
		}
		rec := r.rd.Record()
		if rec.NumRows() == 0 {
			continue
		}
		if err := r.decode(rec); err != nil {
			r.done = true
			r.err = fmt.Errorf("%s: %w", r.name, err)
			return false
		}
		return true
	}
}

func (r *Reader) readTrailer() {
	var hdr [12]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil || string(hdr[:8]) != trailerMagic {
		return
	}
	// The trailer is a few hundred bytes of counts and warnings; its length
	// field is not trusted with an allocation.
	n := binary.LittleEndian.Uint32(hdr[8:])
	if n > 1<<20 {
		return
	}
	buf, err := readN(r.br, int64(n))
	if err != nil {
		return
	}
	var t Trailer
	if json.Unmarshal(buf, &t) == nil {
		r.trailer = &t
	}
}

// Trailer returns the final counts written when sampling ended, or nil when
// the stream has none (the writer died) or has not been read to the end.
func (r *Reader) Trailer() *Trailer { return r.trailer }

// Truncated tells whether the stream ended inside a batch (no clean end).
func (r *Reader) Truncated() bool { return r.cut }

// Batch returns the current batch.
func (r *Reader) Batch() *Batch { return &r.batch }

// Err returns the first error met while reading.
func (r *Reader) Err() error { return r.err }

// Close releases the reader and closes the file opened by Open.
func (r *Reader) Close() error {
	if r.rd != nil {
		r.rd.Release()
		r.rd = nil
	}
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
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

// decode checks what it reads: Arrow takes a batch's row count and buffer
// sizes from the file without comparing them, so a damaged batch can claim
// more rows than its columns hold. A panic left anyway is a malformed batch.
func (r *Reader) decode(rec arrow.Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed record batch (%v)", p)
		}
	}()
	b := &r.batch
	b.Record = rec
	b.N = int(rec.NumRows())
	t, ok := column(rec, ColT).(*array.Timestamp)
	if !ok || t.DataType().(*arrow.TimestampType).Unit != arrow.Nanosecond {
		return fmt.Errorf("column t is %s, want timestamp[ns]", column(rec, ColT).DataType())
	}
	b.T = arrow.Int64Traits.CastFromBytes(arrow.TimestampTraits.CastToBytes(t.TimestampValues()))
	// First, so that the row count is backed by real bytes (8 a row) before
	// anything is allocated from it.
	if len(b.T) != b.N {
		return fmt.Errorf("column t has %d values in a batch of %d rows", len(b.T), b.N)
	}
	f64 := func(name string, ok []bool) ([]float64, []bool, error) {
		a := column(rec, name)
		if a == nil {
			return nil, falses(b.N, ok), nil
		}
		c, isF := a.(*array.Float64)
		if !isF {
			return nil, nil, fmt.Errorf("column %s is %s, want float64", name, a.DataType())
		}
		if c.Len() != b.N {
			return nil, nil, fmt.Errorf("column %s has %d values in a batch of %d rows", name, c.Len(), b.N)
		}
		return c.Float64Values(), valid(a, ok), nil
	}
	if b.PowerW, b.PowerOK, err = f64(ColPowerW, b.PowerOK); err != nil {
		return err
	}
	if b.EnergyJ, b.EnergyOK, err = f64(ColEnergyJ, b.EnergyOK); err != nil {
		return err
	}
	if b.TempC, b.TempOK, err = f64(ColTempC, b.TempOK); err != nil {
		return err
	}
	if b.UtilPct, b.UtilOK, err = f64(ColUtilPct, b.UtilOK); err != nil {
		return err
	}
	b.MemUsed, b.MemOK = nil, falses(b.N, b.MemOK)
	if c, ok := column(rec, ColMemUsed).(*array.Int64); ok {
		b.MemUsed, b.MemOK = c.Int64Values(), valid(c, b.MemOK)
	}
	b.SMClock, b.ClockOK = nil, falses(b.N, b.ClockOK)
	if c, ok := column(rec, ColSMClock).(*array.Uint32); ok {
		b.SMClock, b.ClockOK = c.Uint32Values(), valid(c, b.ClockOK)
	}
	b.Throttle, b.ThrotOK = nil, falses(b.N, b.ThrotOK)
	if c, ok := column(rec, ColThrottle).(*array.Uint64); ok {
		b.Throttle, b.ThrotOK = c.Uint64Values(), valid(c, b.ThrotOK)
	}
	dev, ok1 := column(rec, ColDevice).(*array.String)
	src, ok2 := column(rec, ColSource).(*array.String)
	if !ok1 || !ok2 {
		return fmt.Errorf("columns source and device must be utf8")
	}
	b.Dev = b.Dev[:0]
	// Rows rotate over a handful of devices: compare against the previous
	// row's name before the map.
	last, lastIdx := "", int32(-1)
	for i := 0; i < b.N; i++ {
		d := dev.Value(i)
		if lastIdx >= 0 && d == last {
			b.Dev = append(b.Dev, lastIdx)
			continue
		}
		// A handful of devices: a linear scan beats the map.
		idx, ok := int32(-1), false
		if len(r.devs) <= 16 {
			for k := range r.devs {
				if r.devs[k].Device == d {
					idx, ok = int32(k), true
					break
				}
			}
		} else {
			idx, ok = r.devIdx[d]
		}
		if !ok {
			idx = r.addDev(Device{Device: d, Source: src.Value(i), Scope: ScopeOf(src.Value(i), d), Estimate: src.Value(i) == "estimate"})
		}
		last, lastIdx = d, idx
		b.Dev = append(b.Dev, idx)
	}
	for name, n := range map[string]int{ColPowerW: len(b.PowerW), ColEnergyJ: len(b.EnergyJ)} {
		if n != b.N {
			return fmt.Errorf("column %s has %d values in a batch of %d rows", name, n, b.N)
		}
	}
	for name, n := range map[string]int{ColTempC: len(b.TempC), ColUtilPct: len(b.UtilPct), ColMemUsed: len(b.MemUsed), ColSMClock: len(b.SMClock), ColThrottle: len(b.Throttle)} {
		if n != 0 && n != b.N {
			return fmt.Errorf("column %s has %d values in a batch of %d rows", name, n, b.N)
		}
	}
	return nil
}

func falses(n int, ok []bool) []bool {
	if cap(ok) < n {
		return make([]bool, n)
	}
	ok = ok[:n]
	clear(ok)
	return ok
}

// ScopeOf maps a device of a source to its energy scope; llem-sample's
// summary, llem-aggregate and llem-report all ask here, so they agree.
func ScopeOf(source, device string) string {
	switch source {
	case "nvml":
		return record.ScopeGPU
	case "estimate":
		if strings.HasPrefix(device, "GPU") || strings.HasPrefix(device, "gpu") {
			return record.ScopeGPU
		}
		return record.ScopeCPUEst
	}
	// RAPL domains are named package-N, core-N, uncore-N, dram-N; names
	// such as package-0-dram are matched by their subdomain.
	d := strings.ToLower(device)
	switch {
	case strings.HasPrefix(device, "GPU-"):
		return record.ScopeGPU
	case strings.Contains(d, "dram"):
		return record.ScopeDRAM
	case strings.Contains(d, "uncore"):
		return record.ScopeCPUUncore
	case strings.Contains(d, "core"):
		return record.ScopeCPUCore
	}
	return record.ScopeCPUPackage
}

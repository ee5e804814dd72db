package power

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// trailerMagic introduces the trailer after the end-of-stream marker.
const trailerMagic = "LLEMTRLR"

// Writer writes a sample stream. It is not safe for concurrent use. Errors
// are sticky: after the first failed write every call returns it.
type Writer struct {
	bw   *bufio.Writer
	iw   *ipc.Writer
	sch  *arrow.Schema
	mem  memory.Allocator
	rows []Sample
	n    int64
	err  error
}

// NewWriter writes the schema (with m as metadata) and an empty first batch
// to out at once, so that a reader sees the stream's identity before the
// first sample arrives.
func NewWriter(out io.Writer, m Meta) (*Writer, error) {
	md, err := m.arrowMetadata()
	if err != nil {
		return nil, err
	}
	w := &Writer{bw: bufio.NewWriterSize(out, 64<<10), mem: memory.DefaultAllocator}
	w.sch = Schema(md)
	w.iw = ipc.NewWriter(w.bw, ipc.WithSchema(w.sch), ipc.WithAllocator(w.mem))
	if err := w.flush(); err != nil {
		return nil, err
	}
	return w, nil
}

func (m Meta) arrowMetadata() (arrow.Metadata, error) {
	devs, err := json.Marshal(nonNilDevices(m.Devices))
	if err != nil {
		return arrow.Metadata{}, err
	}
	kv := map[string]string{
		MetaHost:           m.Host,
		MetaSamplerVersion: m.SamplerVersion,
		MetaIntervalNS:     strconv.FormatInt(m.IntervalNS, 10),
		MetaPowerField:     m.PowerField,
		MetaDevices:        string(devs),
		MetaSources:        strings.Join(m.Sources, ","),
		MetaEstimate:       strconv.FormatBool(m.Estimate),
		MetaStartNS:        strconv.FormatInt(m.StartNS, 10),
	}
	if m.Attribution != "" {
		kv[MetaAttribution] = m.Attribution
	}
	if kv[MetaSamplerVersion] == "" {
		kv[MetaSamplerVersion] = SamplerVersion
	}
	if m.HostInfo != nil {
		b, err := json.Marshal(m.HostInfo)
		if err != nil {
			return arrow.Metadata{}, err
		}
		kv[MetaHostInfo] = string(b)
	}
	return arrow.MetadataFrom(kv), nil
}

func nonNilDevices(d []Device) []Device {
	if d == nil {
		return []Device{}
	}
	return d
}

// Append buffers one row; Flush writes the buffered rows as a batch.
func (w *Writer) Append(s Sample) { w.rows = append(w.rows, s) }

// Buffered is the number of rows not yet flushed.
func (w *Writer) Buffered() int { return len(w.rows) }

// Rows is the number of rows written so far.
func (w *Writer) Rows() int64 { return w.n }

// Flush writes the buffered rows as one record batch (also when there are
// none, the first time) and flushes the output.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.rows) == 0 {
		return nil
	}
	return w.flush()
}

func (w *Writer) flush() error {
	rec := w.build()
	err := w.iw.Write(rec)
	rec.Release()
	if err == nil {
		err = w.bw.Flush()
	}
	if err != nil {
		w.err = fmt.Errorf("writing samples: %w", err)
		return w.err
	}
	w.n += int64(len(w.rows))
	w.rows = w.rows[:0]
	return nil
}

func (w *Writer) build() arrow.Record {
	n := len(w.rows)
	b := array.NewRecordBuilder(w.mem, w.sch)
	defer b.Release()
	b.Reserve(n)
	tb := b.Field(0).(*array.TimestampBuilder)
	sb := b.Field(1).(*array.StringBuilder)
	db := b.Field(2).(*array.StringBuilder)
	pb := b.Field(3).(*array.Float64Builder)
	eb := b.Field(4).(*array.Float64Builder)
	cb := b.Field(5).(*array.Float64Builder)
	ub := b.Field(6).(*array.Float64Builder)
	mb := b.Field(7).(*array.Int64Builder)
	kb := b.Field(8).(*array.Uint32Builder)
	hb := b.Field(9).(*array.Uint64Builder)
	rb := b.Field(10).(*array.Float64Builder)
	xb := b.Field(11).(*array.Float64Builder)
	f64 := func(fb *array.Float64Builder, ok bool, v float64) {
		if ok {
			fb.UnsafeAppend(v)
		} else {
			fb.UnsafeAppendBoolToBitmap(false)
		}
	}
	for i := range w.rows {
		s := &w.rows[i]
		tb.UnsafeAppend(arrow.Timestamp(s.T))
		sb.Append(s.Source)
		db.Append(s.Device)
		f64(pb, s.Has&HasPower != 0, s.PowerW)
		f64(eb, s.Has&HasEnergy != 0, s.EnergyJ)
		f64(cb, s.Has&HasTemp != 0, s.TempC)
		f64(ub, s.Has&HasUtil != 0, s.UtilPct)
		if s.Has&HasMem != 0 {
			mb.UnsafeAppend(s.MemUsedBytes)
		} else {
			mb.UnsafeAppendBoolToBitmap(false)
		}
		if s.Has&HasClock != 0 {
			kb.UnsafeAppend(s.SMClockMHz)
		} else {
			kb.UnsafeAppendBoolToBitmap(false)
		}
		if s.Has&HasThrottle != 0 {
			hb.UnsafeAppend(s.Throttle)
		} else {
			hb.UnsafeAppendBoolToBitmap(false)
		}
		f64(rb, s.Has&HasCPUTime != 0, s.RunCPUS)
		f64(xb, s.Has&HasCPUTime != 0, s.MachineCPUS)
	}
	return b.NewRecord()
}

// Close writes the buffered rows, the end-of-stream marker and the trailer
// t (its Rows is filled in). It does not close the underlying writer.
func (w *Writer) Close(t Trailer) error {
	if err := w.Flush(); err != nil {
		return err
	}
	if err := w.iw.Close(); err != nil {
		w.err = fmt.Errorf("closing sample stream: %w", err)
		return w.err
	}
	t.Rows = w.n
	if t.Warnings == nil {
		t.Warnings = []string{}
	}
	js, err := json.Marshal(t)
	if err != nil {
		return err
	}
	var hdr [12]byte
	copy(hdr[:], trailerMagic)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(js)))
	w.bw.Write(hdr[:])
	w.bw.Write(js)
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("writing sample trailer: %w", err)
		return w.err
	}
	w.err = fmt.Errorf("sample stream closed")
	return nil
}

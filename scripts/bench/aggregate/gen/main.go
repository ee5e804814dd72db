// Command gen writes the benchmark's synthetic sample stream in three forms
// holding the same rows: Arrow IPC (samples.arrows, what llem-sample writes),
// Parquet (samples.parquet, for DuckDB) and numpy .npy columns (for pandas,
// which has no Arrow/Parquet reader on Debian without pyarrow), plus
// windows.csv. Memory stays flat: rows are produced and written a batch at a
// time.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

var devices = []struct{ name, source string }{
	{"GPU-6f1c2a7e-0000-4000-8000-000000000001", "nvml"},
	{"GPU-6f1c2a7e-0000-4000-8000-000000000002", "nvml"},
	{"package-0", "rapl"},
	{"dram-0", "rapl"},
}

type npy struct {
	f *os.File
	w *bufio.Writer
}

// newNpy writes a .npy v1.0 header for a 1-D array of n elements of descr.
func newNpy(path, descr string, n int64) (*npy, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }", descr, n)
	pad := 64 - (10+len(h)+1)%64
	h += strings.Repeat(" ", pad) + "\n"
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("\x93NUMPY\x01\x00")
	binary.Write(w, binary.LittleEndian, uint16(len(h)))
	w.WriteString(h)
	return &npy{f, w}, nil
}

func (n *npy) close() error {
	if err := n.w.Flush(); err != nil {
		return err
	}
	return n.f.Close()
}

func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

func main() {
	rows := flag.Int64("rows", 1e7, "rows to write (one per device per tick)")
	interval := flag.Duration("interval", 10e6, "sampling interval")
	windows := flag.Int("windows", 10000, "windows to write")
	out := flag.String("out", ".", "output directory")
	formats := flag.String("formats", "arrows,parquet,npy", "forms to write")
	flag.Parse()
	if err := run(*rows, int64(*interval), *windows, *out, *formats); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(rows, interval int64, nWin int, out, formats string) error {
	const batch = 1 << 16
	nd := int64(len(devices))
	rows = rows / nd * nd
	ticks := rows / nd
	t0 := int64(1_764_300_000_000_000_000)

	devDict := array.NewStringBuilder(memory.DefaultAllocator)
	srcDict := array.NewStringBuilder(memory.DefaultAllocator)
	for _, d := range devices {
		devDict.Append(d.name)
	}
	for _, s := range []string{"nvml", "rapl"} {
		srcDict.Append(s)
	}
	devD, srcD := devDict.NewArray(), srcDict.NewArray()
	dictT := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	md := arrow.NewMetadata([]string{"interval_ns", "sampler"}, []string{fmt.Sprint(interval), "bench/gen"})
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "t", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
		{Name: "source", Type: dictT},
		{Name: "device", Type: dictT},
		{Name: "power_w", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "energy_j", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, &md)

	want := func(f string) bool { return strings.Contains(formats, f) }
	var aw *ipc.Writer
	var af *os.File
	var bw *bufio.Writer
	if want("arrows") {
		f, err := os.Create(filepath.Join(out, "samples.arrows"))
		if err != nil {
			return err
		}
		af = f
		bw = bufio.NewWriterSize(f, 4<<20)
		aw = ipc.NewWriter(bw, ipc.WithSchema(schema))
	}
	var pw *pqarrow.FileWriter
	var pschema *arrow.Schema
	if want("parquet") {
		f, err := os.Create(filepath.Join(out, "samples.parquet"))
		if err != nil {
			return err
		}
		// DuckDB reads plain strings fastest; floats without dictionary
		// encoding convert about 4× faster.
		pschema = arrow.NewSchema([]arrow.Field{
			{Name: "t", Type: arrow.PrimitiveTypes.Int64},
			{Name: "device", Type: arrow.BinaryTypes.String},
			{Name: "power_w", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
			{Name: "energy_j", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		}, nil)
		props := parquet.NewWriterProperties(parquet.WithDictionaryDefault(false), parquet.WithDictionaryFor("device", true),
			parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(1<<20))
		pw, err = pqarrow.NewFileWriter(pschema, f, props, pqarrow.DefaultWriterProps())
		if err != nil {
			return err
		}
	}
	var nT, nD, nP, nE *npy
	if want("npy") {
		var err error
		if nT, err = newNpy(filepath.Join(out, "t.npy"), "<i8", rows); err != nil {
			return err
		}
		if nD, err = newNpy(filepath.Join(out, "device.npy"), "|i1", rows); err != nil {
			return err
		}
		if nP, err = newNpy(filepath.Join(out, "power_w.npy"), "<f8", rows); err != nil {
			return err
		}
		if nE, err = newNpy(filepath.Join(out, "energy_j.npy"), "<f8", rows); err != nil {
			return err
		}
	}

	rng := rand.New(rand.NewPCG(42, 7))
	cum := make([]float64, nd)
	prevP := make([]float64, nd)
	ts := make([]int64, 0, batch)
	dv := make([]int8, 0, batch)
	sv := make([]int8, 0, batch)
	pv := make([]float64, 0, batch)
	ev := make([]float64, 0, batch)
	devNames := make([]string, 0, batch)
	flush := func() error {
		n := len(ts)
		if n == 0 {
			return nil
		}
		if aw != nil || pw != nil {
			tArr := array.NewData(&arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(ts))}, nil, 0, 0)
			idx := func(v []int8) arrow.Array {
				return array.NewInt8Data(array.NewData(arrow.PrimitiveTypes.Int8, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(v))}, nil, 0, 0))
			}
			f64 := func(v []float64) arrow.Array {
				return array.NewFloat64Data(array.NewData(arrow.PrimitiveTypes.Float64, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(v))}, nil, 0, 0))
			}
			if aw != nil {
				cols := []arrow.Array{array.MakeFromData(tArr), array.NewDictionaryArray(dictT, idx(sv), srcD),
					array.NewDictionaryArray(dictT, idx(dv), devD), f64(pv), f64(ev)}
				rec := array.NewRecord(schema, cols, int64(n))
				if err := aw.Write(rec); err != nil {
					return err
				}
				rec.Release()
			}
			if pw != nil {
				sb := array.NewStringBuilder(memory.DefaultAllocator)
				sb.AppendValues(devNames, nil)
				ti := array.NewInt64Data(array.NewData(arrow.PrimitiveTypes.Int64, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(ts))}, nil, 0, 0))
				rec := array.NewRecord(pschema, []arrow.Array{ti, sb.NewArray(), f64(pv), f64(ev)}, int64(n))
				if err := pw.WriteBuffered(rec); err != nil {
					return err
				}
				rec.Release()
			}
		}
		if nT != nil {
			nT.w.Write(bytesOf(ts))
			nD.w.Write(bytesOf(dv))
			nP.w.Write(bytesOf(pv))
			nE.w.Write(bytesOf(ev))
		}
		ts, dv, sv, pv, ev, devNames = ts[:0], dv[:0], sv[:0], pv[:0], ev[:0], devNames[:0]
		return nil
	}
	for k := int64(0); k < ticks; k++ {
		t := t0 + k*interval
		for d := int64(0); d < nd; d++ {
			base := []float64{300, 280, 90, 12}[d]
			// load that changes on seconds-to-minutes scales plus sensor noise
			p := base + 0.4*base*math.Sin(float64(k)*float64(interval)/1e9/37.0+float64(d)) + rng.NormFloat64()*base*0.02
			if k > 0 {
				cum[d] += (prevP[d] + p) / 2 * float64(interval) / 1e9
			}
			prevP[d] = p
			ts = append(ts, t)
			dv = append(dv, int8(d))
			src := int8(0)
			if devices[d].source == "rapl" {
				src = 1
			}
			sv = append(sv, src)
			pv = append(pv, p)
			ev = append(ev, cum[d])
			devNames = append(devNames, devices[d].name)
		}
		if len(ts) >= batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		af.Close()
	}
	if pw != nil {
		if err := pw.Close(); err != nil {
			return err
		}
	}
	for _, n := range []*npy{nT, nD, nP, nE} {
		if n != nil {
			if err := n.close(); err != nil {
				return err
			}
		}
	}
	// Windows inside the stream's span, 1 s to 10 min long, in random order.
	wf, err := os.Create(filepath.Join(out, "windows.csv"))
	if err != nil {
		return err
	}
	ww := bufio.NewWriter(wf)
	fmt.Fprintln(ww, "start_ns,end_ns")
	span := (ticks - 1) * interval
	for i := 0; i < nWin; i++ {
		l := int64(1e9) + rng.Int64N(int64(599e9))
		l = min(l, span/2)
		a := t0 + rng.Int64N(span-l)
		fmt.Fprintf(ww, "%d,%d\n", a, a+l)
	}
	if err := ww.Flush(); err != nil {
		return err
	}
	return wf.Close()
}

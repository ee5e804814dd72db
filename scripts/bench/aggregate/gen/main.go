// Command gen writes the benchmark's synthetic sample stream in three forms
// holding the same rows: Arrow IPC (samples.arrows, what llem-sample writes),
// Parquet (samples.parquet, for DuckDB) and numpy .npy columns (for pandas,
// which has no Arrow/Parquet reader on Debian without pyarrow), plus
// windows.csv and devices.csv (dev,device: the names behind the one-byte
// device key of the Parquet and .npy forms). Memory stays flat: rows are produced and written a batch at a
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

// sinks are the open outputs, one per form asked for (nil when not).
type sinks struct {
	schema, pschema *arrow.Schema
	dictT           *arrow.DictionaryType
	devD, srcD      arrow.Array
	aw              *ipc.Writer
	af              *os.File
	bw              *bufio.Writer
	pw              *pqarrow.FileWriter
	nT, nD, nP, nE  *npy
}

func run(rows, interval int64, nWin int, out, formats string) error {
	nd := int64(len(devices))
	rows = rows / nd * nd
	ticks := rows / nd
	t0 := int64(1_764_300_000_000_000_000)
	sk, err := openSinks(out, formats, rows, interval)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(42, 7))
	if err := sk.samples(rng, t0, ticks, interval); err != nil {
		return err
	}
	if err := sk.close(); err != nil {
		return err
	}
	if err := writeDevices(filepath.Join(out, "devices.csv")); err != nil {
		return err
	}
	return writeWindows(filepath.Join(out, "windows.csv"), rng, t0, ticks, interval, nWin)
}

// writeDevices writes the dimension table behind the Parquet file's dev
// key: dev,device.
func writeDevices(path string) error {
	var b strings.Builder
	b.WriteString("dev,device\n")
	for i, d := range devices {
		fmt.Fprintf(&b, "%d,%s\n", i, d.name)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// openSinks creates the files of the forms asked for.
func openSinks(out, formats string, rows, interval int64) (*sinks, error) {
	sk := &sinks{}
	devDict := array.NewStringBuilder(memory.DefaultAllocator)
	srcDict := array.NewStringBuilder(memory.DefaultAllocator)
	for _, d := range devices {
		devDict.Append(d.name)
	}
	for _, s := range []string{"nvml", "rapl"} {
		srcDict.Append(s)
	}
	sk.devD, sk.srcD = devDict.NewArray(), srcDict.NewArray()
	sk.dictT = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	md := arrow.NewMetadata([]string{"interval_ns", "sampler"}, []string{fmt.Sprint(interval), "bench/gen"})
	sk.schema = arrow.NewSchema([]arrow.Field{
		{Name: "t", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
		{Name: "source", Type: sk.dictT},
		{Name: "device", Type: sk.dictT},
		{Name: "power_w", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "energy_j", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, &md)

	want := func(f string) bool { return strings.Contains(formats, f) }
	if want("arrows") {
		f, err := os.Create(filepath.Join(out, "samples.arrows"))
		if err != nil {
			return nil, err
		}
		sk.af = f
		sk.bw = bufio.NewWriterSize(f, 4<<20)
		sk.aw = ipc.NewWriter(sk.bw, ipc.WithSchema(sk.schema))
	}
	if want("parquet") {
		if err := sk.openParquet(filepath.Join(out, "samples.parquet")); err != nil {
			return nil, err
		}
	}
	if want("npy") {
		var err error
		for _, c := range []struct {
			dst         **npy
			name, descr string
		}{{&sk.nT, "t.npy", "<i8"}, {&sk.nD, "device.npy", "|i1"}, {&sk.nP, "power_w.npy", "<f8"}, {&sk.nE, "energy_j.npy", "<f8"}} {
			if *c.dst, err = newNpy(filepath.Join(out, c.name), c.descr, rows); err != nil {
				return nil, err
			}
		}
	}
	return sk, nil
}

func (sk *sinks) openParquet(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	// DuckDB reads plain strings fastest; floats without dictionary
	// encoding convert about 4× faster. dev is the device as a one-byte
	// key (its index in the devices list, what llem's Arrow dictionary
	// holds), the column a DuckDB user would group and join on; device is
	// the name, for the naive query.
	sk.pschema = arrow.NewSchema([]arrow.Field{
		{Name: "t", Type: arrow.PrimitiveTypes.Int64},
		{Name: "dev", Type: arrow.PrimitiveTypes.Int8},
		{Name: "device", Type: arrow.BinaryTypes.String},
		{Name: "power_w", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "energy_j", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	props := parquet.NewWriterProperties(parquet.WithDictionaryDefault(false), parquet.WithDictionaryFor("device", true),
		parquet.WithDictionaryFor("dev", true),
		parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(1<<20))
	sk.pw, err = pqarrow.NewFileWriter(sk.pschema, f, props, pqarrow.DefaultWriterProps())
	return err
}

// cols is one batch of rows in columns.
type cols struct {
	ts       []int64
	dv, sv   []int8
	pv, ev   []float64
	devNames []string
}

// samples produces the rows, a batch at a time, into every sink.
func (sk *sinks) samples(rng *rand.Rand, t0, ticks, interval int64) error {
	const batch = 1 << 16
	nd := int64(len(devices))
	cum := make([]float64, nd)
	prevP := make([]float64, nd)
	c := &cols{ts: make([]int64, 0, batch), dv: make([]int8, 0, batch), sv: make([]int8, 0, batch),
		pv: make([]float64, 0, batch), ev: make([]float64, 0, batch), devNames: make([]string, 0, batch)}
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
			src := int8(0)
			if devices[d].source == "rapl" {
				src = 1
			}
			c.ts, c.dv, c.sv = append(c.ts, t), append(c.dv, int8(d)), append(c.sv, src)
			c.pv, c.ev, c.devNames = append(c.pv, p), append(c.ev, cum[d]), append(c.devNames, devices[d].name)
		}
		if len(c.ts) >= batch {
			if err := sk.flush(c); err != nil {
				return err
			}
		}
	}
	return sk.flush(c)
}

// flush writes the batch c to every sink and empties it.
func (sk *sinks) flush(c *cols) error {
	n := len(c.ts)
	if n == 0 {
		return nil
	}
	f64 := func(v []float64) arrow.Array {
		return array.NewFloat64Data(array.NewData(arrow.PrimitiveTypes.Float64, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(v))}, nil, 0, 0))
	}
	if sk.aw != nil {
		tArr := array.NewData(&arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.ts))}, nil, 0, 0)
		idx := func(v []int8) arrow.Array {
			return array.NewInt8Data(array.NewData(arrow.PrimitiveTypes.Int8, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(v))}, nil, 0, 0))
		}
		cs := []arrow.Array{array.MakeFromData(tArr), array.NewDictionaryArray(sk.dictT, idx(c.sv), sk.srcD),
			array.NewDictionaryArray(sk.dictT, idx(c.dv), sk.devD), f64(c.pv), f64(c.ev)}
		rec := array.NewRecord(sk.schema, cs, int64(n))
		if err := sk.aw.Write(rec); err != nil {
			return err
		}
		rec.Release()
	}
	if sk.pw != nil {
		sb := array.NewStringBuilder(memory.DefaultAllocator)
		sb.AppendValues(c.devNames, nil)
		ti := array.NewInt64Data(array.NewData(arrow.PrimitiveTypes.Int64, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.ts))}, nil, 0, 0))
		di := array.NewInt8Data(array.NewData(arrow.PrimitiveTypes.Int8, n, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(c.dv))}, nil, 0, 0))
		rec := array.NewRecord(sk.pschema, []arrow.Array{ti, di, sb.NewArray(), f64(c.pv), f64(c.ev)}, int64(n))
		if err := sk.pw.WriteBuffered(rec); err != nil {
			return err
		}
		rec.Release()
	}
	if sk.nT != nil {
		sk.nT.w.Write(bytesOf(c.ts))
		sk.nD.w.Write(bytesOf(c.dv))
		sk.nP.w.Write(bytesOf(c.pv))
		sk.nE.w.Write(bytesOf(c.ev))
	}
	c.ts, c.dv, c.sv, c.pv, c.ev, c.devNames = c.ts[:0], c.dv[:0], c.sv[:0], c.pv[:0], c.ev[:0], c.devNames[:0]
	return nil
}

// close ends every sink.
func (sk *sinks) close() error {
	if sk.aw != nil {
		if err := sk.aw.Close(); err != nil {
			return err
		}
		if err := sk.bw.Flush(); err != nil {
			return err
		}
		sk.af.Close()
	}
	if sk.pw != nil {
		if err := sk.pw.Close(); err != nil {
			return err
		}
	}
	for _, n := range []*npy{sk.nT, sk.nD, sk.nP, sk.nE} {
		if n != nil {
			if err := n.close(); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeWindows writes windows inside the stream's span, 1 s to 10 min
// long, in random order.
func writeWindows(path string, rng *rand.Rand, t0, ticks, interval int64, nWin int) error {
	wf, err := os.Create(path)
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

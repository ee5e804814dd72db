package power

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/apache/arrow/go/v17/arrow"
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
	// The run's and the machine's cumulative busy CPU seconds (nil in
	// streams written before the columns existed: every row missing).
	RunCPU     []float64
	RunCPUOK   []bool
	MachineCPU []float64
	MachineOK  []bool
	Record     arrow.Record // the underlying batch
}

// Reader streams a sample file back, one record batch at a time. It is the
// one reader of sample streams: llem-aggregate, llem-report, llem-exec and
// the tests all read through it. Besides the streams llem-sample writes it
// reads those of other samplers in the same long format (see decode.go):
// t as timestamp of any unit or int64 ns, no source column, device and
// source as dictionaries, readings as float32.
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
	tbuf    []int64  // t converted to ns, when the stream's unit is not ns
	thrBuf  []uint64 // throttle widened to uint64, when stored narrower
	devCode []int32  // device dictionary code → index into devs, per batch
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
	rd, err := newIPCReader(br)
	if err != nil {
		return nil, fmt.Errorf("%s: not an Arrow IPC stream: %w", name, err)
	}
	r := &Reader{name: name, br: br, rd: rd, devIdx: map[string]int32{}}
	sc := rd.Schema()
	// source may be missing (a stream of another sampler): the device's
	// name tells it then.
	for _, c := range []string{ColT, ColDevice, ColPowerW, ColEnergyJ} {
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

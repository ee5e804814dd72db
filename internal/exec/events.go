package exec

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/llem/llem/internal/record"
)

// maxEventLine bounds one stdout line; longer ones are kept in worker.log as garbage.
const maxEventLine = 4 << 20

// logWriter is worker.log: stderr and garbage stdout lines, shared by two
// goroutines, capped so a runaway worker cannot fill the disk.
type logWriter struct {
	mu        sync.Mutex
	w         *bufio.Writer
	n, max    int64
	truncated bool
	lastLine  []byte // last non-empty stderr line, for error messages
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := bytes.LastIndexByte(bytes.TrimRight(p, "\n"), '\n'); i >= 0 || len(l.lastLine) < 512 {
		seg := bytes.TrimSpace(p[i+1:])
		if len(seg) > 0 {
			if len(seg) > 300 {
				seg = seg[:300]
			}
			l.lastLine = append(l.lastLine[:0], seg...)
		}
	}
	l.write(p)
	return len(p), nil
}

func (l *logWriter) write(p []byte) {
	if l.truncated {
		return
	}
	if l.n+int64(len(p)) > l.max {
		p = p[:l.max-l.n]
		l.w.Write(p)
		fmt.Fprintf(l.w, "\n[llem-exec: worker.log cut at %d bytes]\n", l.max)
		l.truncated = true
		return
	}
	l.n += int64(len(p))
	l.w.Write(p)
}

func (l *logWriter) garbage(lineNo int, line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.write([]byte(fmt.Sprintf("[llem-exec: stdout line %d is not a protocol event] ", lineNo)))
	l.write(line)
	l.write([]byte("\n"))
}

// collector reads the worker's stdout line by line, keeps the events in
// events.ndjson and assembles what the run record needs. Event order does not
// matter: phases are built from their (phase, edge) pairs.
type collector struct {
	events *bufio.Writer
	log    *logWriter

	buf    []byte
	lineNo int
	lastT  int64

	hello    *record.Event
	model    *record.ModelFacts
	edges    map[string]*record.Window
	starts   map[string]bool
	ends     map[string]bool
	totals   *record.Totals
	warmup   *record.Warmup
	memory   []record.Memory
	warnings []record.Flag
	errEv    *record.Event
	done     bool

	garbageN, garbageFirst int
	outOfOrder             bool
	afterDone              bool
	phaseDup               bool
}

func newCollector(events io.Writer, log *logWriter) *collector {
	return &collector{events: bufio.NewWriterSize(events, 64<<10), log: log,
		edges: map[string]*record.Window{}, starts: map[string]bool{}, ends: map[string]bool{}}
}

func (c *collector) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.buf = append(c.buf, p...)
			if len(c.buf) > maxEventLine {
				c.line(c.buf)
				c.buf = c.buf[:0]
			}
			break
		}
		if len(c.buf) > 0 {
			c.buf = append(c.buf, p[:i]...)
			c.line(c.buf)
			c.buf = c.buf[:0]
		} else {
			c.line(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

// finish handles a last line without newline.
func (c *collector) finish() error {
	if len(c.buf) > 0 {
		c.line(c.buf)
		c.buf = nil
	}
	return c.events.Flush()
}

func (c *collector) line(raw []byte) {
	c.lineNo++
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return
	}
	var ev record.Event
	ok := raw[0] == '{' && json.Unmarshal(raw, &ev) == nil && knownEvent(ev.Event)
	if !ok {
		c.garbageN++
		if c.garbageFirst == 0 {
			c.garbageFirst = c.lineNo
		}
		c.log.garbage(c.lineNo, raw)
		return
	}
	c.events.Write(raw)
	c.events.WriteByte('\n')
	if ev.T < c.lastT {
		c.outOfOrder = true
	}
	if ev.T > c.lastT {
		c.lastT = ev.T
	}
	if c.done && ev.Event != record.EventDone {
		c.afterDone = true
	}
	switch ev.Event {
	case record.EventHello:
		e := ev
		c.hello = &e
	case record.EventModel:
		c.model = ev.Model
	case record.EventPhase:
		w := c.edges[ev.Phase]
		if w == nil {
			w = &record.Window{}
			c.edges[ev.Phase] = w
		}
		switch ev.Edge {
		case record.EdgeStart:
			if c.starts[ev.Phase] {
				c.phaseDup = true
			}
			c.starts[ev.Phase] = true
			w.StartNS = ev.T
		case record.EdgeEnd:
			if c.ends[ev.Phase] {
				c.phaseDup = true
			}
			c.ends[ev.Phase] = true
			w.EndNS = ev.T
		}
	case record.EventMemory:
		c.memory = ev.Memory
	case record.EventWarning:
		c.warnings = append(c.warnings, record.Flag{Code: flagCode(ev.Code), Message: nonEmpty(ev.Message, ev.Code), Hint: ev.Hint})
	case record.EventError:
		if c.errEv == nil {
			e := ev
			c.errEv = &e
		}
	case record.EventDone:
		c.done = true
		c.totals = ev.Totals
		c.warmup = ev.Warmup
	}
}

func knownEvent(e string) bool {
	switch e {
	case record.EventHello, record.EventModel, record.EventPhase, record.EventRequest,
		record.EventMemory, record.EventWarning, record.EventError, record.EventDone:
		return true
	}
	return false
}

// phases returns the complete, well-ordered windows; others are null and flagged.
func (c *collector) phases() (record.Phases, []record.Flag) {
	var ph record.Phases
	var flags []record.Flag
	get := func(name string) *record.Window {
		w := c.edges[name]
		if w == nil {
			return nil
		}
		if !c.starts[name] || !c.ends[name] || w.EndNS < w.StartNS {
			flags = append(flags, record.Flag{Code: "phase_window_invalid", Phase: name,
				Message: fmt.Sprintf("the worker's %s phase has no valid start/end pair; its window is null", name)})
			return nil
		}
		cp := *w
		return &cp
	}
	ph.Load, ph.Warmup, ph.Measure = get(record.PhaseLoad), get(record.PhaseWarmup), get(record.PhaseMeasure)
	return ph, flags
}

func (c *collector) flags() []record.Flag {
	fl := append([]record.Flag(nil), c.warnings...)
	if c.garbageN > 0 {
		fl = append(fl, record.Flag{Code: "worker_garbage_output",
			Message: fmt.Sprintf("%d stdout line(s) of the worker were not protocol events (first: line %d); kept in worker.log", c.garbageN, c.garbageFirst),
			Hint:    "workers must print only events to stdout; send other output to stderr"})
	}
	if c.outOfOrder {
		fl = append(fl, record.Flag{Code: "events_out_of_order", Message: "the worker's event timestamps went backwards; phases were assembled from their start/end pairs"})
	}
	if c.afterDone {
		fl = append(fl, record.Flag{Code: "events_after_done", Message: "the worker sent events after its done event"})
	}
	if c.phaseDup {
		fl = append(fl, record.Flag{Code: "phase_edge_repeated", Message: "the worker sent a phase edge twice; the last one was kept"})
	}
	return fl
}

func flagCode(s string) string {
	b := []byte{}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9' && len(b) > 0, r == '_' && len(b) > 0:
			b = append(b, byte(r))
		case r >= 'A' && r <= 'Z':
			b = append(b, byte(r-'A'+'a'))
		default:
			if len(b) > 0 {
				b = append(b, '_')
			}
		}
	}
	if len(b) == 0 {
		return "worker_warning"
	}
	return string(b)
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	if b != "" {
		return b
	}
	return "(no message)"
}

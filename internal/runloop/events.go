package runloop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/llem/llem/internal/record"
)

// maxEventLine bounds one stdout line; longer ones are kept in worker.log as garbage.
const maxEventLine = 4 << 20

// What a worker can put into its run record is bounded, so that a worker
// that floods warnings or sends a huge error message cannot make a run
// record too large for the tools downstream (record.MaxLineBytes): an event
// other than a request whose line is longer than maxRecordedEvent is kept in
// events.ndjson but not used (flagged); at most maxWarnings warnings are
// kept (the rest counted); flag texts are clipped to maxFlagText bytes.
const (
	maxRecordedEvent = 64 << 10
	maxWarnings      = 100
	maxFlagText      = 1 << 10
)

// DefaultEventsMax bounds events.ndjson (Options.EventsMax): a worker that
// writes more protocol events than this fails its run instead of filling the
// disk. A long run of a real backend writes a few hundred bytes a request.
const DefaultEventsMax = 1 << 30

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
	oversized, dropped     int
	eventsN, eventsMax     int64
	eventsCut              bool
	onCut                  func()
	outOfOrder             bool
	afterDone              bool
	phaseDup               bool
}

func newCollector(events io.Writer, log *logWriter, max int64) *collector {
	if max <= 0 {
		max = DefaultEventsMax
	}
	return &collector{events: bufio.NewWriterSize(events, 64<<10), log: log, eventsMax: max,
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
	if c.eventsN+int64(len(raw))+1 > c.eventsMax {
		if !c.eventsCut && c.onCut != nil {
			c.onCut() // a worker past the limit is stopped, not waited for
		}
		c.eventsCut = true
	} else {
		c.eventsN += int64(len(raw)) + 1
		c.events.Write(raw)
		c.events.WriteByte('\n')
	}
	if ev.Event != record.EventRequest && len(raw) > maxRecordedEvent {
		c.oversized++
		return
	}
	if ev.T < c.lastT {
		c.outOfOrder = true
	}
	if ev.T > c.lastT {
		c.lastT = ev.T
	}
	if c.done && ev.Event != record.EventDone {
		c.afterDone = true
	}
	c.apply(ev)
}

// apply takes what the run record needs from one event.
func (c *collector) apply(ev record.Event) {
	switch ev.Event {
	case record.EventHello:
		e := ev
		e.Version = clip(e.Version, 256)
		c.hello = &e
	case record.EventModel:
		c.model = ev.Model
	case record.EventPhase:
		c.edge(ev)
	case record.EventMemory:
		c.memory = ev.Memory
	case record.EventWarning:
		if len(c.warnings) >= maxWarnings {
			c.dropped++
			break
		}
		c.warnings = append(c.warnings, record.Flag{Code: clip(flagCode(ev.Code), 64), Message: clip(nonEmpty(ev.Message, ev.Code), maxFlagText), Hint: clip(ev.Hint, maxFlagText)})
	case record.EventError:
		if c.errEv == nil {
			e := ev
			e.Code, e.Message, e.Hint = clip(e.Code, 64), clip(e.Message, maxFlagText), clip(e.Hint, maxFlagText)
			c.errEv = &e
		}
	case record.EventDone:
		c.done = true
		c.totals = ev.Totals
		c.warmup = ev.Warmup
	}
}

// edge records a phase event's start or end; a repeated edge replaces the earlier one.
func (c *collector) edge(ev record.Event) {
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
	ph.Idle, ph.Cooldown = get(record.PhaseIdle), get(record.PhaseCooldown) // serving runs only
	return ph, flags
}

func (c *collector) flags() []record.Flag {
	fl := append([]record.Flag(nil), c.warnings...)
	if c.garbageN > 0 {
		fl = append(fl, record.Flag{Code: "worker_garbage_output",
			Message: fmt.Sprintf("%d stdout line(s) of the worker were not protocol events (first: line %d); kept in worker.log", c.garbageN, c.garbageFirst),
			Hint:    "workers must print only events to stdout; send other output to stderr"})
	}
	if c.dropped > 0 {
		fl = append(fl, record.Flag{Code: "worker_warnings_dropped",
			Message: fmt.Sprintf("the worker sent %d warnings; the first %d are kept here, all are in events.ndjson", maxWarnings+c.dropped, maxWarnings)})
	}
	if c.oversized > 0 {
		fl = append(fl, record.Flag{Code: "worker_event_oversized",
			Message: fmt.Sprintf("%d event(s) of the worker were longer than %d bytes and were not used (kept in events.ndjson)", c.oversized, maxRecordedEvent)})
	}
	if c.eventsCut {
		fl = append(fl, record.Flag{Code: "events_cut",
			Message: fmt.Sprintf("the worker wrote more than %d bytes of events; events.ndjson was cut there", c.eventsMax)})
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

// clip cuts s to at most n bytes, at a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
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

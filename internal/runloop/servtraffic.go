package runloop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/llem/llem/internal/load"
	"github.com/llem/llem/internal/record"
)

// traffic sends the plan's requests to base (…/v1), writes every request's
// record to requests.ndjson, emits the warmup, measure and cooldown edges
// at their places on the schedule, and keeps the measure window's totals
// for the done event. A server that exits stops the traffic at once.
func (s *serveExecution) traffic(ctx context.Context, base, model string) (*record.Error, error) {
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	if s.srv != nil {
		go func() {
			select {
			case <-s.srv.done:
				stop()
			case <-tctx.Done():
			}
		}()
	}
	p := s.plan
	conns := max(p.plan.MaxInFlight, p.plan.Concurrency, 64)
	tr := load.NewTransport(conns)
	defer tr.CloseIdleConnections()
	c := &load.Client{HTTP: &http.Client{Transport: tr}, Endpoint: base + "/completions", Chat: p.api == "chat",
		Model: model, Timeout: p.requestTimeout, Now: load.Clock()}
	if c.Chat {
		c.Endpoint = base + "/chat/completions"
	}
	tally := &requestTally{}
	t0 := c.Now()
	_, err := load.Run(tctx, p.plan, c, p.work, io.MultiWriter(s.reqf, tally), &load.Summary{Offered: p.offered})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", requestsFile, err)
	}
	if err := tally.err(); err != nil {
		return nil, err
	}
	t0 = tally.start(p, t0)
	// The schedule's last gap may outlast its last request: the cooldown
	// ends at its fixed time, as the schedule says.
	if rem := time.Duration(t0 + p.cooldownEnd - c.Now()); tctx.Err() == nil {
		if rerr := s.wait(tctx, rem, "under traffic"); rerr != nil {
			return rerr, nil
		}
	}
	s.edges(t0, c.Now())
	switch {
	case s.srv != nil && isClosed(s.srv.done):
		return s.exitedErr("under traffic"), nil
	case ctx.Err() != nil:
		return nil, nil
	}
	tot, sent, failed := tally.totals(p, t0)
	if tot.Requests == 0 {
		return &record.Error{Type: record.ErrRequestsFailed,
			Message: fmt.Sprintf("none of the %d requests sent in the measure window ended ok (%s)", sent, failed),
			Hint:    "see requests.ndjson in the run directory (status and error of each request) and server.log"}, nil
	}
	if unknown := tally.inputUnknown(p, t0); unknown > 0 {
		s.warn("input_tokens_partial", fmt.Sprintf("%d of the %d ok requests of the measure window came without the server's prompt token count; totals.input_tokens counts the others only", unknown, tot.Requests),
			"a server that sends usage (stream_options.include_usage) gives every count")
	}
	s.totals = &tot // the done event follows the server's stop
	return nil, nil
}

// edges emits the phase edges of the traffic that lie before end (all of
// them, unless the traffic was cut short).
func (s *serveExecution) edges(t0, end int64) {
	p := s.plan
	for _, e := range []struct {
		phase, edge string
		at          int64
	}{
		{record.PhaseWarmup, record.EdgeStart, 0}, {record.PhaseWarmup, record.EdgeEnd, p.measureStart},
		{record.PhaseMeasure, record.EdgeStart, p.measureStart}, {record.PhaseMeasure, record.EdgeEnd, p.measureEnd},
		{record.PhaseCooldown, record.EdgeStart, p.measureEnd}, {record.PhaseCooldown, record.EdgeEnd, p.cooldownEnd},
	} {
		if t0+e.at <= end {
			s.emit(record.Event{Event: record.EventPhase, T: t0 + e.at, Phase: e.phase, Edge: e.edge})
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// requestTally reads the request records as load.Run writes them and keeps
// what the phases and totals need of each.
type requestTally struct {
	buf   []byte
	reqs  []tallied
	bad   int
	first string
}

type tallied struct {
	id        int
	sched     int64 // t_scheduled; 0 in closed loop
	start     int64
	status    string
	in        *int
	out       int
	scheduled bool
}

func (t *requestTally) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			break
		}
		t.line(t.buf[:i])
		t.buf = t.buf[i+1:]
	}
	if len(t.buf) == 0 {
		t.buf = nil
	}
	return len(p), nil
}

func (t *requestTally) line(b []byte) {
	var r record.Request
	if err := json.Unmarshal(b, &r); err != nil {
		t.bad++
		if t.first == "" {
			t.first = err.Error()
		}
		return
	}
	tl := tallied{id: r.ID, start: r.TStartNS, status: r.Status, in: r.InputTokens, out: r.OutputTokens}
	if r.TScheduledNS != nil {
		tl.sched, tl.scheduled = *r.TScheduledNS, true
	}
	t.reqs = append(t.reqs, tl)
}

// err reports records that could not be read back (cannot happen with
// load.Run's encoding; a bug, not a measurement).
func (t *requestTally) err() error {
	if t.bad > 0 || len(t.buf) > 0 {
		return fmt.Errorf("%s: %d request record(s) unreadable (%s)", requestsFile, t.bad, t.first)
	}
	return nil
}

// start is the traffic's start on the client's clock: in open loop exactly
// the schedule's origin (a record's t_scheduled less its offset); in closed
// loop the reading taken just before load.Run started.
func (t *requestTally) start(p *servingPlan, before int64) int64 {
	for _, r := range t.reqs {
		if r.scheduled && r.id >= 0 && r.id < len(p.plan.Offsets) {
			return r.sched - p.plan.Offsets[r.id]
		}
	}
	return before
}

// measured says whether a request belongs to the measure window: by its
// scheduled offset in open loop, by its send time in closed loop.
func (t *requestTally) measured(p *servingPlan, t0 int64, r tallied) bool {
	at := r.start - t0
	if !p.closed && r.id >= 0 && r.id < len(p.plan.Offsets) {
		at = p.plan.Offsets[r.id]
	}
	return at >= p.measureStart && at < p.measureEnd
}

// inputUnknown counts the ok requests of the measure window without an
// input token count.
func (t *requestTally) inputUnknown(p *servingPlan, t0 int64) int {
	n := 0
	for _, r := range t.reqs {
		if r.status == record.ReqOK && r.in == nil && t.measured(p, t0, r) {
			n++
		}
	}
	return n
}

// totals are the measure window's: the requests sent in it that ended ok
// and their tokens (input tokens where the server reported them); sent
// counts every request sent in it, failed says how the others ended.
func (t *requestTally) totals(p *servingPlan, t0 int64) (tot record.Totals, sent int, failed string) {
	byStatus := map[string]int{}
	for _, r := range t.reqs {
		if !t.measured(p, t0, r) {
			continue
		}
		sent++
		if r.status != record.ReqOK {
			byStatus[r.status]++
			continue
		}
		tot.Requests++
		tot.OutputTokens += int64(r.out)
		if r.in != nil {
			tot.InputTokens += int64(*r.in)
		}
	}
	var parts []string
	for k, n := range byStatus {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(parts)
	return tot, sent, strings.Join(parts, ", ")
}

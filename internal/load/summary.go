package load

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/stats"
)

// Summary accumulates the figures of a run from its records, the way
// serving benchmarks compute them: latencies over successful requests only;
// TTFT from send to the first chunk with choices; E2E from send to the last
// such chunk; TPOT = (E2E − TTFT)/(output tokens − 1) for requests of more
// than one token; ITL pooled over every gap of every request; rates over
// the time from the first send to the last end.
type Summary struct {
	// Offered is the schedule's rate, requests/s (nil: closed loop).
	Offered *float64
	// LagWarn is the send-lag p99 above which the generator is said to have
	// fallen behind its schedule.
	LagWarn time.Duration

	requests, ok        int
	byStatus            map[string]int
	firstStart, lastEnd int64
	lastSend            int64
	inTokens, outTokens int64
	inKnown             int
	ttft, tpot, itl     []float64
	e2e, lag            []float64
}

// Add takes one record.
func (s *Summary) Add(r *record.Request) {
	if s.byStatus == nil {
		s.byStatus = map[string]int{}
	}
	if s.requests == 0 || r.TStartNS < s.firstStart {
		s.firstStart = r.TStartNS
	}
	if s.requests == 0 || r.TStartNS > s.lastSend {
		s.lastSend = r.TStartNS
	}
	s.lastEnd = max(s.lastEnd, r.TEndNS)
	s.requests++
	s.byStatus[r.Status]++
	if r.SendLagNS != nil {
		s.lag = append(s.lag, float64(*r.SendLagNS))
	}
	if r.Status != record.ReqOK || r.TFirstNS == nil {
		return
	}
	s.ok++
	s.outTokens += int64(r.OutputTokens)
	if r.InputTokens != nil {
		s.inTokens += int64(*r.InputTokens)
		s.inKnown++
	}
	ttft, e2e := float64(*r.TFirstNS-r.TStartNS), float64(r.TEndNS-r.TStartNS)
	s.ttft = append(s.ttft, ttft)
	s.e2e = append(s.e2e, e2e)
	if r.OutputTokens > 1 {
		s.tpot = append(s.tpot, (e2e-ttft)/float64(r.OutputTokens-1))
	}
	for _, g := range r.ITLNS {
		s.itl = append(s.itl, float64(g))
	}
}

// SendLagP99 is the 99th percentile of the send lag, in ns (NaN without lag figures).
func (s *Summary) SendLagP99() float64 {
	v := slices.Clone(s.lag)
	sort.Float64s(v)
	return stats.Percentile(v, 0.99)
}

// Print writes the summary for a person.
func (s *Summary) Print(w io.Writer, name string) {
	failed := s.requests - s.ok
	dur := float64(s.lastEnd-s.firstStart) * 1e-9
	fmt.Fprintf(w, "%s: %d requests in %s s: %d ok, %d failed%s\n", name, s.requests, num(dur, 2, s.requests > 0), s.ok, failed, s.failures())
	sendSpan := float64(s.lastSend-s.firstStart) * 1e-9
	offered := "—"
	if s.Offered != nil {
		offered = num(*s.Offered, 2, true) + "/s"
	}
	fmt.Fprintf(w, "  rate     offered %s, sent %s/s, completed %s/s\n", offered,
		num(float64(s.requests-1)/sendSpan, 2, sendSpan > 0), num(float64(s.ok)/dur, 2, dur > 0))
	in := "—"
	if s.inKnown > 0 {
		in = fmt.Sprintf("%d (%s/s)", s.inTokens, num(float64(s.inTokens)/dur, 1, dur > 0))
		if s.inKnown < s.ok {
			in += fmt.Sprintf(", from %d of %d requests", s.inKnown, s.ok)
		}
	}
	fmt.Fprintf(w, "  tokens   output %d (%s/s), input %s\n", s.outTokens, num(float64(s.outTokens)/dur, 1, dur > 0), in)
	fmt.Fprintf(w, "  %-9s %9s %9s %9s %9s %9s %9s %8s\n", "ms", "mean", "p50", "p90", "p99", "min", "max", "n")
	for _, row := range []struct {
		name string
		v    []float64
	}{{"TTFT", s.ttft}, {"TPOT", s.tpot}, {"ITL", s.itl}, {"E2E", s.e2e}, {"send lag", s.lag}} {
		l := stats.Latency(row.v) // sorts row.v in place: the summary is printed once
		fmt.Fprintf(w, "  %-9s %9s %9s %9s %9s %9s %9s %8d\n", row.name, ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Min), ms(l.Max), l.N)
	}
	if p99 := s.SendLagP99(); p99 > float64(s.LagWarn) {
		fmt.Fprintf(w, "%s: warning: the generator fell behind its schedule: send lag p99 %s ms > %s ms; "+
			"its figures understate the offered load (a busy machine, or too high a rate for one generator)\n",
			name, num(p99*1e-6, 3, true), num(float64(s.LagWarn)*1e-6, 3, true))
	}
}

// failures lists the failed requests by status, most frequent first.
func (s *Summary) failures() string {
	var kinds []string
	for k := range s.byStatus {
		if k != record.ReqOK {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return ""
	}
	sort.Slice(kinds, func(i, j int) bool {
		a, b := s.byStatus[kinds[i]], s.byStatus[kinds[j]]
		return a > b || a == b && kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, s.byStatus[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// num formats v with prec decimals, or "—" when it is not known.
func num(v float64, prec int, known bool) string {
	if !known || math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

// ms formats seconds as milliseconds.
func ms(v *float64) string {
	if v == nil {
		return "—"
	}
	return num(*v*1e3, 3, true)
}

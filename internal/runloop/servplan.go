package runloop

import (
	"fmt"
	"math"
	"time"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/load"
)

// servingPlan is a serving run's traffic: one load.Run whose schedule covers
// warmup, measure and cooldown, and where the phase edges fall on it, in ns
// from the traffic's start. The edges are fixed before the first request is
// sent: warmup = [0, measureStart), measure = [measureStart, measureEnd),
// cooldown = [measureEnd, cooldownEnd).
type servingPlan struct {
	plan    load.Plan
	work    *load.Workload
	closed  bool     // closed loop (concurrency): requests belong to phases by their send time
	offered *float64 // the schedule's rate, requests/s; nil in closed loop

	measureStart, measureEnd, cooldownEnd int64

	api            string
	startup        time.Duration
	requestTimeout time.Duration
	idle           time.Duration
}

// newServingPlan builds the traffic of cfg's serving section over the
// experiment's prompts (used in turn; a trace replaces the lengths).
//
// With duration_s the measure window is [warmup_s, warmup_s+duration_s)
// from the traffic's start, and cooldown_s follows it. With requests = N
// (open loop only) it spans the scheduled send times of requests k..k+N,
// k being the first scheduled at or after warmup_s: requests k..k+N-1 are
// measured, and cooldown_s follows the send time of request k+N.
//
// cfg is an effective config (config.Decode): its serving section has its
// defaults and obeys the serving rules (one of rate, concurrency and trace;
// one of duration_s and requests; a closed loop with duration_s).
func newServingPlan(cfg *config.Config, prompts []string) (*servingPlan, error) {
	sv := cfg.Serving
	p := &servingPlan{api: sv.API, startup: seconds(sv.StartupTimeoutS), requestTimeout: seconds(sv.RequestTimeoutS), idle: seconds(sv.IdleS)}
	seed := uint64(cfg.ArrivalSeed())
	p.work = &load.Workload{Output: load.Lengths{Median: max(cfg.MaxOutputTokens, 1)}, Input: load.Lengths{Median: max(cfg.MaxInputTokens, 1)},
		CharsPerToken: 1, Seed: seed, IgnoreEOS: cfg.Native != nil && cfg.Native.IgnoreEOS}
	if len(prompts) > 0 {
		p.work.Texts = prompts
	}
	if sv.Trace != nil {
		es, _, err := load.ReadTrace(*sv.Trace)
		if err != nil {
			return nil, err
		}
		p.work.Trace = es
	}
	if err := p.work.Prepare(); err != nil {
		return nil, err
	}
	if sv.Concurrency != nil {
		return p, p.closedLoop(sv)
	}
	return p, p.openLoop(sv, seed)
}

// closedLoop keeps concurrency requests in flight for warmup + duration +
// cooldown.
func (p *servingPlan) closedLoop(sv *config.Serving) error {
	p.closed = true
	w, d, c := nanos(sv.WarmupS), nanos(*sv.DurationS), nanos(sv.CooldownS)
	p.measureStart, p.measureEnd, p.cooldownEnd = w, w+d, w+d+c
	p.plan = load.Plan{Concurrency: *sv.Concurrency, Duration: time.Duration(p.cooldownEnd)}
	return nil
}

// openLoop computes the send times from the seed (or the trace) and puts
// the phase edges on them.
func (p *servingPlan) openLoop(sv *config.Serving, seed uint64) error {
	offsets := func(n int, limit int64) ([]int64, error) {
		if p.work.Trace != nil {
			return traceOffsets(p.work.Trace, n, limit), nil
		}
		burst := 1.0
		if sv.Burstiness != nil {
			burst = *sv.Burstiness
		}
		return load.Offsets(sv.Arrival, *sv.Rate, burst, n, limit, seed)
	}
	w, c := nanos(sv.WarmupS), nanos(sv.CooldownS)
	var err error
	if sv.DurationS != nil {
		p.measureStart, p.measureEnd, p.cooldownEnd = w, w+nanos(*sv.DurationS), w+nanos(*sv.DurationS)+c
		p.plan.Offsets, err = offsets(0, p.cooldownEnd)
	} else {
		err = p.requestWindow(offsets, w, c, *sv.Requests)
	}
	if err != nil {
		return err
	}
	if sv.MaxInFlight != nil {
		p.plan.MaxInFlight = *sv.MaxInFlight
	}
	if n := len(p.plan.Offsets); n > 1 && p.plan.Offsets[n-1] > 0 {
		r := float64(n-1) / (float64(p.plan.Offsets[n-1]) * 1e-9)
		p.offered = &r
	}
	return nil
}

// requestWindow places a window of n requests after warmup w: the schedule
// is drawn once to find request k (the first at or after w) and k+n, then
// cut at k+n's send time + cooldown c. Offsets depends on the seed alone,
// so every draw is a prefix of the same schedule.
func (p *servingPlan) requestWindow(offsets func(int, int64) ([]int64, error), w, c int64, n int) error {
	k := 0
	if w > 0 {
		before, err := offsets(0, w)
		if err != nil {
			return err
		}
		k = len(before)
	}
	head, err := offsets(k+n+1, 0)
	if err != nil {
		return err
	}
	if len(head) < k+n+1 {
		return fmt.Errorf("serving: the trace has %d requests; warmup and a window of %d requests need %d", len(head), n, k+n+1)
	}
	p.measureStart, p.measureEnd = head[k], head[k+n]
	p.cooldownEnd = p.measureEnd + c
	if c == 0 {
		p.plan.Offsets = head[:k+n]
		return nil
	}
	p.plan.Offsets, err = offsets(0, p.cooldownEnd)
	return err
}

// traceOffsets are the trace's send times, at most n (n > 0) and below
// limit (limit > 0).
func traceOffsets(es []load.Entry, n int, limit int64) []int64 {
	out := make([]int64, 0, len(es))
	for _, e := range es {
		if (n > 0 && len(out) == n) || (limit > 0 && e.OffsetNS >= limit) {
			break
		}
		out = append(out, e.OffsetNS)
	}
	return out
}

// trafficLength bounds how long the traffic runs: its schedule, then the
// longest a request may take.
func (p *servingPlan) trafficLength() time.Duration {
	return time.Duration(p.cooldownEnd) + p.requestTimeout
}

func nanos(s float64) int64 { return int64(math.Round(s * 1e9)) }

func seconds(s float64) time.Duration { return time.Duration(nanos(s)) }

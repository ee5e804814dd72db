package aggregate

import (
	"fmt"
	"math"
	"sort"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/stats"
)

// servingLimits are the serving flags' thresholds, defaults filled in.
type servingLimits struct {
	lagS, errors, saturation, trend, minRequests, minE2E float64
}

func (o Options) servingLimits() servingLimits {
	or := func(v, def float64) float64 {
		if v > 0 {
			return v
		}
		return def
	}
	return servingLimits{
		lagS:        or(o.LagThresholdS, DefaultLagThresholdS),
		errors:      or(o.ErrorThreshold, DefaultErrorThreshold),
		saturation:  or(o.SaturationRatio, DefaultSaturationRatio),
		trend:       or(o.TTFTTrendRatio, DefaultTTFTTrendRatio),
		minRequests: or(o.MinWindowRequests, DefaultMinWindowRequests),
		minE2E:      or(o.MinWindowE2E, DefaultMinWindowE2E),
	}
}

// servingFlags judges a serving run's measure window: a generator that fell
// behind its schedule, a saturated server, failed requests, a window too
// short for its rate or its latencies.
func servingFlags(e *record.Energy, sw *servingWindow, cfg *config.Serving, opt Options, flag func(record.Flag)) {
	lim := opt.servingLimits()
	m := e.Metrics
	mp := record.PhaseMeasure
	if p99 := m[record.MSendLagP99S]; p99 != nil && *p99 > lim.lagS {
		flag(record.Flag{Code: FlagGeneratorLagged, Phase: mp,
			Message: fmt.Sprintf("the load generator sent late: send lag p99 %.2f ms, above %.2f ms; the offered load was lower and burstier than scheduled", *p99*1e3, lim.lagS*1e3),
			Hint:    "run llem-load on a less busy machine or core, or split a high rate over several generators"})
	}
	offered, achieved := *m[record.MOfferedRateRPS], *m[record.MAchievedRateRPS]
	if offered > 0 && achieved < lim.saturation*offered && beyondEdgeNoise(offered, achieved, sw.w.DurationS(), m[record.ME2EMeanS]) {
		flag(record.Flag{Code: FlagSaturated, Phase: mp,
			Message: fmt.Sprintf("achieved %.3g requests/s, %.1f%% of the %.3g offered (below %.0f%%): the server did not keep up", achieved, 100*achieved/offered, offered, 100*lim.saturation),
			Hint:    "the figures describe an overloaded server whose queue grows; lower the rate to measure a steady state"})
	} else if first, last, ok := ttftTrend(sw.okSent); ok && last > lim.trend*first {
		flag(record.Flag{Code: FlagSaturated, Phase: mp,
			Message: fmt.Sprintf("TTFT rose across the window: median %.1f ms in its last quarter of requests, %.1f ms in its first (more than %.3g×): the queue was growing", last*1e3, first*1e3, lim.trend),
			Hint:    "the figures describe an overloaded server whose queue grows; lower the rate to measure a steady state"})
	}
	if n := len(sw.measured); n > 0 && float64(sw.failed)/float64(n) > lim.errors {
		flag(record.Flag{Code: FlagRequestErrors, Phase: mp,
			Message: fmt.Sprintf("%d of %d requests sent in the window failed (%.1f%%, above %.1f%%): %s; rates and latencies cover the ok ones", sw.failed, n, 100*float64(sw.failed)/float64(n), 100*lim.errors, failureKinds(sw.measured)),
			Hint:    "see the error of each failed request in requests.ndjson and the server log"})
	}
	windowTooShort(e, sw, cfg, lim, flag)
}

// beyondEdgeNoise reports whether fewer completions than sends in the window
// is more than its edges explain. The two counts differ by the requests in
// flight at the window's end minus those at its start; in a steady state
// both hover around L = rate × mean E2E (Little's law), so a difference of
// a few √(2L) is noise, not a growing queue: at 2 requests/s with 14 sent in
// a short window, one still in flight at the end is 7 % "below offered".
func beyondEdgeNoise(offered, achieved, durS float64, e2eMeanS *float64) bool {
	inFlight := 0.0
	if e2eMeanS != nil {
		inFlight = achieved * *e2eMeanS
	}
	return (offered-achieved)*durS > 3*math.Sqrt(math.Max(1, 2*inFlight))
}

// windowTooShort flags a window that holds too few requests for its
// figures, or that is not long against the requests' own latency.
func windowTooShort(e *record.Energy, sw *servingWindow, cfg *config.Serving, lim servingLimits, flag func(record.Flag)) {
	dur := sw.w.DurationS()
	expected, from := float64(len(sw.measured)), "sent in it"
	if cfg != nil && cfg.Rate != nil {
		expected, from = *cfg.Rate*dur, fmt.Sprintf("expected at %.3g requests/s", *cfg.Rate)
	}
	if expected < lim.minRequests {
		flag(record.Flag{Code: FlagWindowTooShort, Phase: record.PhaseMeasure,
			Message: fmt.Sprintf("the %.3f s window holds %.1f requests (%s), fewer than %.0f: rates and percentiles rest on too few requests", dur, expected, from, lim.minRequests),
			Hint:    "lengthen the measure window (serving.duration_s or serving.requests)"})
	}
	if mean := e.Metrics[record.ME2EMeanS]; mean != nil && dur < lim.minE2E**mean {
		flag(record.Flag{Code: FlagWindowTooShort, Phase: record.PhaseMeasure,
			Message: fmt.Sprintf("the %.3f s window is shorter than %.3g mean end-to-end latencies (%.3f s each): most requests straddle its edges", dur, lim.minE2E, *mean),
			Hint:    "lengthen the measure window (serving.duration_s or serving.requests)"})
	}
}

// ttftTrend is the median TTFT (seconds) of the first and of the last
// quarter of the ok requests, in the order they were sent; ok is false
// with fewer than trendMinPerQuarter requests in a quarter.
func ttftTrend(okSent []record.RequestEvent) (first, last float64, ok bool) {
	q := len(okSent) / 4
	if q < trendMinPerQuarter {
		return 0, 0, false
	}
	median := func(rs []record.RequestEvent) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = float64(r.TFirstNS-r.TStartNS) / 1e9
		}
		sort.Float64s(v)
		return stats.Percentile(v, 0.5)
	}
	return median(okSent[:q]), median(okSent[len(okSent)-q:]), true
}

// failureKinds counts the failed requests by status, most frequent first.
func failureKinds(rs []record.Request) string {
	by := map[string]int{}
	for i := range rs {
		if rs[i].Status != record.ReqOK || rs[i].TFirstNS == nil {
			by[rs[i].Status]++
		}
	}
	kinds := make([]string, 0, len(by))
	for k := range by {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if by[kinds[i]] != by[kinds[j]] {
			return by[kinds[i]] > by[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	s := ""
	for i, k := range kinds {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", by[k], k)
	}
	return s
}

package load

import (
	"bytes"
	goldenfile "github.com/llem/llem/internal/golden"
	"testing"
	"time"

	"github.com/llem/llem/internal/record"
)

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

// rec builds an ok request sent at start ms with its first token after ttft
// ms and a token every itl ms after that; times in ms from 0.
func rec(id int, start, ttft, itl float64, tokens int, lag float64) record.Request {
	ns := func(v float64) int64 { return int64(v * 1e6) }
	first := ns(start + ttft)
	r := record.Request{Kind: record.KindRequest, V: 1, ID: id, Status: record.ReqOK, TStartNS: ns(start), TFirstNS: &first,
		OutputTokens: tokens, TokensSource: record.TokensUsage, ITLNS: []int64{}}
	end := first
	for range tokens - 1 {
		r.ITLNS = append(r.ITLNS, ns(itl))
		end += ns(itl)
	}
	r.TEndNS = end
	in := 100
	r.InputTokens = &in
	sched, l := ns(start-lag), ns(lag)
	r.TScheduledNS, r.SendLagNS = &sched, &l
	return r
}

func TestSummaryGolden(t *testing.T) {
	rate := 10.0
	s := &Summary{Offered: &rate, LagWarn: 5 * time.Millisecond}
	for i := range 10 {
		r := rec(i, float64(i)*100, 20+float64(i), 5, 1+i, 0.1*float64(i))
		s.Add(&r)
	}
	msg := "HTTP 429: slow down"
	code := 429
	fail := record.Request{Kind: record.KindRequest, V: 1, ID: 10, Status: record.ReqHTTPError, HTTPStatus: &code, Error: &msg,
		TStartNS: 1000e6, TEndNS: 1001e6, ITLNS: []int64{}}
	s.Add(&fail)
	var b bytes.Buffer
	s.Print(&b, "llem-load")

	// A lagging generator and a closed loop without usage.
	s2 := &Summary{LagWarn: time.Millisecond}
	for i := range 4 {
		r := rec(i, float64(i)*10, 5, 1, 3, 2*float64(i))
		r.InputTokens = nil
		s2.Add(&r)
	}
	s2.Print(&b, "llem-load")
	golden(t, "summary.golden", b.Bytes())
}

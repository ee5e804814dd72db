package load

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llem/llem/internal/record"
)

// Plan says what to send and when.
type Plan struct {
	// Offsets are the open-loop send times, in ns from the start (see
	// Offsets); nil for a closed loop.
	Offsets []int64
	// Closed loop: Concurrency requests in flight, each sent when the one
	// before it finished, until N are sent or Duration has passed.
	Concurrency int
	N           int
	Duration    time.Duration

	MaxInFlight int           // open loop: at most this many in flight (0: no cap; sends wait, and the wait is send lag)
	Drain       time.Duration // after an interrupt, how long in-flight requests may still finish
	Spin        time.Duration // busy-wait this much before each send time instead of sleeping
}

// Result says how a run ended.
type Result struct {
	Scheduled   int  // requests the plan holds (0 for a closed loop with a duration)
	Sent        int  // requests sent
	Interrupted bool // ctx was cancelled before the plan was done
}

// runner is one run: the sender, the in-flight requests and the writer.
type runner struct {
	plan   Plan
	client *Client
	work   *Workload
	recs   chan record.Request
	wg     sync.WaitGroup
	sem    chan struct{}
	// inflight is the requests' parent: cancelled with errCancelled when an
	// interrupted run stops waiting for them.
	inflight context.Context
	sent     atomic.Int64
	jobs     chan job // idle workers wait here; closed when the timer loop ends
}

// Run sends the plan's requests and writes one NDJSON record per request to
// out as each finishes, feeding each to sum. Cancelling ctx stops sending;
// requests in flight then have plan.Drain to finish before they are
// cancelled, and every one of them is written. A write error stops the run.
func Run(ctx context.Context, plan Plan, client *Client, work *Workload, out io.Writer, sum *Summary) (Result, error) {
	r := &runner{plan: plan, client: client, work: work, recs: make(chan record.Request, 4096), jobs: make(chan job)}
	if plan.MaxInFlight > 0 {
		r.sem = make(chan struct{}, plan.MaxInFlight)
	}
	inflight, cancelInflight := context.WithCancelCause(context.Background())
	defer cancelInflight(nil)
	r.inflight = inflight
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()

	writeErr := make(chan error, 1)
	go func() { writeErr <- r.write(out, sum, stopSending) }()

	res := Result{Scheduled: len(plan.Offsets)}
	if plan.Offsets != nil {
		r.openLoop(sendCtx)
	} else {
		r.closedLoop(sendCtx)
	}
	r.await(ctx, cancelInflight)
	res.Sent = int(r.sent.Load())
	res.Interrupted = ctx.Err() != nil
	close(r.recs)
	return res, <-writeErr
}

// await waits for the requests in flight: all of them, or after an
// interrupt at most plan.Drain before cancelling the rest (which then end at
// once, each still written).
func (r *runner) await(ctx context.Context, cancel context.CancelCauseFunc) {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(r.plan.Drain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cancel(errCancelled)
		<-done
	}
}

// openLoop sends each request at its offset, whatever happened to the ones
// before. One goroutine keeps the time: it prepares a request's body ahead
// of its send time, waits for that time (waitUntil), and hands the request
// to a worker (dispatch).
func (r *runner) openLoop(ctx context.Context) {
	start := time.Now()
	startNS := r.client.Now()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer close(r.jobs)
	for i, off := range r.plan.Offsets {
		s := r.work.Spec(i)
		payload, err := r.client.Prepare(s)
		if err != nil {
			payload = nil // the worker's Do then records the error
		}
		if !waitUntil(ctx, timer, start.Add(time.Duration(off)), r.plan.Spin) {
			return
		}
		if r.sem != nil {
			select {
			case r.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		r.wg.Add(1)
		r.sent.Add(1)
		r.dispatch(job{i: i, payload: payload, maxTokens: s.MaxTokens, sched: startNS + off, timed: true})
	}
}

// job is one request handed from the timer loop to a worker.
type job struct {
	i         int
	payload   []byte
	maxTokens int
	sched     int64
	timed     bool // sched is set (open loop)
}

// dispatch hands j to an idle worker, or starts one when none is idle: the
// workers grow to the peak number in flight and are reused, so a request
// does not pay for a new goroutine's stack growing through the HTTP client.
// The timer loop then yields, so the worker sends at once on this processor
// instead of waiting for another thread to wake.
func (r *runner) dispatch(j job) {
	select {
	case r.jobs <- j:
	default:
		go r.worker(j)
	}
	runtime.Gosched()
}

func (r *runner) worker(j job) {
	for ok := true; ok; j, ok = <-r.jobs {
		var sched *int64
		if j.timed {
			sched = &j.sched
		}
		r.send(j.i, j.payload, j.maxTokens, sched)
		r.wg.Done()
	}
}

// closedLoop starts plan.Concurrency workers that each send a request when
// their last one finished. It returns at once: the workers count in r.wg
// themselves, so an interrupt's drain covers the request each has in flight.
func (r *runner) closedLoop(ctx context.Context) {
	var next atomic.Int64
	var deadline time.Time
	if r.plan.Duration > 0 {
		deadline = time.Now().Add(r.plan.Duration)
	}
	n := int64(r.plan.N)
	if n <= 0 {
		n = MaxRequests
	}
	r.wg.Add(r.plan.Concurrency)
	for range r.plan.Concurrency {
		go func() {
			defer r.wg.Done()
			for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				s := r.work.Spec(int(i))
				payload, _ := r.client.Prepare(s)
				r.sent.Add(1)
				r.send(int(i), payload, s.MaxTokens, nil)
			}
		}()
	}
}

// send runs one request and queues its record.
func (r *runner) send(i int, payload []byte, maxTokens int, sched *int64) {
	var rec record.Request
	if payload == nil {
		rec = r.client.Do(r.inflight, i, r.work.Spec(i))
	} else {
		rec = r.client.Send(r.inflight, i, payload, maxTokens)
	}
	if sched != nil {
		at, lag := *sched, rec.TStartNS-*sched // copies: the caller reuses sched
		rec.TScheduledNS, rec.SendLagNS = &at, &lag
	}
	if r.sem != nil {
		<-r.sem
	}
	r.recs <- rec
}

// coarseMargin is how long before a send time the interruptible runtime
// timer hands over to preciseSleep.
const coarseMargin = 2 * time.Millisecond

// waitUntil waits for target: a runtime timer (which ctx can interrupt)
// until coarseMargin before it, then preciseSleep until spin before it, then
// a busy-wait that yields the processor. False when ctx ended first.
func waitUntil(ctx context.Context, timer *time.Timer, target time.Time, spin time.Duration) bool {
	if d := time.Until(target) - coarseMargin; d > 0 {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return false
		}
	}
	if d := time.Until(target) - spin; d > 0 {
		preciseSleep(d)
	}
	for time.Now().Before(target) {
		if ctx.Err() != nil {
			return false
		}
		runtime.Gosched()
	}
	return ctx.Err() == nil
}

// write encodes records as they come, flushing whenever no other record is
// waiting, so a reader of the output sees each record soon after its
// request ended. After a write error it keeps receiving (senders never
// block) but stops the run.
func (r *runner) write(out io.Writer, sum *Summary, stop func()) error {
	w := bufio.NewWriterSize(out, 64<<10)
	var werr error
	for rec := range r.recs {
		sum.Add(&rec)
		if werr != nil {
			continue
		}
		b, err := json.Marshal(&rec)
		if err == nil {
			b = append(b, '\n')
			_, err = w.Write(b)
		}
		if err == nil && len(r.recs) == 0 {
			err = w.Flush()
		}
		if err != nil {
			werr = fmt.Errorf("writing records: %w", err)
			stop()
		}
	}
	if werr == nil {
		if err := w.Flush(); err != nil {
			werr = fmt.Errorf("writing records: %w", err)
		}
	}
	return werr
}

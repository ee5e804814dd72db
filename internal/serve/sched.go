package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/llem/llem/internal/native"
)

// Errors of Submit; the HTTP layer maps them to statuses.
var (
	ErrQueueFull = errors.New("the waiting queue is full")
	ErrStopping  = errors.New("the server is shutting down")
	errTooLarge  = errors.New("request needs more KV cache than the server has")
)

// Limits bound the scheduler (see docs/serve.md, "Scheduling").
type Limits struct {
	MaxNumSeqs       int // sequences running at once (the engine's slots)
	MaxBatchedTokens int // token rows per engine step: decodes first, then prefill chunks
	KVCacheTokens    int // KV positions all running sequences may reserve together
	MaxWaiting       int // requests queued beyond the running ones; more get ErrQueueFull
	MaxModelLen      int // positions per sequence: prompt + output
}

// genParams is what a request asks of the engine.
type genParams struct {
	prompt    []int32
	maxNew    int
	dec       native.Decoding
	seed      uint64
	ignoreEOS bool
	stops     []string
	logprobs  int // top log-probabilities per token; -1: none at all
}

// event is one engine output for a sequence: a token (with the text it
// releases, which may be empty while a stop string might be starting), or
// the end. The last event of a sequence has finish or err set.
type event struct {
	token   int32
	text    string
	logprob float64
	top     []native.TokenLogprob
	finish  string // "stop" or "length" on the last event
	err     error  // the sequence failed (mid-stream error)
	prompt  int    // prompt tokens
	made    int    // completion tokens so far, this one included
}

// seq is one request inside the scheduler. Fields below the line are owned
// by the engine goroutine.
type seq struct {
	id      string
	ctx     context.Context
	p       genParams
	events  chan event // capacity maxNew+1: the engine never waits for a client
	arrival time.Time

	slot     int
	done     int // prompt tokens in the cache
	tokens   []int32
	text     []byte
	sent     int // bytes of text released
	admitted time.Time
	firstTok time.Time
	lastTok  time.Time
	finished bool
	reason   string // why it ended: "stop", "length", "abort"; "" while running
	chunk    int    // prompt rows in the current step
}

func (q *seq) reserve() int { return len(q.p.prompt) + q.p.maxNew }

// Stats is the scheduler's state as /metrics shows it.
type Stats struct {
	Running, Waiting int
	KVUsedTokens     int  // reserved by running sequences
	KVTokens         int  // the budget
	Stopping         bool // new requests are refused (graceful stop)
}

// scheduler steps every running sequence together on one engine
// (iteration-level scheduling): one goroutine owns the engine; each step
// decodes one token for every sequence past its prompt and spends the rest
// of the step's token budget on prefill chunks of the others, in arrival
// order. Sequences join between steps when a slot and enough KV budget are
// free, and leave at the step that finishes or finds them cancelled.
type scheduler struct {
	e        *native.Engine
	tok      native.Tokenizer
	lim      Limits
	met      *metrics
	now      func() time.Time
	samplers []*native.Sampler
	free     []int // free slots
	running  []*seq
	kvUsed   int

	mu       sync.Mutex
	waiting  []*seq
	stopping bool
	stats    Stats
	changed  chan struct{} // closed and replaced at every change of stats
	wake     chan struct{}

	// beforeStep, when set (tests), runs after admission and before each
	// engine step, so a test can hold the engine between steps.
	beforeStep func()

	st stepBufs
}

type stepBufs struct {
	tokens          []int32
	slots, pos      []int
	want            []int
	wantSeq         []*seq
	top             []native.TokenLogprob
	raw             []float32
	prefill, decode int
}

func newScheduler(e *native.Engine, lim Limits, met *metrics, now func() time.Time) *scheduler {
	s := &scheduler{e: e, tok: native.NewTokenizer(e.Model().Arch.VocabSize), lim: lim, met: met, now: now,
		changed: make(chan struct{}), wake: make(chan struct{}, 1)}
	for i := range lim.MaxNumSeqs {
		s.samplers = append(s.samplers, native.NewSampler(e.Model().Arch.VocabSize))
		s.free = append(s.free, lim.MaxNumSeqs-1-i)
	}
	s.stats.KVTokens = lim.KVCacheTokens
	return s
}

// submit queues a request. The sequence's events arrive on q.events; the
// channel is closed after the last one.
func (s *scheduler) submit(q *seq) error {
	if q.reserve() > s.lim.KVCacheTokens {
		return fmt.Errorf("%w: %d prompt + %d output tokens, budget %d", errTooLarge, len(q.p.prompt), q.p.maxNew, s.lim.KVCacheTokens)
	}
	q.events = make(chan event, q.p.maxNew+1)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopping:
		return ErrStopping
	case len(s.waiting) >= s.lim.MaxWaiting:
		return ErrQueueFull
	}
	s.waiting = append(s.waiting, q)
	s.publishLocked(false)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// publishLocked refreshes the stats and wakes their watchers. Only the
// engine goroutine may pass engine = true: the running set is its own.
func (s *scheduler) publishLocked(engine bool) {
	s.stats.Waiting = len(s.waiting)
	s.stats.Stopping = s.stopping
	if engine {
		s.stats.Running = len(s.running)
		s.stats.KVUsedTokens = s.kvUsed
	}
	s.met.setState(s.stats)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Stats returns the current state and a channel closed at its next change.
func (s *scheduler) Stats() (Stats, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats, s.changed
}

// waitFor blocks until ok(stats) holds or ctx ends.
func (s *scheduler) waitFor(ctx context.Context, ok func(Stats) bool) error {
	for {
		st, ch := s.Stats()
		if ok(st) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for scheduler state (now %+v): %w", st, ctx.Err())
		}
	}
}

// run steps the engine until ctx ends; then every sequence still queued or
// running ends with ErrStopping (a mid-stream error for a stream).
func (s *scheduler) run(ctx context.Context) {
	defer s.abortAll(ErrStopping)
	for ctx.Err() == nil {
		s.admit()
		if len(s.running) == 0 {
			select {
			case <-s.wake:
			case <-ctx.Done():
			}
			continue
		}
		if s.beforeStep != nil {
			s.beforeStep()
		}
		s.step()
	}
}

// admit moves waiting requests into free slots, first come first served:
// the first that does not fit (no slot, or not enough KV budget) waits, and
// so does everyone behind it. Cancelled waiting requests leave the queue.
func (s *scheduler) admit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.waiting[:0]
	blocked := false
	for _, q := range s.waiting {
		switch {
		case q.ctx.Err() != nil:
			s.finish(q, "", context.Cause(q.ctx))
		case !blocked && len(s.free) > 0 && s.kvUsed+q.reserve() <= s.lim.KVCacheTokens:
			q.slot = s.free[len(s.free)-1]
			s.free = s.free[:len(s.free)-1]
			s.kvUsed += q.reserve()
			q.admitted = s.now()
			s.samplers[q.slot].Reset(q.p.seed)
			for _, t := range q.p.prompt {
				s.samplers[q.slot].See(t)
			}
			s.running = append(s.running, q)
			s.met.queued(q)
		default:
			blocked = true
			kept = append(kept, q)
		}
	}
	clear(s.waiting[len(kept):])
	s.waiting = kept
	s.publishLocked(true)
}

// abortAll ends every sequence with err.
func (s *scheduler) abortAll(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for _, q := range s.waiting {
		s.finish(q, "", err)
	}
	s.waiting = nil
	for _, q := range s.running {
		s.finish(q, "", err)
		s.release(q)
	}
	s.running = s.running[:0]
	s.publishLocked(true)
}

// stop refuses new requests from now on.
func (s *scheduler) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	s.publishLocked(false)
}

// finish ends a sequence: a failure is sent as a last event of its own (a
// normal end rode on the last token's event); the channel is closed.
func (s *scheduler) finish(q *seq, reason string, err error) {
	if q.finished {
		return
	}
	q.finished = true
	if err != nil {
		q.events <- event{token: -1, err: err, prompt: len(q.p.prompt), made: len(q.tokens)}
	}
	close(q.events)
	s.met.finished(q, reason, err, s.now())
}

func (s *scheduler) release(q *seq) {
	s.free = append(s.free, q.slot)
	s.kvUsed -= q.reserve()
}

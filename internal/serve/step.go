package serve

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/llem/llem/internal/native"
)

// step runs one engine iteration over the running sequences: cancelled ones
// leave first; then one decode row for each sequence past its prompt, and
// prefill rows for the others in admission order while the step's token
// budget lasts (chunked prefill: a long prompt spans steps, so the decodes
// around it wait at most one budget's worth of rows); then one token for
// every sequence whose logits the step produced.
func (s *scheduler) step() {
	s.dropCancelled()
	if len(s.running) == 0 {
		return
	}
	b := &s.st
	b.tokens, b.slots, b.pos, b.want, b.wantSeq = b.tokens[:0], b.slots[:0], b.pos[:0], b.want[:0], b.wantSeq[:0]
	b.prefill, b.decode = 0, 0
	budget := s.lim.MaxBatchedTokens
	for _, q := range s.running {
		if q.done == len(q.p.prompt) && len(q.tokens) > 0 {
			s.addRow(q.tokens[len(q.tokens)-1], q, len(q.p.prompt)+len(q.tokens)-1, true)
			budget--
			b.decode++
		}
	}
	for _, q := range s.running {
		if budget <= 0 {
			break
		}
		if q.done == len(q.p.prompt) {
			continue
		}
		n := min(budget, len(q.p.prompt)-q.done)
		for i := q.done; i < q.done+n; i++ {
			s.addRow(q.p.prompt[i], q, i, i == len(q.p.prompt)-1)
		}
		q.chunk = n
		budget -= n
		b.prefill += n
	}
	t0 := s.now()
	logits, err := s.e.Forward(b.tokens, b.slots, b.pos, b.want)
	if err != nil {
		s.failRunning(fmt.Errorf("engine step: %w", err))
		return
	}
	for _, q := range s.running {
		if q.chunk == 0 {
			continue
		}
		q.done += q.chunk
		q.chunk = 0
		if q.done == len(q.p.prompt) {
			s.met.prefilled(q, s.now())
		}
	}
	v := s.e.Model().Arch.VocabSize
	now := s.now()
	for j, q := range b.wantSeq {
		s.emit(q, logits[j*v:(j+1)*v], now)
	}
	s.met.stepped(b.prefill, b.decode, now.Sub(t0))
	s.retire()
}

func (s *scheduler) addRow(tok int32, q *seq, pos int, want bool) {
	b := &s.st
	if want {
		b.want = append(b.want, len(b.tokens))
		b.wantSeq = append(b.wantSeq, q)
	}
	b.tokens = append(b.tokens, tok)
	b.slots = append(b.slots, q.slot)
	b.pos = append(b.pos, pos)
}

// emit picks q's next token from its logits row, sends it with the text it
// releases, and marks q finished when it reached its end.
func (s *scheduler) emit(q *seq, l []float32, now time.Time) {
	ev := event{prompt: len(q.p.prompt)}
	if q.p.logprobs >= 0 { // from the raw logits, which Next modifies
		s.st.raw = append(s.st.raw[:0], l...)
	}
	tok := s.samplers[q.slot].Next(l, q.p.dec, len(q.tokens))
	if q.p.logprobs >= 0 {
		ev.logprob, s.st.top = native.Logprobs(s.st.raw, tok, q.p.logprobs, s.st.top)
		ev.top = append([]native.TokenLogprob(nil), s.st.top...)
	}
	if len(q.tokens) == 0 {
		q.firstTok = now
	}
	s.met.token(q, now)
	q.lastTok = now
	q.tokens = append(q.tokens, tok)
	ev.token, ev.made = tok, len(q.tokens)
	prev := len(q.text)
	q.text = s.tok.Decode(q.text, q.tokens[len(q.tokens)-1:])
	switch {
	case !q.p.ignoreEOS && tok == native.EOS:
		ev.finish = "stop"
	case len(q.tokens) >= q.p.maxNew:
		ev.finish = "length"
	}
	end := releasable(q.text, prev, q.p.stops)
	if end.stop {
		ev.finish = "stop"
	}
	if ev.finish != "" && !end.stop {
		end.n = len(q.text)
	}
	if end.n > q.sent {
		ev.text = string(q.text[q.sent:end.n])
		q.sent = end.n
	}
	q.events <- ev
	if ev.finish != "" {
		q.reason = ev.finish
	}
}

// release is how much of a sequence's text may be sent: all of it but a
// tail that could be the start of a stop string; or, where a stop string
// now occurs, the text before it (stop = true).
type release struct {
	n    int
	stop bool
}

// releasable finds the first stop string in text that ends after prev (the
// length before the latest token: an earlier one would have stopped the
// sequence already) and otherwise holds back the longest tail of text that
// is a proper prefix of a stop string.
func releasable(text []byte, prev int, stops []string) release {
	at := -1
	for _, st := range stops {
		from := max(0, prev-len(st)+1)
		if i := bytes.Index(text[from:], []byte(st)); i >= 0 && (at < 0 || from+i < at) {
			at = from + i
		}
	}
	if at >= 0 {
		return release{n: at, stop: true}
	}
	hold := 0
	for _, st := range stops {
		for k := min(len(st)-1, len(text)); k > hold; k-- {
			if bytes.HasSuffix(text, []byte(st[:k])) {
				hold = k
				break
			}
		}
	}
	return release{n: len(text) - hold}
}

// dropCancelled ends the running sequences whose client went away (or
// whose deadline passed): their slots are free for this very step.
func (s *scheduler) dropCancelled() {
	n := 0
	for _, q := range s.running {
		if q.ctx.Err() != nil {
			q.reason = "abort"
			n++
		}
	}
	if n > 0 {
		s.retire()
	}
}

// retire removes the sequences that ended from the running set.
func (s *scheduler) retire() {
	kept := s.running[:0]
	changed := false
	for _, q := range s.running {
		if q.reason == "" {
			kept = append(kept, q)
			continue
		}
		changed = true
		var err error
		if q.reason == "abort" {
			err = context.Cause(q.ctx)
		}
		s.finish(q, q.reason, err)
		s.release(q)
	}
	clear(s.running[len(kept):])
	s.running = kept
	if changed {
		s.mu.Lock()
		s.publishLocked(true)
		s.mu.Unlock()
	}
}

// failRunning ends every running sequence with err (the engine failed).
func (s *scheduler) failRunning(err error) {
	for _, q := range s.running {
		s.finish(q, "", err)
		s.release(q)
	}
	clear(s.running)
	s.running = s.running[:0]
	s.mu.Lock()
	s.publishLocked(true)
	s.mu.Unlock()
}

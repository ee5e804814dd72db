// Package serve is llem-serve: the native engine (internal/native) behind
// an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions,
// /v1/models, /health, /metrics), with continuous batching. See
// docs/serve.md.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llem/llem/internal/native"
)

// Config is a server's configuration; zero fields take defaults (see
// docs/serve.md, "Options").
type Config struct {
	ModelName         string // the id clients send as "model"
	Root              string // /v1/models "root": the preset or checkpoint the model came from
	Threads           int    // engine goroutines; 0 = all cores
	Limits            Limits
	MaxBodyBytes      int64         // request bodies above this get 413
	ReadHeaderTimeout time.Duration // a client must send its headers within this
	ReadTimeout       time.Duration // … and its whole request (headers and body) within this
	WriteTimeout      time.Duration // each response write (an SSE chunk) must complete within this
	IdleTimeout       time.Duration // keep-alive connections idle longer are closed
	MaxConns          int           // connections served at once; more wait in the kernel's backlog
	RequestLog        io.Writer     // one NDJSON line per request; nil: none

	// Test hooks: beforeStep is the scheduler's (scheduler.beforeStep);
	// clientGone is called with a request's id when its client's
	// connection is seen closed.
	beforeStep func()
	clientGone func(id string)
	// sndbuf, when set (tests), is the socket send buffer of accepted
	// connections, so that a client that stops reading blocks the server's
	// writes after kilobytes rather than the megabytes the kernel allows.
	sndbuf int
}

// defaults fills the zero fields of c that do not depend on the model.
func (c *Config) defaults() {
	if c.Limits.MaxNumSeqs == 0 {
		c.Limits.MaxNumSeqs = 32
	}
	if c.Limits.MaxBatchedTokens == 0 {
		c.Limits.MaxBatchedTokens = 512
	}
	c.Limits.MaxBatchedTokens = max(c.Limits.MaxBatchedTokens, c.Limits.MaxNumSeqs)
	if c.Limits.MaxWaiting == 0 {
		c.Limits.MaxWaiting = 256
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = 1024
	}
}

// Server is an llem-serve instance. Its HTTP side answers from New on
// (/health says 503 until the model is loaded); Load starts the engine.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	met     *metrics
	log     *requestLog
	created int64
	ids     atomic.Uint64

	sched    atomic.Pointer[scheduler] // nil until Load
	model    *native.Model
	tok      native.Tokenizer
	engine   *native.Engine
	stopRun  context.CancelFunc
	runDone  chan struct{}
	http     *http.Server
	ln       atomic.Pointer[limitListener]
	stopOnce sync.Once
	stopErr  error
}

// New returns a server with no model yet.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	l := cfg.Limits
	if l.MaxNumSeqs < 1 || l.MaxWaiting < 0 || l.MaxModelLen < 0 || l.KVCacheTokens < 0 || cfg.MaxConns < 1 {
		return nil, fmt.Errorf("serve: limits must be positive: %+v, max connections %d", l, cfg.MaxConns)
	}
	if cfg.ModelName == "" {
		return nil, errors.New("serve: no model name")
	}
	s := &Server{cfg: cfg, met: newMetrics(cfg.ModelName), log: newRequestLog(cfg.RequestLog), created: time.Now().Unix()}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v1/completions", s.handleCompletions)
	s.mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	s.mux.HandleFunc("GET /v1/models", s.handleModels)
	s.mux.HandleFunc("GET /health", s.handleHealth)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path), Type: "not_found_error"})
	})
	// No WriteTimeout: a stream lasts as long as its output; each write has
	// its own deadline instead (writeEvent).
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	return s, nil
}

// Load builds the engine for m and starts the scheduler; /health turns 200.
func (s *Server) Load(m *native.Model) error {
	l := &s.cfg.Limits
	if l.MaxModelLen == 0 || l.MaxModelLen > m.Arch.MaxSeqLen {
		l.MaxModelLen = m.Arch.MaxSeqLen
	}
	if l.KVCacheTokens == 0 {
		l.KVCacheTokens = defaultKVTokens(m, l.MaxNumSeqs, l.MaxModelLen)
	}
	e, err := native.NewEngine(m, native.Options{Threads: s.cfg.Threads, Slots: l.MaxNumSeqs, MaxSeq: l.MaxModelLen, MaxRows: l.MaxBatchedTokens})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.model, s.tok, s.engine = m, native.NewTokenizer(m.Arch.VocabSize), e
	sch := newScheduler(e, *l, s.met, time.Now)
	sch.beforeStep = s.cfg.beforeStep
	ctx, cancel := context.WithCancel(context.Background())
	s.stopRun, s.runDone = cancel, make(chan struct{})
	go func() {
		defer close(s.runDone)
		sch.run(ctx)
	}()
	s.sched.Store(sch)
	return nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve answers HTTP on ln (at most MaxConns connections at once) until
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	l := newLimitListener(ln, s.cfg.MaxConns)
	l.sndbuf = s.cfg.sndbuf
	s.ln.Store(l)
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server gracefully: new requests get 503 at once;
// running and waiting ones may finish until ctx ends, and those still
// going then end with a "server shutting down" error (a mid-stream error
// for streams); then the listener and connections close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx) })
	return s.stopErr
}

func (s *Server) shutdown(ctx context.Context) error {
	sch := s.sched.Load()
	if sch != nil {
		sch.stop()
		_ = sch.waitFor(ctx, func(st Stats) bool { return st.Running == 0 && st.Waiting == 0 })
		s.stopRun()
		<-s.runDone
	}
	// The handlers have their last events; give them a bounded time to
	// write them.
	hctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	err := s.http.Shutdown(hctx)
	if err != nil {
		err = errors.Join(err, s.http.Close())
	}
	if s.engine != nil {
		s.engine.Close()
	}
	return err
}

// Stats is the scheduler's state (zero before Load).
func (s *Server) Stats() Stats {
	if sch := s.sched.Load(); sch != nil {
		st, _ := sch.Stats()
		return st
	}
	return Stats{}
}

// Limits are the limits in force (after defaults and Load).
func (s *Server) Limits() Limits { return s.cfg.Limits }

package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/native"
	"github.com/llem/llem/internal/native/preset"
)

type cmdOpts struct {
	Model            string        `long:"model" default:"llem-small" value-name:"NAME|DIR" description:"a preset (llem-tiny, llem-small) or a checkpoint directory (config.json + safetensors), as native.weights_path"`
	ServedModelName  string        `long:"served-model-name" value-name:"NAME" description:"the model id clients send (default: the --model argument)"`
	Listen           string        `long:"listen" default:"127.0.0.1:8000" value-name:"HOST:PORT" description:"address to serve on; other than loopback only when asked (e.g. 0.0.0.0:8000)"`
	Seed             int64         `long:"seed" value-name:"N" description:"native.seed: the synthetic weights' seed (presets)"`
	Threads          int           `long:"threads" value-name:"N" description:"native.threads: engine goroutines (0: all cores)"`
	Layers           int           `long:"layers" value-name:"N" description:"native.layers: override the preset's (synthetic models only)"`
	HiddenSize       int           `long:"hidden-size" value-name:"N" description:"native.hidden_size: override the preset's"`
	Heads            int           `long:"heads" value-name:"N" description:"native.heads: override the preset's"`
	KVHeads          int           `long:"kv-heads" value-name:"N" description:"native.kv_heads: override the preset's"`
	FFNSize          int           `long:"ffn-size" value-name:"N" description:"native.ffn_size: override the preset's"`
	VocabSize        int           `long:"vocab-size" value-name:"N" description:"native.vocab_size: override the preset's"`
	MaxSeqLen        int           `long:"max-seq-len" value-name:"N" description:"native.max_seq_len: override the preset's"`
	MaxNumSeqs       int           `long:"max-num-seqs" default:"32" value-name:"N" description:"sequences running at once (the batch)"`
	MaxBatchedTokens int           `long:"max-num-batched-tokens" default:"512" value-name:"N" description:"token rows per engine step: every running decode plus prefill chunks (bounds the stall a long prompt causes)"`
	MaxModelLen      int           `long:"max-model-len" value-name:"N" description:"positions per sequence, prompt and output (default: the model's max_seq_len)"`
	KVCacheTokens    int           `long:"kv-cache-tokens" value-name:"N" description:"KV-cache budget in positions over all running sequences; requests wait while it is full (default: a quarter of available memory, at most max-num-seqs x max-model-len)"`
	MaxWaiting       int           `long:"max-waiting" default:"256" value-name:"N" description:"waiting queue length; beyond it requests get 503 with Retry-After"`
	MaxConns         int           `long:"max-connections" default:"1024" value-name:"N" description:"connections served at once; more wait in the kernel's backlog"`
	MaxBodyBytes     int64         `long:"max-body-bytes" default:"1048576" value-name:"BYTES" description:"largest request body (413 beyond)"`
	HeaderTimeout    time.Duration `long:"header-timeout" default:"10s" value-name:"DURATION" description:"time a client has to send its request headers"`
	ReadTimeout      time.Duration `long:"read-timeout" default:"30s" value-name:"DURATION" description:"time a client has to send its whole request"`
	WriteTimeout     time.Duration `long:"write-timeout" default:"30s" value-name:"DURATION" description:"time a client has to take each response write (an SSE chunk); slower readers are dropped"`
	IdleTimeout      time.Duration `long:"idle-timeout" default:"60s" value-name:"DURATION" description:"keep-alive connections idle longer are closed"`
	ShutdownTimeout  time.Duration `long:"shutdown-timeout" default:"30s" value-name:"DURATION" description:"on SIGTERM/SIGINT, time running requests have to finish before they are cancelled"`
	Log              string        `long:"log" value-name:"FILE" description:"request log, one NDJSON line per request (default: stderr)"`
}

const cmdLong = `Serve a native model over an OpenAI-compatible HTTP API with continuous batching:
POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health, GET /metrics
(Prometheus, vLLM's metric names). Point any OpenAI client at http://HOST:PORT/v1.

Every engine step decodes one token for each running request and prefills waiting ones in
chunks within --max-num-batched-tokens. SIGTERM or SIGINT stops gracefully: new requests get
503, running ones have --shutdown-timeout to finish, then exit 0. See docs/serve.md.`

// Command is llem-serve's body.
func Command(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var o cmdOpts
	rest, err := cli.Parse("llem-serve", "[OPTIONS]", cmdLong, &o, args, stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return cli.Usagef("unexpected argument %q", rest[0])
	}
	logw, closeLog, err := openLog(o.Log, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	cfg := Config{ModelName: o.ServedModelName, Root: o.Model, Threads: o.Threads,
		Limits: Limits{MaxNumSeqs: o.MaxNumSeqs, MaxBatchedTokens: o.MaxBatchedTokens, KVCacheTokens: o.KVCacheTokens,
			MaxWaiting: o.MaxWaiting, MaxModelLen: o.MaxModelLen},
		MaxBodyBytes: o.MaxBodyBytes, ReadHeaderTimeout: o.HeaderTimeout, ReadTimeout: o.ReadTimeout,
		WriteTimeout: o.WriteTimeout, IdleTimeout: o.IdleTimeout, MaxConns: o.MaxConns, RequestLog: logw}
	if cfg.ModelName == "" {
		cfg.ModelName = o.Model
	}
	if err := checkOpts(&o); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, &o, cfg, stderr)
}

func checkOpts(o *cmdOpts) error {
	for _, f := range []struct {
		name string
		v    int
	}{{"--max-num-seqs", o.MaxNumSeqs}, {"--max-num-batched-tokens", o.MaxBatchedTokens}, {"--max-connections", o.MaxConns}} {
		if f.v < 1 {
			return cli.Usagef("%s: %d, want ≥ 1", f.name, f.v)
		}
	}
	if o.MaxModelLen < 0 || o.KVCacheTokens < 0 || o.MaxWaiting < 0 || o.Threads < 0 || o.MaxBodyBytes < 1 {
		return cli.Usagef("--max-model-len, --kv-cache-tokens, --max-waiting and --threads must be ≥ 0, --max-body-bytes ≥ 1")
	}
	for _, d := range []time.Duration{o.HeaderTimeout, o.ReadTimeout, o.WriteTimeout, o.IdleTimeout} {
		if d <= 0 {
			return cli.Usagef("timeouts must be positive")
		}
	}
	return nil
}

// run listens first (so /health answers 503 while the model loads), loads
// the model, and serves until ctx ends; then it stops gracefully.
func run(ctx context.Context, o *cmdOpts, cfg Config, stderr io.Writer) error {
	srv, err := New(cfg)
	if err != nil {
		return cli.Usage(err)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return cli.Usage(fmt.Errorf("listen: %w", err))
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	m, err := loadModel(o)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return cli.Usage(err)
	}
	if err := srv.Load(m); err != nil {
		_ = srv.Shutdown(context.Background())
		return cli.Usage(err)
	}
	l := srv.Limits()
	fmt.Fprintf(stderr, "llem-serve: %s on http://%s/v1 (max-num-seqs %d, max-num-batched-tokens %d, max-model-len %d, kv-cache-tokens %d)\n",
		cfg.ModelName, ln.Addr(), l.MaxNumSeqs, l.MaxBatchedTokens, l.MaxModelLen, l.KVCacheTokens)
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintf(stderr, "llem-serve: stopping: running requests have %s to finish\n", o.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return <-served
}

// loadModel builds a preset's synthetic model, with the architecture
// flags given overriding the preset's, or loads a checkpoint directory.
func loadModel(o *cmdOpts) (*native.Model, error) {
	overrides := []int{o.Layers, o.HiddenSize, o.Heads, o.KVHeads, o.FFNSize, o.VocabSize, o.MaxSeqLen}
	if a, ok := preset.Lookup(o.Model); ok {
		dsts := []*int{&a.Layers, &a.HiddenSize, &a.Heads, &a.KVHeads, &a.FFNSize, &a.VocabSize, &a.MaxSeqLen}
		for i, v := range overrides {
			if v != 0 {
				*dsts[i] = v
			}
		}
		return native.NewSynthetic(a, o.Seed)
	}
	for _, v := range overrides {
		if v != 0 {
			return nil, fmt.Errorf("--model %q: the architecture flags apply to presets; a checkpoint brings its own", o.Model)
		}
	}
	st, err := os.Stat(o.Model)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--model %q: neither a preset (%v) nor a checkpoint directory", o.Model, preset.Names())
	}
	return native.LoadLlama(o.Model)
}

func openLog(path string, stderr io.Writer) (io.Writer, func(), error) {
	if path == "" || path == "-" {
		return stderr, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, cli.Usage(fmt.Errorf("--log: %w", err))
	}
	return f, func() {
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			fmt.Fprintf(stderr, "llem-serve: closing --log: %v\n", err)
		}
	}, nil
}

package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llem/llem/internal/native"
	"github.com/llem/llem/internal/native/preset"
)

// Serving benchmarks (docs/serve.md, "Performance"). The model is
// $LLEM_SERVE_BENCH_MODEL (a preset; default llem-small). Run with
// -benchtime 1x: each iteration is a whole scenario, timed on the client
// side the way vLLM's benchmark client times a server (TTFT = first chunk
// with a token, ITL = gaps between token chunks, pooled over requests).
//
//	go test -run '^$' -bench 'Serve' -benchtime 1x ./internal/serve/

func benchModel(b *testing.B) *native.Model {
	name := os.Getenv("LLEM_SERVE_BENCH_MODEL")
	if name == "" {
		name = "llem-small"
	}
	a, ok := preset.Lookup(name)
	if !ok {
		b.Fatalf("LLEM_SERVE_BENCH_MODEL=%s: not a preset", name)
	}
	m, err := native.NewSynthetic(a, 1)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// benchPrompt is prompt i of n tokens: ids that differ between prompts.
func benchPrompt(vocab, i, n int) []int32 {
	p := make([]int32, n)
	for j := range p {
		p[j] = int32(1 + (i*131+j*7)%(vocab-1))
	}
	return p
}

// timing is what a client saw of its streams.
type timing struct {
	ttft   []time.Duration
	itl    []time.Duration
	tokens int
}

func (t *timing) merge(o timing) {
	t.ttft = append(t.ttft, o.ttft...)
	t.itl = append(t.itl, o.itl...)
	t.tokens += o.tokens
}

// streamOnce sends one streaming completion and times its token chunks.
func streamOnce(url string, prompt []int32, maxTokens int) (timing, error) {
	body, _ := json.Marshal(map[string]any{"prompt": prompt, "max_tokens": maxTokens, "ignore_eos": true, "temperature": 0, "stream": true})
	t0 := time.Now()
	resp, err := client.Post(url+"/v1/completions", "application/json", strings.NewReader(string(body)))
	if err != nil {
		return timing{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return timing{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	var tm timing
	last := t0
	r := bufio.NewReaderSize(resp.Body, 1<<16)
	for range 1 << 20 {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		d, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok || d == "[DONE]" || !strings.Contains(d, `"choices":[{`) {
			continue
		}
		now := time.Now()
		if tm.tokens == 0 {
			tm.ttft = append(tm.ttft, now.Sub(t0))
		} else {
			tm.itl = append(tm.itl, now.Sub(last))
		}
		last = now
		tm.tokens++
	}
	if tm.tokens != maxTokens {
		return tm, fmt.Errorf("%d tokens, want %d", tm.tokens, maxTokens)
	}
	return tm, nil
}

// concurrent runs n clients at once, client i streaming prompts[i].
func concurrent(b *testing.B, url string, prompts [][]int32, maxTokens int) (timing, time.Duration) {
	var mu sync.Mutex
	var all timing
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, p := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tm, err := streamOnce(url, p, maxTokens)
			if err != nil {
				b.Error(err)
			}
			mu.Lock()
			all.merge(tm)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, time.Since(t0)
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
}

// cpuTime is the CPU time (user + system) the process has used: the
// server, the engine and the benchmark's clients together. On a machine
// shared with other work, tokens per CPU-second move less with the load
// than tokens per wall-second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(b *testing.B, tm timing, wall, cpu time.Duration) {
	b.ReportMetric(float64(tm.tokens)/wall.Seconds(), "tok/s")
	if cpu > 0 {
		b.ReportMetric(float64(tm.tokens)/cpu.Seconds(), "tok/cpu_s")
	}
	b.ReportMetric(pct(tm.ttft, 0.5), "ttft_p50_ms")
	b.ReportMetric(pct(tm.itl, 0.5), "itl_p50_ms")
	b.ReportMetric(pct(tm.itl, 0.99), "itl_p99_ms")
	b.ReportMetric(0, "ns/op")
}

const (
	benchPromptLen = 64
	benchOut       = 64
)

// BenchmarkServeStreams: output tokens/s with 1, 4, 16 and 64 streams at
// once (streams=1 is one request at a time).
func BenchmarkServeStreams(b *testing.B) {
	m := benchModel(b)
	ts := startModel(b, Config{Limits: Limits{MaxNumSeqs: 64, MaxModelLen: 512}}, m)
	for _, n := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			var prompts [][]int32
			for i := range n {
				prompts = append(prompts, benchPrompt(m.Arch.VocabSize, i, benchPromptLen))
			}
			for b.Loop() {
				c0 := cpuTime()
				tm, wall := concurrent(b, ts.url, prompts, benchOut)
				report(b, tm, wall, cpuTime()-c0)
			}
		})
	}
}

// BenchmarkServeVsOffline: the same batch through the offline generator
// (one batched prefill, then batched decode: no HTTP, no scheduler) and
// through the server with as many concurrent streams, back to back.
func BenchmarkServeVsOffline(b *testing.B) {
	m := benchModel(b)
	for _, n := range []int{16, 64} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			ts := startModel(b, Config{Limits: Limits{MaxNumSeqs: n, MaxModelLen: 512}}, m)
			e, err := native.NewEngine(m, native.Options{Slots: n, MaxSeq: benchPromptLen + benchOut, MaxRows: n * benchPromptLen})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			g, err := native.NewGenerator(e, native.Decoding{Greedy: true, TopP: 1, RepetitionPenalty: 1}, true)
			if err != nil {
				b.Fatal(err)
			}
			reqs, res := make([]native.Request, n), make([]native.Result, n)
			var prompts [][]int32
			for i := range n {
				prompts = append(prompts, benchPrompt(m.Arch.VocabSize, i, benchPromptLen))
				reqs[i] = native.Request{Prompt: prompts[i], MaxNew: benchOut}
			}
			for b.Loop() {
				// Rounds alternate offline and served so that the load of
				// a shared machine drifts over both alike.
				var offWall, offCPU, srvWall, srvCPU time.Duration
				tokens := 0
				for range 3 {
					t0, c0 := time.Now(), cpuTime()
					if err := g.Run(context.Background(), reqs, res, func() int64 { return time.Now().UnixNano() }); err != nil {
						b.Fatal(err)
					}
					offWall, offCPU = offWall+time.Since(t0), offCPU+cpuTime()-c0
					c0 = cpuTime()
					tm, wall := concurrent(b, ts.url, prompts, benchOut)
					srvWall, srvCPU, tokens = srvWall+wall, srvCPU+cpuTime()-c0, tokens+tm.tokens
				}
				offline, served := float64(3*n*benchOut)/offWall.Seconds(), float64(tokens)/srvWall.Seconds()
				b.ReportMetric(offline, "offline_tok/s")
				b.ReportMetric(served, "served_tok/s")
				b.ReportMetric(100*served/offline, "served_%")
				if offCPU > 0 && srvCPU > 0 { // offline CPU / served CPU for the same tokens
					b.ReportMetric(100*offCPU.Seconds()/srvCPU.Seconds(), "served_cpu_%")
				}
				b.ReportMetric(0, "ns/op")
			}
		})
	}
}

// BenchmarkServeLongPrefill: 8 streams are decoding when two long prompts
// (1536 tokens) and a short one arrive. With chunked prefill (a 512-row
// step budget) the decodes stall at most one chunk; with a budget that
// takes a whole prompt at once (4096) they stall for all of it. Reports
// the running streams' worst and p99 ITL and the newcomers' TTFT.
func BenchmarkServeLongPrefill(b *testing.B) {
	m := benchModel(b)
	for _, budget := range []int{128, 512, 4096} {
		b.Run(fmt.Sprintf("budget=%d", budget), func(b *testing.B) {
			ts := startModel(b, Config{Limits: Limits{MaxNumSeqs: 16, MaxBatchedTokens: budget, MaxModelLen: 2048}}, m)
			for b.Loop() {
				longPrefill(b, ts, m.Arch.VocabSize, min(1536, m.Arch.MaxSeqLen-16))
			}
		})
	}
}

func longPrefill(b *testing.B, ts *testServer, vocab, long int) {
	const decoders, out = 8, 96
	var mu sync.Mutex
	var dec timing
	var wg sync.WaitGroup
	for i := range decoders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tm, err := streamOnce(ts.url, benchPrompt(vocab, i, 32), out)
			if err != nil {
				b.Error(err)
			}
			mu.Lock()
			dec.merge(tm)
			mu.Unlock()
		}()
	}
	ts.waitStats(b, "decoders running", func(s Stats) bool { return s.Running == decoders })
	// Two long prompts, then a short one behind them.
	newcomers := [][]int32{benchPrompt(vocab, 100, long), benchPrompt(vocab, 101, long), benchPrompt(vocab, 102, 32)}
	ttft := make([]time.Duration, len(newcomers))
	for i, p := range newcomers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tm, err := streamOnce(ts.url, p, 2)
			if err != nil {
				b.Error(err)
				return
			}
			ttft[i] = tm.ttft[0]
		}()
		ts.waitStats(b, "newcomer queued or admitted", func(s Stats) bool { return s.Running+s.Waiting >= decoders+i+1 || s.Running < decoders })
	}
	wg.Wait()
	b.ReportMetric(pct(dec.itl, 1), "decode_itl_max_ms")
	b.ReportMetric(pct(dec.itl, 0.99), "decode_itl_p99_ms")
	b.ReportMetric(pct(dec.itl, 0.5), "decode_itl_p50_ms")
	b.ReportMetric(float64(max(ttft[0], ttft[1]).Microseconds())/1000, "long_ttft_ms")
	b.ReportMetric(float64(ttft[2].Microseconds())/1000, "short_ttft_ms")
	b.ReportMetric(0, "ns/op")
}

package serve

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series. Names and meanings follow
// vLLM's (vllm:…, label model_name) so that dashboards and scrapers written
// for vLLM read llem-serve unchanged; what vLLM has no series for is
// llem:… . Each server has its own registry (tests run several).
type metrics struct {
	reg *prometheus.Registry

	running, waiting      prometheus.Gauge
	kvUsage, kvUsageOld   prometheus.Gauge
	promptTok, genTok     prometheus.Counter
	success               *prometheus.CounterVec
	ttft, itl, tpot, e2e  prometheus.Observer
	queue, prefill, decod prometheus.Observer
	infer                 prometheus.Observer
	reqPrompt, reqGen     prometheus.Observer
	iterTok               prometheus.Observer
	stepSec               *prometheus.HistogramVec
}

var (
	latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}
	tokenBuckets   = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}
)

func newMetrics(model string) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{m.reg, prometheus.Labels{"model_name": model}}
	m.running = f.gauge("vllm:num_requests_running", "Requests in the running batch (holding a KV slot).")
	m.waiting = f.gauge("vllm:num_requests_waiting", "Requests waiting for a slot or KV budget.")
	m.kvUsage = f.gauge("vllm:kv_cache_usage_perc", "Fraction (0-1) of the KV-cache token budget reserved by running requests.")
	m.kvUsageOld = f.gauge("vllm:gpu_cache_usage_perc", "Same as vllm:kv_cache_usage_perc, under vLLM's older name (the cache is in CPU memory here).")
	m.promptTok = f.counter("vllm:prompt_tokens", "Prompt tokens prefilled.")
	m.genTok = f.counter("vllm:generation_tokens", "Tokens generated.")
	m.success = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vllm:request_success_total", Help: "Requests finished, by finish reason.", ConstLabels: f.labels}, []string{"finished_reason"})
	m.reg.MustRegister(m.success)
	m.ttft = f.hist("vllm:time_to_first_token_seconds", "Time from arrival to the first token.", latencyBuckets)
	m.itl = f.hist("vllm:inter_token_latency_seconds", "Time between consecutive tokens of a request.", latencyBuckets)
	m.tpot = f.hist("vllm:request_time_per_output_token_seconds", "Per request: (end - first token) / (tokens - 1).", latencyBuckets)
	m.e2e = f.hist("vllm:e2e_request_latency_seconds", "Time from arrival to the end of a request.", latencyBuckets)
	m.queue = f.hist("vllm:request_queue_time_seconds", "Time a request waited before admission.", latencyBuckets)
	m.prefill = f.hist("vllm:request_prefill_time_seconds", "Time from admission to the end of the prompt's prefill.", latencyBuckets)
	m.decod = f.hist("vllm:request_decode_time_seconds", "Time from the first token to the last.", latencyBuckets)
	m.infer = f.hist("vllm:request_inference_time_seconds", "Time from admission to the end.", latencyBuckets)
	m.reqPrompt = f.hist("vllm:request_prompt_tokens", "Prompt tokens per request.", tokenBuckets)
	m.reqGen = f.hist("vllm:request_generation_tokens", "Generated tokens per request.", tokenBuckets)
	m.iterTok = f.hist("vllm:iteration_tokens_total", "Token rows per engine step (prefill and decode).", tokenBuckets)
	m.stepSec = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "llem:engine_step_seconds",
		Help: "Duration of an engine step; phase=prefill when the step carried prompt rows, else decode.", ConstLabels: f.labels, Buckets: latencyBuckets}, []string{"phase"})
	m.reg.MustRegister(m.stepSec)
	return m
}

type factory struct {
	reg    *prometheus.Registry
	labels prometheus.Labels
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.reg.MustRegister(g)
	return g
}

// counter registers a counter; the exposition adds "_total" to its name.
func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name + "_total", Help: help, ConstLabels: f.labels})
	f.reg.MustRegister(c)
	return c
}

func (f factory) hist(name, help string, buckets []float64) prometheus.Observer {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: f.labels, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (m *metrics) setState(st Stats) {
	m.running.Set(float64(st.Running))
	m.waiting.Set(float64(st.Waiting))
	u := 0.0
	if st.KVTokens > 0 {
		u = float64(st.KVUsedTokens) / float64(st.KVTokens)
	}
	m.kvUsage.Set(u)
	m.kvUsageOld.Set(u)
}

func (m *metrics) queued(q *seq) { m.queue.Observe(q.admitted.Sub(q.arrival).Seconds()) }

func (m *metrics) prefilled(q *seq, now time.Time) {
	m.promptTok.Add(float64(len(q.p.prompt)))
	m.prefill.Observe(now.Sub(q.admitted).Seconds())
}

// token is called for each token before q.lastTok moves to now.
func (m *metrics) token(q *seq, now time.Time) {
	m.genTok.Inc()
	if len(q.tokens) == 0 {
		m.ttft.Observe(now.Sub(q.arrival).Seconds())
	} else {
		m.itl.Observe(now.Sub(q.lastTok).Seconds())
	}
}

func (m *metrics) stepped(prefillRows, decodeRows int, d time.Duration) {
	m.iterTok.Observe(float64(prefillRows + decodeRows))
	phase := "decode"
	if prefillRows > 0 {
		phase = "prefill"
	}
	m.stepSec.WithLabelValues(phase).Observe(d.Seconds())
}

func (m *metrics) finished(q *seq, reason string, err error, now time.Time) {
	if err != nil || reason == "abort" || reason == "" {
		return // vLLM counts successes only; failures are in the request log
	}
	m.success.WithLabelValues(reason).Inc()
	m.e2e.Observe(now.Sub(q.arrival).Seconds())
	m.infer.Observe(now.Sub(q.admitted).Seconds())
	m.reqPrompt.Observe(float64(len(q.p.prompt)))
	m.reqGen.Observe(float64(len(q.tokens)))
	if len(q.tokens) > 0 {
		m.decod.Observe(q.lastTok.Sub(q.firstTok).Seconds())
	}
	if len(q.tokens) > 1 {
		m.tpot.Observe(q.lastTok.Sub(q.firstTok).Seconds() / float64(len(q.tokens)-1))
	}
}

package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/dataset"
)

// go-flags takes one choice tag per allowed value, which staticcheck's
// duplicate-tag check (SA5008) does not know.
type cmdOpts struct {
	URL         string        `long:"url" required:"true" value-name:"URL" description:"the server's OpenAI API base, e.g. http://127.0.0.1:8000/v1"`
	Rate        float64       `long:"rate" value-name:"R" description:"open loop: requests per second (inf: all at once)"`
	Duration    time.Duration `long:"duration" value-name:"D" description:"send for D (open loop: schedule offsets below D)"`
	NumRequests int           `short:"n" long:"num-requests" value-name:"N" description:"send N requests (with --duration: whichever comes first)"`
	//lint:ignore SA5008 go-flags reads repeated choice tags
	Arrival     string  `long:"arrival" default:"poisson" choice:"poisson" choice:"constant" choice:"gamma" description:"open-loop arrival process"`
	Burstiness  float64 `long:"burstiness" default:"1" value-name:"B" description:"gamma: shape of the gaps (1 Poisson, < 1 burstier, > 1 more even)"`
	Concurrency int     `long:"concurrency" value-name:"N" description:"closed loop instead: keep N requests in flight"`
	MaxInFlight int     `long:"max-in-flight" value-name:"N" description:"open loop: cap requests in flight (sends wait, counted as send lag)"`
	Trace       string  `long:"trace" value-name:"FILE" description:"replay arrival offsets and lengths from a .csv (Azure or BurstGPT layout) or .jsonl trace"`
	Dataset     string  `long:"dataset" default:"synthetic" value-name:"NAME" description:"prompts: synthetic, aienergyscore, or a .jsonl file"`
	InputLen    int     `long:"input-len" default:"256" value-name:"N" description:"synthetic prompt length, tokens (median when --input-sigma > 0)"`
	InputSigma  float64 `long:"input-sigma" value-name:"S" description:"lognormal sigma of prompt lengths (0: fixed)"`
	OutputLen   int     `long:"output-len" default:"128" value-name:"N" description:"max_tokens asked for (median when --output-sigma > 0)"`
	OutputSigma float64 `long:"output-sigma" value-name:"S" description:"lognormal sigma of output lengths (0: fixed)"`
	CharsPerTok float64 `long:"chars-per-token" default:"1" value-name:"C" description:"bytes of synthetic prompt per token (1 for a byte-level tokenizer, about 4 for subword ones)"`
	IgnoreEOS   bool    `long:"ignore-eos" description:"ask the server to generate max_tokens tokens (always on with --trace)"`
	//lint:ignore SA5008 go-flags reads repeated choice tags
	API     string        `long:"api" default:"completions" choice:"completions" choice:"chat" description:"endpoint: /completions or /chat/completions"`
	Model   string        `long:"model" value-name:"M" description:"model to name in requests (default: the server's first from /models)"`
	APIKey  string        `long:"api-key" env:"OPENAI_API_KEY" value-name:"KEY" description:"bearer token, if the server wants one"`
	Timeout time.Duration `long:"timeout" default:"10m" value-name:"D" description:"give up on a request after D"`
	Stall   time.Duration `long:"stall-timeout" default:"60s" value-name:"D" description:"give up on a request when no byte arrives for D"`
	Drain   time.Duration `long:"drain" default:"10s" value-name:"D" description:"on SIGINT/SIGTERM, wait at most D for requests in flight"`
	LagWarn time.Duration `long:"lag-warn" default:"5ms" value-name:"D" description:"warn when the send lag p99 exceeds D"`
	Spin    time.Duration `long:"spin" default:"0s" value-name:"D" description:"busy-wait the last D before each send time (precision for CPU)"`
	Seed    uint64        `long:"seed" value-name:"S" description:"seed of the schedule, the lengths and the prompts"`
	Quiet   bool          `short:"q" long:"quiet" description:"no summary on stderr"`
}

const cmdLong = `Drive an OpenAI-compatible server with streaming requests and write one NDJSON record per
request on stdout (schema: schemas/request.schema.json), then a summary on stderr.

Open loop (default): the send times are computed up front from --seed (--arrival poisson,
constant, or gamma with --burstiness; or --trace) and each request is sent at its time whether
or not earlier ones finished. Closed loop (--concurrency N): N requests always in flight.

SIGINT or SIGTERM stops sending; requests in flight get --drain to finish, and every request
sent is written. See docs/load.md.

  llem-load --url http://127.0.0.1:8000/v1 --rate 8 --duration 60s --seed 1 > requests.ndjson`

// Command is the body of llem-load.
func Command(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o cmdOpts
	if _, err := cli.Parse("llem-load", "--url URL [OPTIONS] > requests.ndjson", cmdLong, &o, args, stdout); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// A reader that goes away (| head) makes writes fail with EPIPE, which
	// stops the run with a message and the summary, instead of SIGPIPE
	// killing the process silently.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)
	return run(ctx, &o, stdout, stderr, Clock())
}

// run is Command after flag parsing, with the interrupt and the clock given.
func run(ctx context.Context, o *cmdOpts, stdout, stderr io.Writer, now func() int64) error {
	plan, work, offered, err := o.plan()
	if err != nil {
		return cli.Usage(err)
	}
	base, err := o.baseURL()
	if err != nil {
		return cli.Usage(err)
	}
	conns := max(o.MaxInFlight, o.Concurrency, 1024)
	c := &Client{HTTP: &http.Client{Transport: NewTransport(conns)}, Endpoint: base + "/completions", Chat: o.API == "chat",
		Model: o.Model, APIKey: o.APIKey, Timeout: o.Timeout, Stall: o.Stall, Now: now}
	if c.Chat {
		c.Endpoint = base + "/chat/completions"
	}
	if c.Model == "" {
		if c.Model, err = serverModel(ctx, c.HTTP, base, o.APIKey); err != nil {
			return err
		}
	}
	sum := &Summary{Offered: offered, LagWarn: o.LagWarn}
	res, err := Run(ctx, plan, c, work, stdout, sum)
	if !o.Quiet {
		sum.Print(stderr, "llem-load")
	}
	switch {
	case err != nil:
		return err
	case res.Interrupted:
		return &cli.Error{Code: cli.ExitInterrupted, Err: fmt.Errorf("interrupted after %d requests sent (%d scheduled); all of them written", res.Sent, res.Scheduled)}
	case res.Sent > 0 && sum.ok == 0:
		return fmt.Errorf("none of the %d requests succeeded (%s)", res.Sent, strings.Trim(sum.failures(), " ()"))
	}
	return nil
}

func (o *cmdOpts) baseURL() (string, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want http(s)://HOST[:PORT]/PATH, e.g. http://127.0.0.1:8000/v1", o.URL)
	}
	return strings.TrimRight(o.URL, "/"), nil
}

// plan checks the flags and builds the schedule and the workload; offered is
// the schedule's rate in requests/s (nil in closed loop).
func (o *cmdOpts) plan() (Plan, *Workload, *float64, error) {
	p := Plan{Concurrency: o.Concurrency, N: o.NumRequests, Duration: o.Duration, MaxInFlight: o.MaxInFlight, Drain: o.Drain, Spin: o.Spin}
	w := &Workload{Input: Lengths{o.InputLen, o.InputSigma}, Output: Lengths{o.OutputLen, o.OutputSigma},
		CharsPerToken: o.CharsPerTok, IgnoreEOS: o.IgnoreEOS, Seed: o.Seed}
	if err := o.check(); err != nil {
		return p, nil, nil, err
	}
	if err := o.loadInputs(w); err != nil {
		return p, nil, nil, err
	}
	if err := w.Prepare(); err != nil {
		return p, nil, nil, err
	}
	var offered *float64
	switch {
	case o.Concurrency > 0:
		return p, w, nil, nil
	case w.Trace != nil:
		p.Offsets = traceOffsets(w.Trace, o.NumRequests, o.Duration)
	default:
		var err error
		if p.Offsets, err = Offsets(o.Arrival, o.Rate, o.Burstiness, o.NumRequests, int64(o.Duration), o.Seed); err != nil {
			return p, nil, nil, err
		}
	}
	if n := len(p.Offsets); n > 1 && p.Offsets[n-1] > 0 {
		r := float64(n-1) / (float64(p.Offsets[n-1]) * 1e-9)
		offered = &r
	}
	return p, w, offered, nil
}

// check rejects flag combinations that do not make one clear plan.
func (o *cmdOpts) check() error {
	switch {
	case o.Concurrency < 0 || o.NumRequests < 0 || o.MaxInFlight < 0 || o.Duration < 0:
		return errors.New("--concurrency, --num-requests, --max-in-flight and --duration must not be negative")
	case o.Concurrency > 0 && (o.Rate != 0 || o.MaxInFlight > 0):
		return errors.New("--concurrency (closed loop) excludes --rate and --max-in-flight")
	case o.Concurrency > 0 && o.NumRequests == 0 && o.Duration == 0:
		return errors.New("--concurrency needs --num-requests or --duration")
	case o.Concurrency == 0 && o.Trace == "" && !(o.Rate > 0):
		return errors.New("give --rate R (open loop), --concurrency N (closed loop) or --trace FILE")
	case o.Trace != "" && o.Rate != 0:
		return errors.New("--trace sets the send times: it excludes --rate")
	case o.Concurrency == 0 && o.Trace == "" && o.NumRequests == 0 && o.Duration == 0:
		return errors.New("give --num-requests or --duration")
	case o.Timeout < 0 || o.Stall < 0 || o.Drain < 0 || o.Spin < 0 || o.Spin > time.Second:
		return errors.New("--timeout, --stall-timeout and --drain must not be negative, --spin in [0, 1s]")
	case math.IsNaN(o.Rate):
		return errors.New("--rate NaN")
	}
	if err := o.lengthsCheck(); err != nil {
		return err
	}
	return nil
}

func (o *cmdOpts) lengthsCheck() error {
	if err := (Lengths{o.InputLen, o.InputSigma}).check("input"); err != nil {
		return err
	}
	return (Lengths{o.OutputLen, o.OutputSigma}).check("output")
}

// loadInputs reads the dataset's prompts and the trace into w.
func (o *cmdOpts) loadInputs(w *Workload) error {
	if o.Dataset != config.DatasetSynthetic {
		path, err := dataset.Resolve(o.Dataset, "")
		if err != nil {
			return err
		}
		if w.Texts, _, err = dataset.ReadFile(path); err != nil {
			return err
		}
	}
	if o.Trace != "" {
		var err error
		if w.Trace, _, err = ReadTrace(o.Trace); err != nil {
			return err
		}
	}
	return nil
}

// traceOffsets returns the trace's send times, cut to n requests and to
// those before d where they are set.
func traceOffsets(es []Entry, n int, d time.Duration) []int64 {
	out := make([]int64, 0, len(es))
	for _, e := range es {
		if (n > 0 && len(out) == n) || (d > 0 && e.OffsetNS >= int64(d)) {
			break
		}
		out = append(out, e.OffsetNS)
	}
	return out
}

// serverModel asks the server for its models and returns the first.
func serverModel(ctx context.Context, hc *http.Client, base, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/models", nil)
	if err != nil {
		return "", err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	fail := func(why string) error {
		return fmt.Errorf("GET %s/models: %s; name the model with --model", base, why)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fail(err.Error())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fail(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, errorMessage(body)))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Data) == 0 || list.Data[0].ID == "" {
		return "", fail("no model listed")
	}
	return list.Data[0].ID, nil
}

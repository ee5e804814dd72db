package runloop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/internal/runner/docker"
	"github.com/llem/llem/internal/runner/local"
	"github.com/llem/llem/internal/sampler"
	"github.com/llem/llem/internal/worker/nativeworker"
)

type cmdOpts struct {
	Out         string        `long:"out" default:"results" description:"results directory; a study writes <out>/<study>-<hash8>/"`
	Worker      []string      `long:"worker" value-name:"BACKEND=CMD" description:"worker command for a backend (split on spaces)"`
	Timeout     time.Duration `long:"timeout" description:"per-run timeout (default max(600s, 2s x n))"`
	Grace       time.Duration `long:"grace" default:"10s" description:"time between SIGTERM and SIGKILL for a worker"`
	NoGaps      bool          `long:"no-gaps" description:"skip the thermal gaps between runs"`
	SkipFailed  bool          `long:"skip-failed" description:"on resume, do not rerun runs that failed"`
	FailFast    bool          `long:"fail-fast" description:"stop at the first run that does not finish ok"`
	KeepGoing   bool          `long:"keep-going" description:"go on after a failed run (the default)"`
	DryRun      bool          `long:"dry-run" description:"run nothing; emit planned/done run records"`
	Shard       string        `long:"shard" value-name:"i/n" description:"take the i-th (1-based) of n shares (see --shard-by)"`
	ShardBy     string        `long:"shard-by" value-name:"seq|config" default:"seq" description:"--shard by run seq, or by config: all cycles of a config in one share, in order"`
	Print       string        `long:"print" value-name:"runs|configs|gpus|pending" description:"run nothing; print how many runs, distinct configs, GPUs per run (most), or runs not yet ok under --out"`
	Select      string        `long:"select" value-name:"LIST" description:"only these runs: run ids and seq ranges, e.g. 0-3,7,abc-c2"`
	Baseline    string        `long:"baseline" value-name:"DURATION|config" default:"config" description:"idle power measurement before the first run: a duration (0 skips), or config = as the study's baseline section says (duration_seconds, default 30 s; enabled: false skips)"`
	BaselineTTL time.Duration `long:"baseline-ttl" default:"1h" description:"measure idle power again when the last baseline is older"`
	Sampler     string        `long:"sampler" default:"auto" description:"sample sources: auto, none, or a comma list of nvml,rapl,estimate"`
	SamplerCmd  string        `long:"sampler-cmd" value-name:"CMD" description:"record samples with this program (sh -c; {} = output path, else its stdout; {gpus} = the GPU UUIDs to record)"`
	Interval    time.Duration `long:"interval" default:"50ms" description:"sampling interval"`
	Parallel    int           `long:"parallel" default:"1" value-name:"N" description:"run up to N experiments at once, each on its own GPUs (no thermal gaps then)"`
	GPUs        string        `long:"gpus" value-name:"LIST" description:"GPUs runs may use, by index or UUID, comma-separated (default: all visible; honours CUDA_VISIBLE_DEVICES)"`
	CacheDir    string        `long:"cache-dir" value-name:"DIR" description:"where the embedded Python workers are extracted (default $LLEM_CACHE_DIR, else ~/.cache/llem)"`

	Docker docker.Flags `group:"Docker runner (runs whose runner is docker)"`
}

const cmdLong = `Runs each experiment record of the input (stdin or FILEs) in a fresh worker
process, with power sampled around it, and emits a run record per run (and a
baseline record per idle measurement); other record kinds pass through.

Writes <out>/<study>-<hash8>/{journal.ndjson, lock, baseline-*, runs/<run_id>/}.
Rerunning the same stream into the same --out resumes: runs already ok are not
repeated (their run records are re-emitted), the others run again.
Each run gets the GPUs its config needs (tensor x pipeline parallel sizes; none
for native) and is sampled on those only; --parallel N runs up to N side by side
on disjoint GPUs. A run needing more GPUs than llem-exec may use fails
(not_enough_gpus) and the next one runs. The study's runners: (local, docker,
docker:IMAGE) says where each backend's worker runs; docker needs a Docker
engine (DOCKER_HOST) only when the stream has docker runs.
First SIGINT/SIGTERM stops the current worker (SIGTERM, --grace, SIGKILL) and
exits 130; a second one kills it at once. See docs/exec.md.
Slurm array jobs (scripts/slurm, docs/slurm.md) run one --shard per task,
sized and resumed with --print.

  llem-expand study.yaml | llem-exec --out results | llem-aggregate`

// WorkerCommand is the hidden subcommand under which llem-exec runs the
// native backend's worker: `llem-exec __worker native` (the native
// backend's worker command, see cmdOptions).
var WorkerCommand = []string{"__worker", "native"}

// Command is the body of llem-exec; `llem-exec __worker native` runs the
// native worker instead (nativeworker.Main, stopped by SIGINT/SIGTERM).
func Command(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) >= 2 && args[0] == WorkerCommand[0] && args[1] == WorkerCommand[1] {
		if err := nativeworker.Command(args[2:], stdin, stdout, stderr); err != nil {
			return fmt.Errorf("native worker: %w", err)
		}
		return nil
	}
	var o cmdOpts
	files, err := cli.Parse("llem-exec", "[OPTIONS] [FILE...]", cmdLong, &o, args, stdout,
		cli.ExitOK, cli.ExitFailure, cli.ExitUsage, cli.ExitSomeFailed, cli.ExitInterrupted)
	if err != nil {
		return err
	}
	eo, err := o.options(stderr)
	if err != nil {
		return err
	}
	inputs, closeInputs, err := openInputs(files, stdin)
	if err != nil {
		return err
	}
	defer closeInputs()
	ctx, stop := interrupts(&eo, stderr)
	defer stop()
	return Run(ctx, eo, inputs, stdout, stderr)
}

// options checks the flags and turns them into the loop's Options: the
// workers, the runners, the GPUs, the sampler, the runs to take.
func (o *cmdOpts) options(stderr io.Writer) (Options, error) {
	if o.Parallel < 1 {
		return Options{}, cli.Usagef("--parallel %d: want N >= 1", o.Parallel)
	}
	if o.ShardBy != ShardBySeq && o.ShardBy != ShardByConfig {
		return Options{}, cli.Usagef("--shard-by %q: want seq or config", o.ShardBy)
	}
	eo := Options{Out: o.Out, Timeout: o.Timeout, Grace: o.Grace, NoGaps: o.NoGaps,
		SkipFailed: o.SkipFailed, FailFast: o.FailFast && !o.KeepGoing, DryRun: o.DryRun, Host: HostFacts(),
		Progress: stderr, Parallel: o.Parallel, CacheDir: o.CacheDir, ShardBy: o.ShardBy, Print: o.Print}
	var err error
	if eo.Workers, err = o.workers(); err != nil {
		return eo, err
	}
	eo.ServerPrograms = serverPrograms()
	if eo.Runners, err = o.runners(stderr); err != nil {
		return eo, err
	}
	baseline := time.Duration(-1) // from each experiment's config
	if o.Baseline != "config" {
		if baseline, err = time.ParseDuration(o.Baseline); err != nil || baseline < 0 {
			return eo, cli.Usagef("--baseline %q: want a duration such as 30s (0 skips) or config", o.Baseline)
		}
	}
	if o.Print != "" {
		if !slices.Contains(Prints, o.Print) {
			return eo, cli.Usagef("--print %q: want one of %s", o.Print, strings.Join(Prints, ", "))
		}
		// Nothing runs: no sampler to probe.
		o.Sampler, o.SamplerCmd = "none", ""
	}
	gpuSel := cli.SplitList(o.GPUs)
	if err := findGPUs(&eo, gpuSel, stderr); err != nil {
		return eo, err
	}
	o.sampler(&eo, gpuSel, baseline, stderr)
	if err := o.selection(&eo); err != nil {
		return eo, err
	}
	return eo, nil
}

// workers are the worker commands by backend: the native worker is this
// program (WorkerCommand); pytorch, vllm and tensorrt are the embedded Python
// workers, extracted under --cache-dir at pre-flight when the stream has
// local runs of them; --worker overrides any.
func (o *cmdOpts) workers() (map[string][]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	workers := map[string][]string{"native": append([]string{self}, WorkerCommand...)}
	for _, w := range o.Worker {
		b, c, ok := strings.Cut(w, "=")
		if !ok || b == "" || len(strings.Fields(c)) == 0 {
			return nil, cli.Usagef("--worker %q: want BACKEND=CMD", w)
		}
		workers[b] = strings.Fields(c)
	}
	return workers, nil
}

// serverPrograms are where a local serving run's server programs are:
// llem-serve, the native backend's server, beside llem-exec (where the
// native worker is); python3 (SGLang's launch_server) is $LLEM_PYTHON where
// set, the Python the Python workers run on. Others are looked up on PATH.
func serverPrograms() map[string]string {
	progs := map[string]string{}
	if self, err := os.Executable(); err == nil {
		progs["llem-serve"] = filepath.Join(filepath.Dir(self), "llem-serve")
	}
	if py := os.Getenv("LLEM_PYTHON"); py != "" {
		progs["python3"] = py
	}
	return progs
}

// runners are the local runner and the docker runner, made on first use: a
// stream without docker runs needs no engine.
func (o *cmdOpts) runners(stderr io.Writer) (map[string]runner.Runner, error) {
	dopts, err := o.Docker.Options(o.CacheDir)
	if err != nil {
		return nil, cli.Usage(err)
	}
	dopts.Log = stderr
	return map[string]runner.Runner{"local": local.New(),
		"docker": runner.Lazy("docker", func() (runner.Runner, error) { return docker.New(dopts) })}, nil
}

// sampler sets the sampler and baselines: --sampler-cmd, else the internal
// sampler on the sources --sampler names where any of them is here; none
// leaves runs without samples (a warning when asked for and absent).
func (o *cmdOpts) sampler(eo *Options, gpuSel []string, baseline time.Duration, stderr io.Writer) {
	if o.SamplerCmd != "" {
		eo.Sampler = &CmdSampler{Cmd: o.SamplerCmd, GPUs: eo.GPUs}
		eo.Baseline, eo.BaselineTTL = baseline, o.BaselineTTL
		return
	}
	if o.Sampler == "none" {
		return
	}
	so := sampler.Options{Interval: o.Interval, Sources: cli.SplitList(o.Sampler), GPUs: gpuSel,
		Warn: func(m string) { fmt.Fprintf(stderr, "llem-exec: sampler: %s\n", m) }}
	if _, _, err := sampler.Probe(so); err != nil {
		fmt.Fprintf(stderr, "llem-exec: warning: no power sampling (%v); runs carry no samples\n", err)
		return
	}
	eo.Sampler = &InternalSampler{Opts: so}
	eo.Baseline, eo.BaselineTTL = baseline, o.BaselineTTL
}

// selection sets the runs to take: --select and --shard.
func (o *cmdOpts) selection(eo *Options) error {
	if o.Select != "" {
		sel, err := ParseSelect(o.Select)
		if err != nil {
			return cli.Usage(err)
		}
		eo.Select = sel
	}
	if o.Shard != "" {
		a, b, ok := strings.Cut(o.Shard, "/")
		i, e1 := strconv.Atoi(a)
		n, e2 := strconv.Atoi(b)
		if !ok || e1 != nil || e2 != nil || n < 1 || i < 1 || i > n {
			return cli.Usagef("--shard %q: want i/n with 1 <= i <= n", o.Shard)
		}
		eo.Shard = [2]int{i, n}
	}
	return nil
}

// openInputs reads the FILEs, or stdin when there are none ("-" is stdin too).
func openInputs(files []string, stdin io.Reader) ([]*record.Reader, func(), error) {
	var inputs []*record.Reader
	var open []*os.File
	closeAll := func() {
		for _, f := range open {
			f.Close()
		}
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, f := range files {
		if f == "-" {
			inputs = append(inputs, record.NewReader(stdin, "-"))
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			closeAll()
			return nil, nil, cli.Usage(err)
		}
		open = append(open, fh)
		inputs = append(inputs, record.NewReader(fh, f))
	}
	return inputs, closeAll, nil
}

// interrupts makes the loop's context: the first SIGINT/SIGTERM cancels it
// (workers get SIGTERM and the grace), the second closes eo.Kill (workers
// are killed at once). stop hands the signals back.
func interrupts(eo *Options, stderr io.Writer) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	kill := make(chan struct{})
	var n atomic.Int32
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		for range sig {
			switch n.Add(1) {
			case 1:
				fmt.Fprintln(stderr, "llem-exec: interrupt: stopping the current run (again to kill it at once)")
				cancel()
			case 2:
				close(kill)
			}
		}
	}()
	eo.Kill = kill
	eo.Interrupted = func() bool { return n.Load() > 0 }
	return ctx, func() { signal.Stop(sig); cancel() }
}

// findGPUs sets the GPUs runs may use (UUIDs, from NVML, honouring
// CUDA_VISIBLE_DEVICES and --gpus) and the host's GPU facts. Without NVML
// (no NVIDIA driver, or a build without cgo) --gpus is taken as given.
func findGPUs(eo *Options, sel []string, stderr io.Writer) error {
	devs, host, err := sampler.Probe(sampler.Options{Sources: []string{"nvml"}, GPUs: sel})
	var ue *sampler.UsageError
	switch {
	case errors.As(err, &ue):
		return cli.Usage(err)
	case err != nil && len(sel) > 0:
		fmt.Fprintf(stderr, "llem-exec: no NVML here (%v): --gpus taken as given, unchecked: %s\n", err, strings.Join(sel, ","))
		eo.GPUs = sel
		return nil
	case err != nil && !errors.Is(err, sampler.ErrNoNVML):
		fmt.Fprintf(stderr, "llem-exec: warning: GPUs not found (%v); runs that need one fail\n", err)
		return nil
	case err != nil:
		return nil
	}
	eo.Host.GPUs, eo.Host.DriverVersion, eo.Host.CUDAVersion, eo.Host.NVMLVersion = host.GPUs, host.DriverVersion, host.CUDAVersion, host.NVMLVersion
	for _, d := range devs {
		switch {
		case d.GPU != nil && len(d.GPU.MIG) > 0:
			// Runs get the MIG instances (what CUDA and the container
			// toolkit select); the sampler measures their parent GPU.
			eo.GPUs = append(eo.GPUs, d.GPU.MIG...)
		case d.GPU != nil:
			eo.GPUs = append(eo.GPUs, d.GPU.UUID)
		}
	}
	return nil
}

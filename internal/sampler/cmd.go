package sampler

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/cpuattr"
)

type cmdOpts struct {
	Output       string        `short:"o" long:"output" value-name:"FILE" description:"write the Arrow IPC sample stream to FILE (default: stdout)"`
	Interval     time.Duration `long:"interval" default:"50ms" value-name:"DURATION" description:"sampling interval, 1ms or more"`
	Sources      string        `long:"sources" default:"auto" value-name:"LIST" description:"comma-separated: auto, or any of nvml, rapl, estimate (auto: NVML and RAPL where present, the estimate where neither is)"`
	GPUs         string        `long:"gpus" value-name:"LIST" description:"GPUs by index or UUID, comma-separated (default: all visible; honours CUDA_VISIBLE_DEVICES)"`
	WattsPerCore float64       `long:"watts-per-core" value-name:"W" description:"estimate source: power of one busy logical CPU (default: the CPU model's TDP / hardware threads where llem's table has the model, else 10)"`
	RunCgroup    string        `long:"run-cgroup" value-name:"DIR" description:"record the CPU time of the cgroup v2 DIR beside the machine's, so CPU energy can be attributed to it"`
	RunPID       int           `long:"run-pid" value-name:"PID" description:"record the CPU time of PID's process tree beside the machine's"`
	Machine      bool          `long:"machine" description:"with a command: do not record its CPU time (the summary's run_j column goes)"`
	IgnoreStdin  bool          `long:"ignore-stdin" description:"do not stop when stdin closes (for a sampler started with stdin at /dev/null)"`
	Quiet        bool          `short:"q" long:"quiet" description:"no energy summary on stderr"`
}

const cmdLong = `Sample GPU (NVML), CPU package/core/uncore/DRAM (RAPL) power and, where neither exists, a
labelled CPU-time estimate, into an Arrow IPC stream (one row per device per tick; schema in
schemas/samples.arrow-schema.md).

Without a command, samples until SIGINT/SIGTERM or stdin closes (exit 0). With "-- CMD ARGS",
runs the command, samples while it runs, prints an energy summary per device on stderr and exits
with the command's exit code (128+N when a signal N killed it). A write error on the output (full
disk, closed pipe) stops sampling with a message; what was written stays readable.`

// Command is the body of llem-sample.
func Command(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o cmdOpts
	rest, err := cli.Parse("llem-sample", "[OPTIONS] [-- CMD ARGS...]", cmdLong, &o, args, stdout, cli.ExitOK, cli.ExitFailure, cli.ExitUsage)
	if err != nil {
		return err
	}
	opts := Options{Interval: o.Interval, Sources: cli.SplitList(o.Sources), GPUs: cli.SplitList(o.GPUs), WattsPerCore: o.WattsPerCore}
	if err := opts.defaults(); err != nil {
		return cli.Usage(err)
	}
	if o.WattsPerCore < 0 {
		return cli.Usagef("--watts-per-core must be positive")
	}
	if o.RunCgroup != "" && o.RunPID != 0 {
		return cli.Usagef("--run-cgroup and --run-pid exclude each other")
	}
	opts.Warn = func(m string) { fmt.Fprintf(stderr, "llem-sample: warning: %s\n", m) }
	out, file, err := openOutput(o.Output, stdout)
	if err != nil {
		return err
	}
	if file != nil {
		defer file.Close()
	}

	// Writes to a closed pipe return EPIPE (a clear error) instead of
	// killing the process with SIGPIPE.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sig)

	var child *exec.Cmd
	if len(rest) > 0 {
		if child, err = command(rest, stdin, stdout, stderr, file == nil); err != nil {
			return err
		}
	}
	target := runTarget(&o, &opts, child != nil)
	defer target.Close()
	s, err := Start(opts, out)
	if err != nil {
		var ue *UsageError
		if errors.As(err, &ue) {
			return cli.Usage(err)
		}
		return err
	}
	t0 := time.Now()
	code := 0
	if child != nil {
		if code, err = sampleCommand(s, child, target, sig, stderr); err != nil {
			return err
		}
	} else {
		sampleUntilStopped(s, sig, stdin, o.IgnoreStdin)
	}
	st, serr := s.Stop()
	if file != nil && serr == nil {
		if err := file.Close(); err != nil {
			serr = fmt.Errorf("closing %s: %w", o.Output, err)
		}
	}
	if !o.Quiet {
		PrintSummary(stderr, st, time.Since(t0), opts.Interval)
	}
	return ended(child != nil, code, serr)
}

// runTarget sets opts.Run from --run-cgroup or --run-pid, or, around a
// command, to the command's own cgroup (its process tree where cgroup v2
// cannot be written; --machine: none). The target it returns (nil: none)
// takes the command's process once started.
func runTarget(o *cmdOpts, opts *Options, withCommand bool) *cpuattr.Target {
	switch {
	case o.RunCgroup != "":
		opts.Run = cpuattr.CgroupCPU(o.RunCgroup)
	case o.RunPID > 0:
		pid := o.RunPID
		opts.Run = cpuattr.TreeCPU(opts.ProcRoot, func() int { return pid })
	case withCommand && !o.Machine:
		t := cpuattr.New(cpuattr.Paths{}, fmt.Sprintf("llem-sample-%d", os.Getpid()))
		opts.Run = t.RunCPU()
		return t
	}
	return nil
}

// openOutput is where the samples go: -o FILE (file is then that file, for
// the caller to close), else stdout, unless stdout is a terminal.
func openOutput(path string, stdout io.Writer) (out io.Writer, file *os.File, err error) {
	if path != "" && path != "-" {
		file, err = os.Create(path)
		if err != nil {
			return nil, nil, err
		}
		return file, file, nil
	}
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return nil, nil, cli.Usagef("refusing to write a binary Arrow stream to a terminal; use -o FILE or a pipe")
	}
	return stdout, nil, nil
}

// command is the command to sample around, with llem-sample's stdin and
// stderr; its stdout goes to stderr when stdout carries the samples.
func command(argv []string, stdin io.Reader, stdout, stderr io.Writer, samplesOnStdout bool) (*exec.Cmd, error) {
	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin = stdin
	child.Stdout = stdout
	if samplesOnStdout {
		child.Stdout = stderr
	}
	child.Stderr = stderr
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, cli.Usage(err)
	}
	return child, nil
}

// sampleCommand runs child while s samples, passing SIGINT and SIGTERM on to
// it, and returns its exit code (128+N when signal N killed it). An output
// failure stops the sampling, not the command.
func sampleCommand(s *Session, child *exec.Cmd, target *cpuattr.Target, sig <-chan os.Signal, stderr io.Writer) (int, error) {
	if err := child.Start(); err != nil {
		s.Stop()
		return 0, fmt.Errorf("starting %s: %w", child.Args[0], err)
	}
	if err := target.Add(child.Process.Pid); err != nil {
		fmt.Fprintf(stderr, "llem-sample: warning: %v\n", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	for {
		select {
		case err := <-exited:
			return exitCode(err), nil
		case sg := <-sig:
			if sg != syscall.SIGPIPE { // pass the signal on; its exit ends the wait
				child.Process.Signal(sg)
			}
		case <-s.Done(): // output failed; the command goes on, unsampled
			fmt.Fprintf(stderr, "llem-sample: %v\n", s.Err())
			return exitCode(<-exited), nil
		}
	}
}

// sampleUntilStopped samples until SIGINT/SIGTERM, the end of stdin (unless
// ignored) or an output failure.
func sampleUntilStopped(s *Session, sig <-chan os.Signal, stdin io.Reader, ignoreStdin bool) {
	eof := make(chan struct{})
	if !ignoreStdin && stdin != nil {
		go func() { io.Copy(io.Discard, stdin); close(eof) }()
	}
	for {
		select {
		case sg := <-sig:
			if sg != syscall.SIGPIPE {
				return
			}
		case <-eof:
			return
		case <-s.Done():
			return
		}
	}
}

// ended is llem-sample's result: the command's exit code, and a failure of
// the samples (exit 1 when the command itself succeeded).
func ended(withCommand bool, code int, serr error) error {
	switch {
	case withCommand && serr != nil:
		if code == 0 {
			code = cli.ExitFailure
		}
		return &cli.Error{Code: code, Err: fmt.Errorf("samples incomplete: %w", serr)}
	case serr != nil:
		return serr
	case code != 0:
		return &cli.Error{Code: code}
	}
	return nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return cli.ExitFailure
	}
	return 0
}

// PrintSummary writes the one-screen energy summary of a session.
func PrintSummary(w io.Writer, st Stats, wall time.Duration, interval time.Duration) {
	fmt.Fprintf(w, "llem-sample: %.2f s, %d ticks at %s (%d late), %d rows\n", wall.Seconds(), st.Ticks, interval, st.LateTicks, st.Rows)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	withRun := false
	for _, d := range st.Summary {
		withRun = withRun || d.RunJ != nil
	}
	runHead := ""
	if withRun {
		runHead = "run_j\t"
	}
	fmt.Fprintln(tw, "device\tsource\tscope\tcounter_j\t"+runHead+"integral_j\tgap_pct\tmean_w\tsamples\t")
	f := func(p *float64, prec int) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.*f", prec, *p)
	}
	for _, d := range st.Summary {
		name := d.Device.Device
		if d.Device.Estimate {
			name += " (estimate)"
		}
		// gap_pct: (integral − counter) / counter, where both exist.
		var gap *float64
		if d.CounterJ != nil && d.IntegralJ != nil && *d.CounterJ > 0 {
			g := (*d.IntegralJ - *d.CounterJ) / *d.CounterJ * 100
			gap = &g
		}
		run := ""
		if withRun {
			run = f(d.RunJ, 2) + "\t"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s%s\t%s\t%s\t%d\t\n", name, d.Device.Source, d.Device.Scope, f(d.CounterJ, 2), run, f(d.IntegralJ, 2), f(gap, 1), f(d.MeanPowerW, 1), d.Samples)
	}
	tw.Flush()
	if withRun {
		fmt.Fprintln(w, "run_j: the run's share of counter_j (each interval's energy × its share of the machine's busy CPU time)")
	}
}

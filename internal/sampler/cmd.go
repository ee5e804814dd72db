package sampler

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/llem/llem/internal/cli"
)

type cmdOpts struct {
	Output       string        `short:"o" long:"output" value-name:"FILE" description:"write the Arrow IPC sample stream to FILE (default: stdout)"`
	Interval     time.Duration `long:"interval" default:"50ms" value-name:"DURATION" description:"sampling interval, 1ms or more"`
	Sources      string        `long:"sources" default:"auto" value-name:"LIST" description:"comma-separated: auto, or any of nvml, rapl, estimate (auto: NVML and RAPL where present, the estimate where neither is)"`
	GPUs         string        `long:"gpus" value-name:"LIST" description:"GPUs by index or UUID, comma-separated (default: all visible; honours CUDA_VISIBLE_DEVICES)"`
	WattsPerCore float64       `long:"watts-per-core" default:"10" value-name:"W" description:"estimate source: power of one fully busy core"`
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
	rest, err := cli.Parse("llem-sample", "[OPTIONS] [-- CMD ARGS...]", cmdLong, &o, args, stdout)
	if err != nil {
		return err
	}
	opts := Options{Interval: o.Interval, Sources: splitList(o.Sources), GPUs: splitList(o.GPUs), WattsPerCore: o.WattsPerCore}
	if err := opts.defaults(); err != nil {
		return cli.Usage(err)
	}
	if o.WattsPerCore <= 0 {
		return cli.Usagef("--watts-per-core must be positive")
	}
	opts.Warn = func(m string) { fmt.Fprintf(stderr, "llem-sample: warning: %s\n", m) }

	out := stdout
	var file *os.File
	if o.Output != "" && o.Output != "-" {
		file, err = os.Create(o.Output)
		if err != nil {
			return err
		}
		defer file.Close()
		out = file
	} else if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return cli.Usagef("refusing to write a binary Arrow stream to a terminal; use -o FILE or a pipe")
	}

	// Writes to a closed pipe return EPIPE (a clear error) instead of
	// killing the process with SIGPIPE.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sig)

	var child *exec.Cmd
	if len(rest) > 0 {
		child = exec.Command(rest[0], rest[1:]...)
		child.Stdin = stdin
		child.Stdout = stdout
		if file == nil { // stdout carries the samples
			child.Stdout = stderr
		}
		child.Stderr = stderr
		if _, err := exec.LookPath(rest[0]); err != nil {
			return cli.Usage(err)
		}
	}

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
		if err := child.Start(); err != nil {
			s.Stop()
			return fmt.Errorf("starting %s: %w", rest[0], err)
		}
		exited := make(chan error, 1)
		go func() { exited <- child.Wait() }()
	wait:
		for {
			select {
			case err := <-exited:
				code = exitCode(err)
				break wait
			case sg := <-sig:
				if sg != syscall.SIGPIPE { // pass the signal on; its exit ends the wait
					child.Process.Signal(sg)
				}
			case <-s.Done(): // output failed; the command goes on, unsampled
				fmt.Fprintf(stderr, "llem-sample: %v\n", s.Err())
				code = exitCode(<-exited)
				break wait
			}
		}
	} else {
		eof := make(chan struct{})
		if !o.IgnoreStdin && stdin != nil {
			go func() { io.Copy(io.Discard, stdin); close(eof) }()
		}
	loop:
		for {
			select {
			case sg := <-sig:
				if sg != syscall.SIGPIPE {
					break loop
				}
			case <-eof:
				break loop
			case <-s.Done():
				break loop
			}
		}
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
	switch {
	case child != nil && serr != nil:
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

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// PrintSummary writes the one-screen energy summary of a session.
func PrintSummary(w io.Writer, st Stats, wall time.Duration, interval time.Duration) {
	fmt.Fprintf(w, "llem-sample: %.2f s, %d ticks at %s (%d late), %d rows\n", wall.Seconds(), st.Ticks, interval, st.LateTicks, st.Rows)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "device\tsource\tscope\tcounter_j\tintegral_j\tgap_pct\tmean_w\tsamples\t")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", name, d.Device.Source, d.Device.Scope, f(d.CounterJ, 2), f(d.IntegralJ, 2), f(gap, 1), f(d.MeanPowerW, 1), d.Samples)
	}
	tw.Flush()
}

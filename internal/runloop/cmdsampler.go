package runloop

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/llem/llem/internal/power"
)

// CmdSampler runs any program that writes the Arrow sample stream (see
// schemas/ and internal/power): to the path put in place of "{}" in Cmd, or
// else to its stdout, which goes to the file. It is stopped with SIGINT to its
// process group, then SIGTERM, then SIGKILL, Grace apart. What it recorded is
// read back with internal/power for the sources, devices and mean power.
type CmdSampler struct {
	Cmd   string // run with sh -c; "{gpus}" = the GPU UUIDs to record, comma-separated
	Grace time.Duration
	GPUs  []string // "{gpus}" outside a run (the idle baseline): every GPU
}

type cmdSession struct {
	c     *exec.Cmd
	f     *os.File
	path  string
	grace time.Duration
	done  chan error
	stdin interface{ Close() error }
}

// Start launches the sampler program for path.
func (cs *CmdSampler) Start(path string) (SamplerSession, error) {
	line := strings.ReplaceAll(cs.Cmd, "{gpus}", shellQuote(strings.Join(cs.GPUs, ",")))
	var f *os.File
	c := exec.Command("sh", "-c", "")
	if strings.Contains(line, "{}") {
		line = strings.ReplaceAll(line, "{}", shellQuote(path))
	} else {
		var err error
		if f, err = os.Create(path); err != nil {
			return nil, err
		}
		c.Stdout = f
	}
	c.Args = []string{"sh", "-c", line}
	// stdin stays open while sampling: samplers that stop when stdin closes
	// (llem-sample does) must not stop at once.
	stdin, err := c.StdinPipe()
	if err != nil {
		return nil, err
	}
	c.Stderr = os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("--sampler-cmd: %w", err)
	}
	g := cs.Grace
	if g <= 0 {
		g = 5 * time.Second
	}
	s := &cmdSession{c: c, f: f, path: path, grace: g, done: make(chan error, 1), stdin: stdin}
	go func() { s.done <- c.Wait() }()
	return s, nil
}

// StartGPUs is Start for one run: "{gpus}" becomes that run's GPUs (empty for a
// run that uses none).
func (cs *CmdSampler) StartGPUs(path string, gpus []string) (SamplerSession, error) {
	c := *cs
	c.GPUs = gpus
	return c.Start(path)
}

func (s *cmdSession) Stop() (SampleInfo, error) {
	pg := s.c.Process.Pid
	var werr error
	stopped, early := false, false
	// A sampler that is already gone died during the run (killed, crashed,
	// out of disk): whatever it exited with, its samples stop early.
	select {
	case werr = <-s.done:
		stopped, early = true, true
	default:
	}
	s.stdin.Close()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		if stopped {
			break
		}
		syscall.Kill(-pg, sig)
		select {
		case werr = <-s.done:
			stopped = true
		case <-time.After(s.grace):
		}
		if stopped {
			break
		}
	}
	if !stopped {
		werr = <-s.done
	}
	syscall.Kill(-pg, syscall.SIGKILL)
	if s.f != nil {
		s.f.Sync()
		s.f.Close()
	}
	var info SampleInfo
	if early {
		return info, fmt.Errorf("--sampler-cmd ended before the run did (%v); the samples stop there", werr)
	}
	if ee, ok := werr.(*exec.ExitError); ok && ee.Exited() && ee.ExitCode() != 0 && ee.ExitCode() != 130 {
		return info, fmt.Errorf("--sampler-cmd exited with code %d", ee.ExitCode())
	}
	r, err := power.Open(s.path)
	if err != nil {
		return info, fmt.Errorf("--sampler-cmd output: %w", err)
	}
	defer r.Close()
	means, err := power.MeanPower(r, 0, 0)
	seen := map[string]bool{}
	for _, d := range r.Devices() {
		info.Devices = append(info.Devices, d.Device)
		info.Estimate = info.Estimate || d.Estimate
		if !seen[d.Source] {
			seen[d.Source] = true
			info.Sources = append(info.Sources, d.Source)
		}
	}
	for _, m := range means {
		info.Idle = append(info.Idle, idleOf(m))
	}
	return info, err
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

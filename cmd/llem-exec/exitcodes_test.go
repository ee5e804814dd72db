package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/llem/llem/internal/aggregate"
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/report"
	"github.com/llem/llem/internal/runloop"
	"github.com/llem/llem/internal/sampler"
	"github.com/llem/llem/internal/study"
)

// TestExitCodesPerTool: each tool's --help lists the exit codes it returns,
// from the one table, and no other tool's.
func TestExitCodesPerTool(t *testing.T) {
	const base = "Exit codes: 0 ok, 1 runtime failure, 2 usage or input error"
	for _, c := range []struct {
		name    string
		cmd     cli.Command
		want    string
		without []string
	}{
		{"llem-exec", runloop.Command, base + ", 3 finished but some runs failed, 130 interrupted.", nil},
		{"llem-report", report.Command, base + ", 130 interrupted.", []string{"3 finished"}},
		{"llem-expand", study.Command, base + ".", []string{"3 finished", "130 interrupted"}},
		{"llem-aggregate", aggregate.Command, base + ".", []string{"3 finished", "130 interrupted"}},
		{"llem-sample", sampler.Command, base + ".", []string{"3 finished", "130 interrupted"}},
	} {
		var out bytes.Buffer
		if code := cli.Run(c.name, c.cmd, []string{"--help"}, nil, &out, &out); code != cli.ExitOK {
			t.Errorf("%s --help: exit %d\n%s", c.name, code, out.String())
			continue
		}
		help := strings.Join(strings.Fields(out.String()), " ") // wrapped to the terminal's width
		if !strings.Contains(help, c.want) {
			t.Errorf("%s --help lacks %q:\n%s", c.name, c.want, help)
		}
		for _, w := range c.without {
			if strings.Contains(help, w) {
				t.Errorf("%s --help lists %q, which it never returns", c.name, w)
			}
		}
	}
}

// TestWorkerSubcommand: `llem-exec __worker native` runs the native worker
// (here without an experiment: a bad_input error event on stdout, exit 2).
func TestWorkerSubcommand(t *testing.T) {
	t.Setenv("LLEM_EXPERIMENT", "")
	var out, errb bytes.Buffer
	code := cli.Run("llem-exec", runloop.Command, runloop.WorkerCommand, nil, &out, &errb)
	if code != cli.ExitUsage || !strings.Contains(out.String(), `"code":"bad_input"`) ||
		!strings.HasPrefix(errb.String(), "llem-exec: native worker: bad_input: $LLEM_EXPERIMENT is not set") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
}

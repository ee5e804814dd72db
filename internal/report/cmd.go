package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/llem/llem/internal/atomicfile"
	"github.com/llem/llem/internal/cli"
)

// go-flags takes one choice tag per allowed value, which staticcheck's
// duplicate-tag check (SA5008) does not know.
type cmdOpts struct {
	//lint:ignore SA5008 go-flags reads repeated choice tags
	Format  string `short:"f" long:"format" value-name:"FMT" choice:"table" choice:"md" choice:"csv" choice:"json" choice:"html" description:"output format (default: from the extension of -o, else table)"`
	Output  string `short:"o" long:"output" value-name:"FILE" description:"write to FILE instead of stdout (written whole, then renamed into place)"`
	By      string `long:"by" value-name:"KEYS" description:"grouping columns, comma-separated: config keys (e.g. native.batch_size, precision) or id, study, backend, model, host, basis (default: the config keys that vary)"`
	Metrics string `long:"metrics" value-name:"NAMES" description:"figures to show, comma-separated metric names (e.g. j_per_output_token, ttft_p50_s; see docs/report.md), or all"`
	Sort    string `long:"sort" value-name:"KEYS" description:"order configs by these keys, comma-separated; a metric sorts by its mean; --sort=-KEY or KEY:desc descends (default: the --by columns, then input order)"`
	//lint:ignore SA5008 go-flags reads repeated choice tags
	Rows  string `long:"rows" default:"all" choice:"all" choice:"configs" choice:"runs" description:"which rows: configs (summaries), runs (energy records), or all"`
	Root  string `long:"root" value-name:"DIR" description:"look for moved run directories under DIR (matched by their trailing path components, as llem-aggregate --root)"`
	Run   string `long:"run" value-name:"RUN_ID" description:"HTML: the run whose power trace is plotted (default: the first ok run with a readable sample file)"`
	Title string `long:"title" value-name:"TEXT" description:"title of the report"`
}

const usageLong = `
Reads energy and summary records (NDJSON from llem-aggregate, from FILEs or
stdin) and shows people what was measured: the configs of the study with their
figures as mean ± 95 % CI across cycles, every run grouped by config, failed
runs with their error, and the validity flags. Records of other kinds are
ignored (counted on stderr).

Formats: table (aligned columns, SI prefixes), md (Markdown), csv and json
(raw SI numbers, the unit in the column name, explicit estimate and flags
columns), html (one self-contained file with SVG plots: energy per output
token per config, the energy-throughput and energy-latency Pareto fronts, the
power of one run over time with its phases, latency distributions, the
validity flags, and the provenance). The HTML report reads the run
directories the records name (samples.arrows, events.ndjson, run.json).

Serving configs that differ only in serving.rate (or serving.concurrency)
add a serving section to every format: energy per output token, p90 TTFT,
p90 TPOT and goodput against the load, one curve per group of the other
config fields, and the highest load at which at least 90 % of the requests
met every SLO of the config (slo_attainment), with its energy per token.

Estimated figures (no energy sensor) carry a † wherever they appear;
unknown figures are shown as — (never 0).

Examples: llem-aggregate runs.ndjson | llem-report;
llem-report -o report.html energy.ndjson;
llem-report --by precision --sort=-output_tokens_per_s e.ndjson.
See docs/report.md.`

// Command is the body of llem-report: SIGINT/SIGTERM stop it (exit 130).
func Command(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return cli.WithSignals(run)(args, stdin, stdout, stderr)
}

// CommandContext is llem-report's body stopped by ctx instead of signals (exit 130).
func CommandContext(ctx context.Context) cli.Command {
	return func(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		return run(ctx, args, stdin, stdout, stderr)
	}
}

// Formats by file extension.
var formatByExt = map[string]string{".html": "html", ".htm": "html", ".md": "md", ".csv": "csv", ".json": "json", ".txt": "table"}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o cmdOpts
	files, err := cli.Parse("llem-report", "[OPTIONS] [FILE...]", usageLong, &o, args, stdout,
		cli.ExitOK, cli.ExitFailure, cli.ExitUsage, cli.ExitInterrupted)
	if err != nil {
		return err
	}
	format := o.Format
	if format == "" {
		format = formatByExt[strings.ToLower(filepath.Ext(o.Output))]
		if format == "" {
			format = "table"
		}
	}
	if len(files) == 0 {
		files = []string{"-"}
	}
	interrupted := &cli.Error{Code: cli.ExitInterrupted, Err: errors.New("interrupted")}

	// Read in the background so that a signal ends a read blocked on a pipe.
	in := &Input{}
	done := make(chan error, 1)
	go func() { done <- readAll(ctx, in, files, stdin) }()
	select {
	case <-ctx.Done():
		return interrupted
	case err := <-done:
		if errors.Is(err, ErrInterrupted) {
			return interrupted
		}
		if err != nil {
			return cli.Usage(err)
		}
	}
	rp, err := Build(in, Options{By: cli.SplitList(o.By), Metrics: cli.SplitList(o.Metrics), Sort: cli.SplitList(o.Sort),
		Rows: o.Rows, Root: o.Root, Run: o.Run, Title: o.Title})
	if err != nil {
		return cli.Usage(err)
	}
	if o := in.OtherSummary(); o != "" {
		fmt.Fprintf(stderr, "llem-report: ignored records of other kinds: %s\n", o)
	}
	write := func(w io.Writer) error {
		switch format {
		case "md":
			return rp.WriteMarkdown(w)
		case "csv":
			return rp.WriteCSV(w)
		case "json":
			return rp.WriteJSON(w)
		case "html":
			return rp.WriteHTML(ctx, w, stderr)
		}
		return rp.WriteTable(w)
	}
	if o.Output == "" || o.Output == "-" {
		if err := write(stdout); err != nil {
			return err
		}
	} else if err := atomicfile.Write(o.Output, write); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return interrupted
	}
	return nil
}

func readAll(ctx context.Context, in *Input, files []string, stdin io.Reader) error {
	for _, name := range files {
		if name == "-" {
			if err := in.Read(ctx, stdin, "-"); err != nil {
				return err
			}
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = in.Read(ctx, f, name)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

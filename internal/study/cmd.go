package study

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/config"
)

type cmdOpts struct {
	Set    []string `long:"set" value-name:"PATH=VALUE" description:"override a shared field (repeatable); dotted paths reach sections, e.g. --set pytorch.batch_size=4"`
	Cycles int      `long:"cycles" value-name:"N" description:"number of cycles (default: the file's execution.n_cycles, else 3)"`
	Order  string   `long:"order" value-name:"ORDER" description:"cycle order: sequential, interleaved or shuffled (default: the file's, else shuffled)"`
	Seed   *uint64  `long:"seed" value-name:"N" description:"shuffle seed (default: the file's, else derived from the study hash)"`
	//lint:ignore SA5008 go-flags reads repeated choice tags
	Format      string `long:"format" value-name:"FORMAT" default:"ndjson" choice:"ndjson" choice:"table" choice:"count" description:"output: ndjson records, a table for people, or the run count"`
	EmitSkipped bool   `long:"emit-skipped" description:"also write a skipped record for each invalid config"`
	NoGaps      bool   `long:"no-gaps" description:"set the experiment and cycle gaps to 0"`
	Quiet       bool   `short:"q" long:"quiet" description:"no summary on stderr"`
}

const cmdLong = `Expands a study file into experiment records (NDJSON on stdout), one per run:
every config with its defaults filled in and validated, invalid combinations
skipped (a summary always goes to stderr), identical configs kept once, cycles
ordered, each run with a stable id and run_id. FILE may be - for stdin.`

// Command is the body of llem-expand.
func Command(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o cmdOpts
	rest, err := cli.Parse("llem-expand", "[OPTIONS] FILE|-", cmdLong, &o, args, stdout, cli.ExitOK, cli.ExitFailure, cli.ExitUsage)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return cli.Usagef("expected one study file (or - for stdin), got %d arguments", len(rest))
	}
	file := rest[0]
	var data []byte
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, config.MaxFileBytes+1))
	} else {
		data, err = readFile(file)
	}
	if err != nil {
		return cli.Usage(err)
	}
	s, err := Expand(file, data, Options{Sets: o.Set, Cycles: o.Cycles, Order: o.Order,
		Seed: o.Seed, NoGaps: o.NoGaps, Columns: o.Format == "table"})
	if err != nil {
		return inputError(err, stderr)
	}
	if !o.Quiet {
		for _, l := range s.Summary() {
			fmt.Fprintln(stderr, "llem-expand: "+l)
		}
	}
	switch o.Format {
	case "count":
		_, err = fmt.Fprintln(stdout, s.Unique*s.NCycles)
	case "table":
		err = s.WriteTable(stdout)
	default:
		err = s.WriteNDJSON(stdout, o.EmitSkipped)
	}
	return err
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, config.MaxFileBytes+1))
}

// inputError prints every problem on its own line (the first 20) and exits 2.
func inputError(err error, stderr io.Writer) error {
	var es config.Errors
	if errors.As(err, &es) {
		const most = 20
		for i, e := range es {
			if i == most {
				fmt.Fprintf(stderr, "llem-expand: ... and %d more errors\n", len(es)-most)
				break
			}
			fmt.Fprintln(stderr, "llem-expand: "+e.Error())
		}
		return &cli.Error{Code: cli.ExitUsage}
	}
	return cli.Usage(err)
}

// Command llem-report shows people what was measured: it reads energy and
// summary records and writes a terminal table, Markdown, CSV, JSON or a
// self-contained HTML report with plots. See docs/report.md.
package main

import (
	"context"
	"os"
	"syscall"

	"os/signal"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cli.Main("llem-report", report.Command(ctx))
}

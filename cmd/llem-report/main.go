// Command llem-report shows people what was measured: it reads energy and
// summary records and writes a terminal table, Markdown, CSV, JSON or a
// self-contained HTML report with plots. See docs/report.md.
package main

import (
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/report"
)

func main() { cli.Main("llem-report", report.Command) }

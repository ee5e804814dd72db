// Command llem-expand validates a study (or one experiment) file and writes
// the planned runs as experiment records, one NDJSON line each. See
// docs/expand.md.
package main

import (
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/study"
)

func main() { cli.Main("llem-expand", study.Command) }

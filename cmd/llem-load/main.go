// Command llem-load drives an OpenAI-compatible server with an open-loop
// (or closed-loop) stream of streaming requests and records each one. See
// docs/load.md.
package main

import (
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/load"
)

func main() { cli.Main("llem-load", load.Command) }

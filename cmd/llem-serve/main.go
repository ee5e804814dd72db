// Command llem-serve serves a native model over an OpenAI-compatible HTTP
// API with continuous batching. See docs/serve.md.
package main

import (
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/serve"
)

func main() { cli.Main("llem-serve", serve.Command) }

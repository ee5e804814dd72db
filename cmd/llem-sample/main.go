// Command llem-sample records GPU, CPU and DRAM power as an Arrow IPC
// stream, alone or around a command. See docs/sample.md.
package main

import (
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/sampler"
)

func main() { cli.Main("llem-sample", sampler.Command) }

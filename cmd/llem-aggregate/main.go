// Command llem-aggregate turns run records and their sample streams into
// energy records (one per run) and summary records (one per config across its
// cycles). See docs/aggregate.md.
package main

import (
	"github.com/llem/llem/internal/aggregate"
	"github.com/llem/llem/internal/cli"
)

func main() { cli.Main("llem-aggregate", aggregate.Command) }

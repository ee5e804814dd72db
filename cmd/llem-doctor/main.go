// Command llem-doctor says what this machine offers llem before a study:
// GPUs, energy sources, Docker, images, Python backends, cgroups. See
// docs/doctor.md.
package main

import (
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/doctor"
)

func main() { cli.Main("llem-doctor", doctor.Command) }

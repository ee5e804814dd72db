// Command llem-sample is a stage of the llem pipeline (see DESIGN.md). Not yet implemented.
package main

import "github.com/llem/llem/internal/cli"

func main() { cli.Main("llem-sample", cli.NotYet("llem-sample")) }

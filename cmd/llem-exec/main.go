// Command llem-exec runs every experiment record of its input in a fresh
// worker process, journals each state change under --out, and emits one run
// record per run. Rerunning the same stream into the same --out resumes.
//
//	llem-expand study.yaml | llem-exec --out results | llem-aggregate
//
// `llem-exec __worker native` is the native backend's worker. See docs/exec.md.
package main

import (
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/runloop"
)

func main() { cli.Main("llem-exec", runloop.Command) }

// Command native is the native backend's worker (internal/worker/nativeworker) as a
// standalone static binary (CGO_ENABLED=0): the entrypoint of the llem/native
// image, FROM scratch (scripts/docker/native.Dockerfile, built by
// scripts/docker/build.sh native). The docker runner's tests build and run
// exactly this package.
package main

import (
	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/worker/nativeworker"
)

func main() { cli.Main("native worker", nativeworker.Command) }

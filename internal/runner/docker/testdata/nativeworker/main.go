// Command nativeworker is the native backend's worker (internal/worker/native)
// as a standalone static binary, for the docker runner's tests: an image FROM
// scratch around it runs real experiments on the Go engine.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/llem/llem/internal/worker/native"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(native.Main(ctx, os.Stdout, os.Stderr))
}

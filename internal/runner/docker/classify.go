package docker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/llem/llem/internal/record"
)

// Stages of a run at which an engine call can fail; the classification of an
// error type depends on what was being asked for.
const (
	stagePing   = "ping"
	stageSweep  = "sweep"
	stageImage  = "image inspect"
	stagePull   = "image pull"
	stageCreate = "container create"
	stageAttach = "container attach"
	stageStart  = "container start"
	stageWait   = "container wait"
)

// classify maps an engine error to a record.Error by its type (the API's
// errdefs classes, the client's connection errors, syscall errnos) and the
// stage it happened at — never by searching the message for words. gpus says
// whether the container asked for GPUs.
func classify(stage string, err error, gpus bool) *record.Error {
	msg := fmt.Sprintf("docker %s: %v", stage, err)
	e := func(typ, hint string) *record.Error { return &record.Error{Type: typ, Message: msg, Hint: hint} }
	switch {
	case errors.Is(err, context.DeadlineExceeded) || cerrdefs.IsDeadlineExceeded(err):
		return e(record.ErrTimeout, "the engine did not answer in time; check `docker info` and the engine's load")
	case errors.Is(err, context.Canceled) || cerrdefs.IsCanceled(err):
		return e(record.ErrInterrupted, "")
	case errors.Is(err, syscall.EACCES) || errors.Is(err, fs.ErrPermission):
		return e(record.ErrPermission, "this user may not use the Docker socket: `sudo usermod -aG docker $USER` and log in again (or run rootless Docker)")
	case client.IsErrConnectionFailed(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return e(record.ErrEngineUnreachable, "start the engine (`sudo systemctl start docker`) or point DOCKER_HOST at it")
	}
	switch stage {
	case stageImage, stagePull:
		// Whatever kept the image from arriving (unknown name, no
		// registry, access denied), the run's image is missing.
		return e(record.ErrImageMissing, "")
	case stageCreate:
		switch {
		case cerrdefs.IsNotFound(err):
			return e(record.ErrImageMissing, "the image vanished between inspect and create; make it available again")
		case cerrdefs.IsInvalidArgument(err):
			// The only caller-controlled parts of the create request the
			// engine validates are the mounts (sources are checked before).
			return e(record.ErrBadMount, "check the run directory, model cache and worker cache paths exist on the Docker host")
		}
	case stageStart:
		if gpus && (cerrdefs.IsInvalidArgument(err) || cerrdefs.IsInternal(err) || cerrdefs.IsUnknown(err)) {
			return e(record.ErrGPUUnavailable, "the engine could not attach the requested GPUs: install the NVIDIA Container Toolkit (`nvidia-ctk runtime configure --runtime=docker`), restart Docker, and check the GPU UUIDs with `nvidia-smi -L`")
		}
		if cerrdefs.IsInvalidArgument(err) {
			return e(record.ErrBadMount, "check the mounted paths exist on the Docker host")
		}
	}
	switch {
	case cerrdefs.IsPermissionDenied(err) || cerrdefs.IsUnauthorized(err):
		return e(record.ErrPermission, "the engine refused the request; check its authorization plugins and your access")
	case cerrdefs.IsUnavailable(err):
		return e(record.ErrEngineUnreachable, "the engine is unavailable; check `docker info`")
	}
	return e(record.ErrEngine, "")
}

func withImage(e *record.Error, img string) *record.Error {
	if e.Type == record.ErrImageMissing && e.Hint == "" {
		e.Hint = pullHint(img)
	}
	return e
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

func ownerFilter(owner string) filters.Args {
	return filters.NewArgs(filters.Arg("label", LabelOwner+"="+owner))
}

func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

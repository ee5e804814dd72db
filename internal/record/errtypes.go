package record

// Error types (Error.Type): why a run did not finish ok. The run loop and
// every runner use these and no others; schemas/defs.schema.json lists them
// as the enum of error.type, and a test keeps the two the same.
const (
	// The run loop (internal/runloop).
	ErrDataset        = "dataset"          // the config's prompts could not be loaded
	ErrNotEnoughGPUs  = "not_enough_gpus"  // the config needs more GPUs than llem-exec may use
	ErrInterrupted    = "interrupted"      // llem-exec was interrupted (SIGINT/SIGTERM)
	ErrTimeout        = "timeout"          // the run's time limit passed (or a container engine call's)
	ErrRunDirTampered = "run_dir_tampered" // the worker replaced a file llem-exec keeps in the run directory
	ErrWorkerFlood    = "worker_flood"     // the worker wrote more protocol events than allowed
	ErrWorkerError    = "worker_error"     // the worker sent an error event (its code in Error.Code)
	ErrCrash          = "crash"            // the worker died or exited non-zero without an error event
	ErrNoDone         = "no_done"          // the worker exited 0 without a done event

	// Serving runs (the run loop's serving execution).
	ErrServerStart     = "server_start"     // the serving section or the server's command line could not be made into a server to start
	ErrServerUnhealthy = "server_unhealthy" // the server did not pass its health check within startup_timeout_s
	ErrServerExited    = "server_exited"    // the server exited before the run was over (starting up or under traffic)
	ErrRequestsFailed  = "requests_failed"  // not one request sent in the measure window ended ok

	// The local runner.
	ErrSpawn = "spawn" // the worker command could not be started

	// The docker runner.
	ErrImageMissing      = "image_missing"      // not on the engine and not pullable
	ErrGPUUnavailable    = "gpu_unavailable"    // the engine cannot give the container the GPUs asked for
	ErrOOMKilled         = "oom_killed"         // the kernel killed the worker for memory (container state OOMKilled)
	ErrPermission        = "permission"         // no access to the engine socket, or the engine refused
	ErrEngineUnreachable = "engine_unreachable" // no engine answers at DOCKER_HOST / the socket
	ErrBadMount          = "bad_mount"          // a directory to mount is missing or the engine rejected a mount
	ErrEngine            = "engine_error"       // any other engine failure, with the engine's message
)

// ErrorTypes are all the error types, in the order of the schema's enum.
var ErrorTypes = []string{
	ErrDataset, ErrNotEnoughGPUs, ErrInterrupted, ErrTimeout, ErrRunDirTampered, ErrWorkerFlood,
	ErrWorkerError, ErrCrash, ErrNoDone, ErrServerStart, ErrServerUnhealthy, ErrServerExited, ErrRequestsFailed, ErrSpawn,
	ErrImageMissing, ErrGPUUnavailable, ErrOOMKilled, ErrPermission, ErrEngineUnreachable, ErrBadMount, ErrEngine,
}

// Package docker runs one experiment's worker in a container through the
// Docker Engine API (never the docker command): the image is inspected (and
// pulled, with progress, when missing), a container is created with exactly
// the run's GPUs, the run directory, the model cache and the worker sources
// mounted, labelled with the study and run, started, its stdout (the worker
// protocol's events) and stderr streamed to the run loop as they come, and
// removed when the worker ends — also on timeout, interrupt or failure, so no
// container outlives its run. Containers a killed llem-exec left behind are
// removed by Sweep (part of Preflight).
//
// Engine failures are classified from the API's error types and the
// container's exit state into record.Error types (see classify.go).
package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	osuser "os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/internal/worker/python"
)

// Labels put on every container llem creates.
const (
	LabelOwner     = "llem.owner"      // Options.Owner; Sweep only looks at its own owner's containers
	LabelStudy     = "llem.study"      // study name
	LabelStudyHash = "llem.study_hash" // study hash
	LabelID        = "llem.id"         // experiment (config) id
	LabelRunID     = "llem.run_id"     // run id
	LabelBackend   = "llem.backend"    // backend name
	LabelHost      = "llem.host"       // hostname of the llem-exec that owns the container
	LabelPID       = "llem.pid"        // "<pid>:<process start time>" of that llem-exec
)

// Paths inside the container.
const (
	MountRun        = "/llem/run"             // the run directory, read-write (LLEM_RUN_DIR)
	MountWorker     = "/llem/worker"          // the Python workers' sources, read-only
	MountModelCache = "/llem/model-cache"     // the model cache, read-write (HF_HOME)
	MountExperiment = "/llem/experiment.json" // only when experiment.json is outside the run dir
	// MountHome is HOME for the Python workers: inside the model cache, so
	// it is writable by whatever uid the container runs as and kept between
	// runs (libraries keep small state there).
	MountHome = MountModelCache + "/llem/home"
)

// cacheDirs are the compilers' and engines' caches, each under the mounted
// model cache (so they survive the container and are shared by the runs
// beside it), by the environment variable that moves it there. torch
// inductor, Triton and vLLM (whose V1 engine compiles by default) otherwise
// write under a HOME that an unknown uid does not have.
var cacheDirs = []struct{ env, dir string }{
	{"XDG_CACHE_HOME", "xdg-cache"},
	{"TORCHINDUCTOR_CACHE_DIR", "torchinductor"},
	{"TRITON_CACHE_DIR", "triton"},
	{"VLLM_CACHE_ROOT", "vllm"},
}

// CacheEnv is the cache environment of a Python worker's container.
func CacheEnv() []string {
	env := make([]string, 0, len(cacheDirs))
	for _, c := range cacheDirs {
		env = append(env, c.env+"="+MountModelCache+"/llem/"+c.dir)
	}
	return env
}

// makeCacheDirs creates HOME and the caches in the host's model cache, as the
// host user, before the container starts: a container uid cannot create them
// in a directory it does not own.
func makeCacheDirs(cache string) *record.Error {
	for _, d := range append([]string{"home"}, cacheDirNames()...) {
		p := filepath.Join(cache, "llem", d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return &record.Error{Type: record.ErrBadMount, Message: fmt.Sprintf("model cache: %v", err),
				Hint: "make the model cache writable, or name another with --model-cache"}
		}
	}
	return nil
}

func cacheDirNames() []string {
	var n []string
	for _, c := range cacheDirs {
		n = append(n, c.dir)
	}
	return n
}

// identity is the container's user and the environment that gives it a
// usable identity. With the host's uid:gid (the default) the image has no
// passwd entry for it, and getpass.getuser() — which torch inductor calls to
// name its cache — raises unless USER or LOGNAME is set; so both are, with
// HOME. "image" keeps the image's own user and its environment.
func identity(opt, home string) (user string, env []string) {
	switch opt {
	case "image":
		return "", nil
	case "":
		opt = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	}
	name := "llem"
	if u, err := osuser.Current(); err == nil && u.Username != "" && !strings.ContainsAny(u.Username, "=\x00") {
		name = u.Username
	}
	return opt, []string{"USER=" + name, "LOGNAME=" + name, "HOME=" + home}
}

// LocalModelDir tells whether model names a directory on this host (an
// absolute or ./-relative path, or an existing directory) rather than a
// Hugging Face id, and returns it absolute. A path that does not exist is a
// bad_mount naming it, found before any container starts.
func LocalModelDir(model string) (dir string, local bool, rerr *record.Error) {
	looksLocal := strings.HasPrefix(model, "/") || strings.HasPrefix(model, "./") || strings.HasPrefix(model, "../") || strings.HasPrefix(model, "~/")
	if strings.HasPrefix(model, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			model = filepath.Join(h, model[2:])
		}
	}
	st, err := os.Stat(model)
	switch {
	case err == nil && st.IsDir():
		abs, aerr := filepath.Abs(model)
		if aerr != nil {
			return "", false, &record.Error{Type: record.ErrBadMount, Message: fmt.Sprintf("model directory %s: %v", model, aerr)}
		}
		return abs, true, nil
	case !looksLocal:
		return "", false, nil // a Hugging Face model id
	case err != nil:
		return "", false, &record.Error{Type: record.ErrBadMount, Message: fmt.Sprintf("model directory %s: %v", model, unwrapPathErr(err)),
			Hint: "name an existing directory holding the model (config.json and weights), or a Hugging Face model id"}
	}
	return "", false, &record.Error{Type: record.ErrBadMount, Message: fmt.Sprintf("model %s is a file, not a directory", model),
		Hint: "name the directory holding config.json and the weights"}
}

// DefaultOwner is the owner label of containers made by llem-exec.
const DefaultOwner = "llem"

// DefaultShmSize is the container's /dev/shm: PyTorch data loaders and vLLM's
// tensor-parallel workers need far more than Docker's 64 MiB default.
const DefaultShmSize = 8 << 30

// DefaultImages are the images used when neither the --image flag nor the
// study's `runners:` names one. vllm and tensorrt are the upstream images that
// hold the backend (the worker sources are mounted, nothing is installed);
// sglang is SGLang's own image, a server only (its last CUDA 12 tag, as the
// vllm image is CUDA 12 too);
// the pytorch image is built from scripts/docker/pytorch.Dockerfile because
// pytorch/pytorch lacks transformers; the native image from
// scripts/docker/native.Dockerfile (a static llem-exec FROM scratch).
var DefaultImages = map[string]string{
	"pytorch":  "llem/pytorch:2.5.1-cuda12.4",
	"vllm":     "vllm/vllm-openai:v0.11.0",
	"tensorrt": "nvcr.io/nvidia/tensorrt-llm/release:1.0.0",
	"sglang":   "lmsysorg/sglang:v0.5.19-cu129",
	"native":   "llem/native:latest",
}

// Options configure the docker runner. The zero value is usable.
type Options struct {
	// Images maps backend → image; it overrides the study's `runners:` image
	// and DefaultImages (llem-exec's --image BACKEND=IMAGE).
	Images map[string]string
	// ModelCache is the host directory mounted read-write at MountModelCache
	// and exported as HF_HOME, so models are downloaded once, not per
	// container. "" = $HF_HOME, else ~/.cache/huggingface (created if absent).
	ModelCache string
	// CacheDir is where the embedded Python workers are extracted on the host
	// ("" = python.DefaultCacheDir()).
	CacheDir string
	// ShmSize is /dev/shm in bytes (0 = DefaultShmSize).
	ShmSize int64
	// MemoryLimit caps the container's memory in bytes (0 = no cap).
	MemoryLimit int64
	// User is the container's user: "" = the host's uid:gid (files in the run
	// directory stay the user's), "image" = the image's own user, else a
	// user spec as Docker takes it ("1000:1000"). Except for "image", the
	// container gets USER, LOGNAME and HOME (see identity).
	User string
	// IPCHost runs containers in the host's IPC namespace (docker run
	// --ipc host), as vLLM and TensorRT-LLM recommend for multi-GPU runs;
	// ShmSize then does not apply.
	IPCHost bool
	// NoPull makes a missing image an error instead of a pull.
	NoPull bool
	// Owner is the value of the llem.owner label (default DefaultOwner).
	Owner string
	// PassEnv names host environment variables passed into the container
	// when set (nil = HF_TOKEN, HUGGING_FACE_HUB_TOKEN, HF_HUB_OFFLINE,
	// HF_ENDPOINT). Their values go into the container's environment only.
	PassEnv []string
	// Log receives pull progress and sweep notes (nil = os.Stderr).
	Log io.Writer
}

var defaultPassEnv = []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"}

// Runner is the docker runner. It is safe for concurrent Runs.
type Runner struct {
	cli   *client.Client
	opts  Options
	host  string
	ident string // LabelPID value of this process

	pullMu sync.Mutex // one pull at a time; concurrent runs of one image wait for it
}

var _ runner.Runner = (*Runner)(nil)

// New connects to the engine named by the environment (DOCKER_HOST, default
// the local socket), negotiating the API version (the engine may be older
// than the client). It does not contact the engine; Preflight does.
func New(opts Options) (*Runner, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if opts.Owner == "" {
		opts.Owner = DefaultOwner
	}
	if opts.ShmSize == 0 {
		opts.ShmSize = DefaultShmSize
	}
	if opts.PassEnv == nil {
		opts.PassEnv = defaultPassEnv
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	host, _ := os.Hostname()
	return &Runner{cli: cli, opts: opts, host: host, ident: processIdent(os.Getpid())}, nil
}

// Close releases the client's connections.
func (r *Runner) Close() error { return r.cli.Close() }

// Client is the engine client (for tests and diagnostics).
func (r *Runner) Client() *client.Client { return r.cli }

// Name is "docker".
func (r *Runner) Name() string { return "docker" }

// Image is the image an experiment runs in: --image for its backend, else the
// study's `runners:` image, else DefaultImages. It is recorded in the run
// record and never part of the config hash.
func (r *Runner) Image(exp record.Experiment) string {
	if img := r.opts.Images[exp.Backend]; img != "" {
		return img
	}
	if exp.Runner.Image != "" {
		return exp.Runner.Image
	}
	return DefaultImages[exp.Backend]
}

// modelCache resolves the host model cache directory. explicit reports
// whether the user named it (a missing explicit directory is a bad mount; the
// default is created).
func (r *Runner) modelCache() (dir string, explicit bool) {
	if r.opts.ModelCache != "" {
		return r.opts.ModelCache, true
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		return d, false
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "llem-hf-cache"), false
	}
	return filepath.Join(home, ".cache", "huggingface"), false
}

// PreflightError lists every problem Preflight found, each with a fix hint.
type PreflightError struct {
	Problems []record.Error
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "docker pre-flight: %d problem(s)", len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  ✗ [%s] %s", p.Type, p.Message)
		if p.Hint != "" {
			fmt.Fprintf(&b, " (fix: %s)", p.Hint)
		}
	}
	return b.String()
}

// Preflight checks, once per stream, that the engine is reachable, removes
// containers a dead llem-exec left behind, makes every image present (pulling
// missing ones unless NoPull), checks the NVIDIA runtime when any experiment
// needs a GPU, and that the mounts exist. Experiments whose runner is another
// type are ignored. All problems are returned together as *PreflightError.
func (r *Runner) Preflight(ctx context.Context, exps []record.Experiment) error {
	var mine []record.Experiment
	for _, e := range exps {
		if e.Runner.Type == "" || e.Runner.Type == "docker" {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	if _, err := r.cli.Ping(ctx); err != nil {
		return &PreflightError{Problems: []record.Error{*classify(stagePing, err, false)}}
	}
	info, err := r.cli.Info(ctx)
	if err != nil {
		return &PreflightError{Problems: []record.Error{*classify(stagePing, err, false)}}
	}
	var probs []record.Error
	if removed, err := r.Sweep(ctx); err != nil {
		probs = append(probs, *classify(stageSweep, err, false))
	} else if len(removed) > 0 {
		fmt.Fprintf(r.opts.Log, "docker: removed %d stale llem container(s) left by a process that is gone: %s\n",
			len(removed), strings.Join(removed, ", "))
	}
	names, gpuImages, py, iprobs := r.preflightImages(mine)
	probs = append(probs, iprobs...)
	for _, img := range names {
		if _, rerr := r.ensureImage(ctx, img); rerr != nil {
			probs = append(probs, *rerr)
		}
	}
	gpu := len(gpuImages) > 0
	if gpu && !hasNVIDIARuntime(info.Runtimes, info.DefaultRuntime) {
		// No registered nvidia runtime; the toolkit's hook alone may still
		// serve GPU device requests, so ask the engine for real.
		if rerr := r.probeGPU(ctx, gpuImages[0]); rerr != nil {
			rerr.Message = fmt.Sprintf("the Docker engine cannot give containers GPUs (runtimes: %s): %s", runtimeNames(info.Runtimes), rerr.Message)
			probs = append(probs, *rerr)
		}
	}
	if py {
		if _, err := python.Extract(r.opts.CacheDir); err != nil {
			probs = append(probs, record.Error{Type: record.ErrBadMount, Message: err.Error(),
				Hint: "point --cache-dir (or LLEM_CACHE_DIR) at a writable directory"})
		}
		if dir, explicit := r.modelCache(); explicit {
			if rerr := checkDir(dir, "model cache"); rerr != nil {
				probs = append(probs, *rerr)
			}
		}
	}
	if len(probs) > 0 {
		return &PreflightError{Problems: probs}
	}
	return nil
}

// preflightImages lists the images the experiments need (sorted), those of
// runs needing GPUs (in order), whether any runs a Python worker, and the
// problems found without the engine: no image named, a local model
// directory that is missing.
func (r *Runner) preflightImages(exps []record.Experiment) (names, gpuImages []string, py bool, probs []record.Error) {
	images, models := map[string]bool{}, map[string]bool{}
	for _, e := range exps {
		img := r.Image(e)
		if img == "" {
			probs = append(probs, record.Error{Type: record.ErrImageMissing,
				Message: fmt.Sprintf("no container image for backend %q", e.Backend),
				Hint:    fmt.Sprintf("name one: --image %s=IMAGE or `runners: {%s: docker:IMAGE}` in the study", e.Backend, e.Backend)})
			continue
		}
		if config.GPUsNeeded(e.Config) > 0 && (len(gpuImages) == 0 || gpuImages[len(gpuImages)-1] != img) {
			gpuImages = append(gpuImages, img)
		}
		if !images[img] {
			images[img] = true
			names = append(names, img)
		}
		if python.IsBackend(e.Backend) {
			py = true
			if _, _, rerr := LocalModelDir(e.Model); rerr != nil && !models[e.Model] {
				models[e.Model] = true
				probs = append(probs, *rerr)
			}
		}
	}
	sort.Strings(names)
	return names, gpuImages, py, probs
}

// probeGPU starts a throw-away container of img asking for every GPU, running
// nvidia-smi -L (which the NVIDIA toolkit injects). The engine refusing the
// device request, or the probe failing, means runs cannot get GPUs.
func (r *Runner) probeGPU(ctx context.Context, img string) *record.Error {
	if _, rerr := r.ensureImage(ctx, img); rerr != nil {
		return nil // reported as image_missing already
	}
	hint := "install the NVIDIA Container Toolkit, then `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`"
	useInit := true
	c, err := r.cli.ContainerCreate(ctx, &container.Config{Image: img, Entrypoint: []string{"nvidia-smi", "-L"},
		Labels: map[string]string{LabelOwner: r.opts.Owner, LabelHost: r.host, LabelPID: r.ident, LabelRunID: "gpu-probe"}},
		&container.HostConfig{Init: &useInit, LogConfig: container.LogConfig{Type: "none"},
			Resources: container.Resources{DeviceRequests: []container.DeviceRequest{{Driver: "nvidia", Count: -1, Capabilities: [][]string{{"gpu"}}}}}}, nil, nil, "")
	if err != nil {
		e := classify(stageCreate, err, true)
		e.Hint = hint
		return e
	}
	bg := context.WithoutCancel(ctx)
	defer func() { _ = r.cli.ContainerRemove(bg, c.ID, container.RemoveOptions{Force: true}) }()
	waitCh, errCh := r.cli.ContainerWait(bg, c.ID, container.WaitConditionNextExit)
	if err := r.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		e := classify(stageStart, err, true)
		e.Hint = hint
		return e
	}
	select {
	case w := <-waitCh:
		if w.StatusCode != 0 {
			return &record.Error{Type: record.ErrGPUUnavailable, Message: fmt.Sprintf("nvidia-smi -L in %s exited %d", img, w.StatusCode), Hint: hint}
		}
	case err := <-errCh:
		return classify(stageWait, err, true)
	case <-time.After(time.Minute):
		return &record.Error{Type: record.ErrGPUUnavailable, Message: "nvidia-smi -L in " + img + " did not finish within a minute", Hint: hint}
	}
	return nil
}

func hasNVIDIARuntime(rt map[string]system.RuntimeWithStatus, def string) bool {
	if def == "nvidia" {
		return true
	}
	_, ok := rt["nvidia"]
	return ok
}

func runtimeNames(rt map[string]system.RuntimeWithStatus) string {
	var n []string
	for k := range rt {
		n = append(n, k)
	}
	sort.Strings(n)
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ", ")
}

// ensureImage returns the image's digest, pulling it (with progress on
// Options.Log) when it is missing and pulls are allowed.
func (r *Runner) ensureImage(ctx context.Context, img string) (string, *record.Error) {
	insp, err := r.cli.ImageInspect(ctx, img)
	if err == nil {
		return digestOf(insp), nil
	}
	if !isNotFound(err) {
		return "", classify(stageImage, err, false)
	}
	if r.opts.NoPull {
		return "", &record.Error{Type: record.ErrImageMissing,
			Message: fmt.Sprintf("image %s is not on this Docker engine (pulls are off)", img),
			Hint:    pullHint(img)}
	}
	r.pullMu.Lock()
	defer r.pullMu.Unlock()
	// Another run may have pulled it while we waited.
	if insp, err := r.cli.ImageInspect(ctx, img); err == nil {
		return digestOf(insp), nil
	}
	fmt.Fprintf(r.opts.Log, "docker: pulling %s\n", img)
	rc, err := r.cli.ImagePull(ctx, img, image.PullOptions{})
	if err != nil {
		return "", withImage(classify(stagePull, err, false), img)
	}
	derr := jsonmessage.DisplayJSONMessagesStream(rc, r.opts.Log, 0, false, nil)
	rc.Close()
	if derr != nil {
		return "", withImage(classify(stagePull, derr, false), img)
	}
	insp, err = r.cli.ImageInspect(ctx, img)
	if err != nil {
		return "", withImage(classify(stagePull, err, false), img)
	}
	return digestOf(insp), nil
}

func pullHint(img string) string {
	return fmt.Sprintf("make it available: `docker pull %s`, `docker load -i FILE`, or build it (see docs/docker.md); or name another with --image BACKEND=IMAGE", img)
}

// digestOf is the image's registry digest (name@sha256:…) where it came from a
// registry, else its content-addressed ID (sha256:…), which identifies a
// locally built image just as exactly.
func digestOf(insp image.InspectResponse) string {
	if len(insp.RepoDigests) > 0 {
		return insp.RepoDigests[0]
	}
	return insp.ID
}

func checkDir(dir, what string) *record.Error {
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return &record.Error{Type: record.ErrBadMount, Message: fmt.Sprintf("%s %s: %v", what, dir, unwrapPathErr(err)),
			Hint: fmt.Sprintf("create it (mkdir -p %s) or name an existing directory", dir)}
	case !st.IsDir():
		return &record.Error{Type: record.ErrBadMount, Message: fmt.Sprintf("%s %s is not a directory", what, dir),
			Hint: "name a directory"}
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Run runs one worker in a container and blocks until the container is gone.
// Classified failures (image missing, bad mount, GPU unavailable, OOM-killed,
// timeout, interrupt, engine errors) come back in Result.Err with a nil error;
// the error return is reserved for a Spec that cannot describe a run.
func (r *Runner) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	exp := spec.Experiment
	img := r.Image(exp)
	res := runner.Result{ExitCode: -1, Container: &record.Container{Image: img}}
	if spec.RunDir == "" {
		return res, errors.New("docker runner: spec has no run directory")
	}
	if img == "" {
		res.Err = &record.Error{Type: record.ErrImageMissing, Message: fmt.Sprintf("no container image for backend %q", exp.Backend),
			Hint: fmt.Sprintf("name one: --image %s=IMAGE", exp.Backend)}
		return res, nil
	}
	cfg, hcfg, rerr := r.containerConfig(spec, img)
	if rerr != nil {
		res.Err = rerr
		return res, nil
	}
	digest, rerr := r.ensureImage(ctx, img)
	if rerr != nil {
		res.Err = ctxErr(ctx, rerr)
		return res, nil
	}
	res.Container.ImageDigest = digest

	// Engine calls after this point that must happen whatever ctx says
	// (stop, wait, inspect, remove) use bg.
	bg := context.WithoutCancel(ctx)
	created, err := r.cli.ContainerCreate(ctx, cfg, hcfg, nil, nil, containerName(exp.RunID))
	if err != nil {
		res.Err = ctxErr(ctx, classify(stageCreate, err, len(spec.GPUs) > 0))
		return res, nil
	}
	id := created.ID
	res.Container.ContainerID = id
	defer r.remove(bg, id, exp.RunID)
	w, rerr := r.attachStartWait(ctx, id, spec)
	if rerr != nil {
		res.Err = rerr
		return res, nil
	}
	ictx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	if err := r.exitState(ictx, id, w.stopped != nil, &res); err != nil && w.engineErr == nil {
		w.engineErr = err
	}
	switch {
	case w.stopped != nil:
		res.Err = ctxErr(ctx, nil)
	case res.Err != nil:
	case w.engineErr != nil:
		res.Err = classify(stageWait, w.engineErr, false)
	}
	return res, nil
}

// remove removes the container, whatever state it is in.
func (r *Runner) remove(bg context.Context, id, runID string) {
	rctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	if err := r.cli.ContainerRemove(rctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
		fmt.Fprintf(r.opts.Log, "docker: could not remove container %s of run %s: %v (the next pre-flight sweep removes it)\n", short(id), runID, err)
	}
}

// waited is how a container's wait ended: stopped is ctx's error when llem
// stopped it (timeout, interrupt); engineErr an engine failure while waiting.
type waited struct{ stopped, engineErr error }

// attachStartWait attaches to the container (before start, so not one byte
// of output is missed), streams its output to the spec's writers, starts it
// and waits for it to exit, stopping it when ctx ends first. The
// *record.Error is a classified failure to attach or start.
func (r *Runner) attachStartWait(ctx context.Context, id string, spec runner.Spec) (w waited, rerr *record.Error) {
	bg := context.WithoutCancel(ctx)
	stdout, stderr := spec.Stdout, spec.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	hj, err := r.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return w, ctxErr(ctx, classify(stageAttach, err, false))
	}
	defer hj.Close()
	waitCtx, cancelWait := context.WithCancel(bg)
	defer cancelWait()
	waitCh, waitErrCh := r.cli.ContainerWait(waitCtx, id, container.WaitConditionNextExit)
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, stderr, hj.Reader)
		copied <- err
	}()
	// The start itself runs to its end even when the run's context ends
	// meanwhile: a start abandoned half-way left the worker running with no
	// one to stop it gracefully (the forced remove then killed it without
	// SIGTERM or grace). The select below stops it properly.
	if err := r.cli.ContainerStart(bg, id, container.StartOptions{}); err != nil {
		return w, ctxErr(ctx, classify(stageStart, err, len(spec.GPUs) > 0))
	}
	r.started(bg, id, spec)
	select {
	case <-waitCh:
	case err := <-waitErrCh:
		w.engineErr = err
	case <-ctx.Done():
		w.stopped = ctx.Err()
		r.stop(bg, id, spec.Grace)
		select {
		case <-waitCh:
		case err := <-waitErrCh:
			w.engineErr = err
		case <-time.After(spec.Grace + time.Minute):
			w.engineErr = fmt.Errorf("container %s did not exit %s after stop", short(id), spec.Grace+time.Minute)
		}
	}
	// The attach stream ends when the container's stdio closes; a
	// grandchild holding it open must not hang the run.
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		hj.Close()
		<-copied
	}
	return w, nil
}

// started tells spec.Started the container's first process as the host
// sees it, where the engine runs on this host (a unix socket): llem-exec
// reads the CPU time of its process tree. A remote engine's pids are not
// this host's, so it is told nothing.
func (r *Runner) started(bg context.Context, id string, spec runner.Spec) {
	if spec.Started == nil || !strings.HasPrefix(r.cli.DaemonHost(), "unix://") {
		return
	}
	ictx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if insp, err := r.cli.ContainerInspect(ictx, id); err == nil && insp.State != nil && insp.State.Pid > 0 {
		spec.Started(insp.State.Pid)
	}
}

// exitState reads the exited container's state into res: exit code or
// signal, and an OOM kill. stopped says llem stopped it (timeout, interrupt).
func (r *Runner) exitState(ictx context.Context, id string, stopped bool, res *runner.Result) error {
	insp, err := r.cli.ContainerInspect(ictx, id)
	if err != nil {
		return err
	}
	if insp.State == nil {
		return nil
	}
	code := insp.State.ExitCode
	// The engine learns of an OOM kill from a separate event that can
	// arrive after the exit event (containerd sends them unordered), so a
	// worker SIGKILLed by nobody we know of gets a second look before it
	// is called a plain crash.
	for wait := 0; code == 128+9 && !insp.State.OOMKilled && !stopped && wait < 20; wait++ {
		time.Sleep(100 * time.Millisecond)
		again, err := r.cli.ContainerInspect(ictx, id)
		if err != nil || again.State == nil {
			break
		}
		insp = again
	}
	// With an init process as PID 1, a worker killed by signal N
	// exits 128+N.
	if code > 128 && code <= 128+64 {
		res.Signaled = true
	} else {
		res.ExitCode = code
	}
	if insp.State.OOMKilled {
		res.Err = &record.Error{Type: record.ErrOOMKilled,
			Message: fmt.Sprintf("the worker was killed for lack of memory (container %s, exit code %d)", short(id), code),
			Hint:    oomHint(r.opts.MemoryLimit)}
	}
	return nil
}

func oomHint(limit int64) string {
	if limit > 0 {
		return fmt.Sprintf("raise the container memory limit (now %d bytes) or lower batch size / max_num_seqs", limit)
	}
	return "the host ran out of memory: lower batch size / max_num_seqs, or run fewer experiments side by side"
}

// stop sends the image's stop signal (SIGTERM), then SIGKILL after grace.
func (r *Runner) stop(ctx context.Context, id string, grace time.Duration) {
	secs := int((grace + time.Second - 1) / time.Second)
	sctx, cancel := context.WithTimeout(ctx, grace+time.Minute)
	defer cancel()
	if err := r.cli.ContainerStop(sctx, id, container.StopOptions{Timeout: &secs}); err != nil && !isNotFound(err) {
		// Stop failed (engine busy?): kill outright; remove(force) follows anyway.
		_ = r.cli.ContainerKill(sctx, id, "KILL")
	}
}

// ctxErr turns a failure that happened because ctx ended into timeout or
// interrupted; other failures pass through. fallback may be nil.
func ctxErr(ctx context.Context, fallback *record.Error) *record.Error {
	switch ctx.Err() {
	case context.DeadlineExceeded:
		return &record.Error{Type: record.ErrTimeout, Message: "the run's time limit passed; its container was stopped and removed",
			Hint: "raise the run timeout, or lower n / max_output_tokens"}
	case context.Canceled:
		return &record.Error{Type: record.ErrInterrupted, Message: "interrupted; the container was stopped and removed"}
	}
	return fallback
}

// containerConfig builds the container and host configs; mount sources are
// checked here, so a missing directory is a bad_mount naming the path, not an
// engine error.
func (r *Runner) containerConfig(spec runner.Spec, img string) (*container.Config, *container.HostConfig, *record.Error) {
	exp := spec.Experiment
	mounts, inContainer, rerr := runMounts(spec)
	if rerr != nil {
		return nil, nil, rerr
	}
	env := []string{
		"LLEM_EXPERIMENT=" + inContainer,
		"LLEM_RUN_DIR=" + MountRun,
		"PYTHONUNBUFFERED=1",
		"LLEM_STDIN_WATCHDOG=1",
	}
	home := "/tmp"
	var entry []string
	if python.IsBackend(exp.Backend) {
		pm, penv, rerr := r.pythonMounts(exp)
		if rerr != nil {
			return nil, nil, rerr
		}
		mounts, env = append(mounts, pm...), append(env, penv...)
		entry = python.ContainerCommand(exp.Backend, MountWorker)
		home = MountHome
	}
	if spec.Server != nil {
		// A server: its argv as it is, not the image's worker.
		entry = spec.Command
	}
	user, ienv := identity(r.opts.User, home)
	env = append(env, ienv...)
	for _, k := range r.opts.PassEnv {
		if v, ok := os.LookupEnv(k); ok && !hasKey(spec.Env, k) {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, spec.Env...)
	cfg := &container.Config{
		Image:      img,
		Env:        env,
		Labels:     r.labels(exp),
		User:       user,
		Entrypoint: entry,
		// The worker's stdin is this process's attach connection, never
		// written to: when llem-exec dies (even by SIGKILL) the connection
		// drops, the engine closes stdin (StdinOnce), and a worker watching
		// it (LLEM_STDIN_WATCHDOG=1; the Python workers do) exits instead of
		// holding GPUs until the next pre-flight sweep.
		OpenStdin:   true,
		StdinOnce:   true,
		AttachStdin: true,
		Tty:         false,
	}
	hcfg := r.hostConfig(mounts, spec.GPUs)
	if spec.Server != nil {
		publish(cfg, hcfg, spec.Server.Port)
	}
	return cfg, hcfg, nil
}

// publish exposes a server's port and binds it on the host's 127.0.0.1
// only, at the same number: llem-exec on this host drives the traffic, and
// no other machine may reach the server.
func publish(cfg *container.Config, hcfg *container.HostConfig, port int) {
	p := nat.Port(strconv.Itoa(port) + "/tcp")
	cfg.ExposedPorts = nat.PortSet{p: struct{}{}}
	hcfg.PortBindings = nat.PortMap{p: []nat.PortBinding{{HostIP: "127.0.0.1", HostPort: strconv.Itoa(port)}}}
}

func (r *Runner) labels(exp record.Experiment) map[string]string {
	return map[string]string{
		LabelOwner:     r.opts.Owner,
		LabelStudy:     exp.Study,
		LabelStudyHash: exp.StudyHash,
		LabelID:        exp.ID,
		LabelRunID:     exp.RunID,
		LabelBackend:   exp.Backend,
		LabelHost:      r.host,
		LabelPID:       r.ident,
	}
}

// Ulimits every container given GPUs gets: what NVIDIA documents for
// TensorRT-LLM and NCCL (pinned host memory without limit, a 64 MiB stack);
// Docker's defaults (64 KiB memlock) make pinned allocations and NCCL fail in
// odd ways. Runs without GPUs keep the engine's defaults: an engine that may
// not raise memlock (rootless, or itself in a container) refuses to start
// any container asking for it.
var Ulimits = []*container.Ulimit{
	{Name: "memlock", Soft: -1, Hard: -1},
	{Name: "stack", Soft: 64 << 20, Hard: 64 << 20},
}

func (r *Runner) hostConfig(mounts []mount.Mount, gpus []string) *container.HostConfig {
	useInit := true
	hcfg := &container.HostConfig{
		Mounts: mounts,
		// An init as PID 1 forwards SIGTERM to the worker and reaps its
		// children; a Python PID 1 would ignore SIGTERM entirely.
		Init: &useInit,
		// Output is streamed to the run loop (worker.log, events.ndjson);
		// the engine keeping a second copy of a huge log would fill its disk.
		LogConfig:  container.LogConfig{Type: "none"},
		ShmSize:    r.opts.ShmSize,
		Resources:  container.Resources{Memory: r.opts.MemoryLimit},
		AutoRemove: false, // removed by Run after its exit state is read
	}
	if r.opts.IPCHost {
		// The host's IPC namespace (and /dev/shm): what vLLM and
		// TensorRT-LLM document for multi-GPU runs. ShmSize does not apply.
		hcfg.IpcMode, hcfg.ShmSize = container.IPCModeHost, 0
	}
	if len(gpus) > 0 {
		hcfg.Ulimits = Ulimits
		hcfg.DeviceRequests = []container.DeviceRequest{{
			Driver:       "nvidia",
			DeviceIDs:    append([]string(nil), gpus...),
			Capabilities: [][]string{{"gpu"}},
		}}
	}
	return hcfg
}

// runMounts mounts the run directory and, when it lies elsewhere, the
// experiment file; inContainer is the experiment file's path inside.
func runMounts(spec runner.Spec) (mounts []mount.Mount, inContainer string, rerr *record.Error) {
	runDir, err := filepath.Abs(spec.RunDir)
	if err != nil {
		return nil, "", &record.Error{Type: record.ErrBadMount, Message: err.Error()}
	}
	if rerr := checkDir(runDir, "run directory"); rerr != nil {
		return nil, "", rerr
	}
	mounts = []mount.Mount{{Type: mount.TypeBind, Source: runDir, Target: MountRun}}
	expFile := spec.ExperimentFile
	if expFile == "" {
		expFile = filepath.Join(runDir, "experiment.json")
	}
	expFile, _ = filepath.Abs(expFile)
	if rel, err := filepath.Rel(runDir, expFile); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return mounts, MountRun + "/" + filepath.ToSlash(rel), nil
	}
	if _, err := os.Stat(expFile); err != nil {
		return nil, "", &record.Error{Type: record.ErrBadMount, Message: fmt.Sprintf("experiment file %s: %v", expFile, unwrapPathErr(err))}
	}
	mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: expFile, Target: MountExperiment, ReadOnly: true})
	return mounts, MountExperiment, nil
}

// pythonMounts mounts what a Python worker needs: its sources (read-only),
// the model cache with llem's caches inside it (read-write), and a model
// given as a local directory (read-only, at the same path).
func (r *Runner) pythonMounts(exp record.Experiment) ([]mount.Mount, []string, *record.Error) {
	src, err := python.Extract(r.opts.CacheDir)
	if err != nil {
		return nil, nil, &record.Error{Type: record.ErrBadMount, Message: err.Error(),
			Hint: "point the cache directory (LLEM_CACHE_DIR) at a writable place"}
	}
	mounts := []mount.Mount{{Type: mount.TypeBind, Source: src, Target: MountWorker, ReadOnly: true}}
	cache, explicit := r.modelCache()
	if !explicit {
		_ = os.MkdirAll(cache, 0o755)
	}
	if rerr := checkDir(cache, "model cache"); rerr != nil {
		return nil, nil, rerr
	}
	if rerr := makeCacheDirs(cache); rerr != nil {
		return nil, nil, rerr
	}
	mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: cache, Target: MountModelCache})
	// The sources are mounted read-only: no .pyc files to write.
	env := append([]string{"HF_HOME=" + MountModelCache, "LLEM_CACHE_DIR=" + MountModelCache + "/llem", "PYTHONDONTWRITEBYTECODE=1"}, CacheEnv()...)
	dir, local, rerr := LocalModelDir(exp.Model)
	if rerr != nil {
		return nil, nil, rerr
	}
	if local {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: dir, Target: dir, ReadOnly: true})
		env = append(env, "LLEM_MODEL="+dir)
	}
	return mounts, env, nil
}

func hasKey(env []string, k string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return true
		}
	}
	return false
}

func containerName(runID string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "llem-" + runID + "-" + hex.EncodeToString(b[:])
	if runID == "" {
		name = "llem-" + hex.EncodeToString(b[:])
	}
	return name
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Sweep removes this owner's containers whose owning llem-exec (on this host,
// known by pid and process start time) is gone, running or not. Containers of
// live llem-exec processes (side-by-side studies) and of other hosts sharing
// the engine are left alone. It returns the names removed.
func (r *Runner) Sweep(ctx context.Context) ([]string, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: ownerFilter(r.opts.Owner)})
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, c := range list {
		// Whatever its state, a container of a live llem-exec is that
		// process's business (it may be between create and start, or
		// between exit and inspect); one of another host cannot be judged.
		if c.Labels[LabelHost] != r.host || c.Labels[LabelPID] == r.ident || identAlive(c.Labels[LabelPID]) {
			continue
		}
		if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove %s: %w", short(c.ID), err))
			continue
		}
		name := short(c.ID)
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// processIdent is "<pid>:<start time in clock ticks since boot>" where /proc
// tells it, so a reused pid does not look like the original owner.
func processIdent(pid int) string {
	return strconv.Itoa(pid) + ":" + procStart(pid)
}

func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// Field 2 (comm) may hold spaces and parentheses: split after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func identAlive(ident string) bool {
	pidS, start, _ := strings.Cut(ident, ":")
	pid, err := strconv.Atoi(pidS)
	if err != nil || pid <= 0 {
		return false
	}
	if !pidAlive(pid) {
		return false
	}
	return start == "" || procStart(pid) == "" || procStart(pid) == start
}

package docker

import (
	"fmt"
	"strings"

	units "github.com/docker/go-units"

	"github.com/llem/llem/internal/config"
	"github.com/llem/llem/internal/worker/python"
)

// Flags are llem-exec's docker options, for go-flags (embed them in the
// command's options struct, e.g. in a `group:"Docker runner"`), turned into
// Options by Options().
type Flags struct {
	Image         []string `long:"image" value-name:"BACKEND=IMAGE" description:"container image for BACKEND's docker runs (repeatable); overrides the study's runners: image and the default"`
	ModelCache    string   `long:"model-cache" value-name:"DIR" description:"host model cache mounted into containers as HF_HOME, so models download once (default $HF_HOME, else ~/.cache/huggingface)"`
	ShmSize       string   `long:"shm-size" value-name:"SIZE" default:"8g" description:"containers' /dev/shm size"`
	Memory        string   `long:"container-memory" value-name:"SIZE" description:"memory limit per container (default none)"`
	ContainerUser string   `long:"container-user" value-name:"USER" description:"user in containers: empty = your uid:gid (run files stay yours), 'image' = the image's own user, or uid:gid"`
	NoPull        bool     `long:"no-pull" description:"fail a run whose image is missing instead of pulling it"`
	IPCHost       bool     `long:"ipc-host" description:"run containers in the host's IPC namespace (docker run --ipc host), as vLLM and TensorRT-LLM recommend for multi-GPU runs; --shm-size then does not apply"`
}

// Options turns the flags into runner options. cacheDir is where the Python
// workers are extracted ("" = default). Errors name the flag.
func (f *Flags) Options(cacheDir string) (Options, error) {
	o := Options{ModelCache: f.ModelCache, CacheDir: cacheDir, User: f.ContainerUser, NoPull: f.NoPull, IPCHost: f.IPCHost}
	if len(f.Image) > 0 {
		o.Images = map[string]string{}
	}
	for _, kv := range f.Image {
		b, img, ok := strings.Cut(kv, "=")
		b = strings.TrimSpace(b)
		img = strings.TrimSpace(img)
		if !ok || b == "" || img == "" {
			return o, fmt.Errorf("--image %q: want BACKEND=IMAGE, e.g. --image vllm=vllm/vllm-openai:v0.11.0", kv)
		}
		if _, known := DefaultImages[b]; !known && !python.IsBackend(b) {
			return o, fmt.Errorf("--image %q: unknown backend %q (have %s)", kv, b, strings.Join(config.Backends, ", "))
		}
		o.Images[b] = img
	}
	if f.ShmSize != "" {
		n, err := units.RAMInBytes(f.ShmSize)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("--shm-size %q: want a size such as 8g or 512m", f.ShmSize)
		}
		o.ShmSize = n
	}
	if f.Memory != "" {
		n, err := units.RAMInBytes(f.Memory)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("--container-memory %q: want a size such as 64g", f.Memory)
		}
		o.MemoryLimit = n
	}
	return o, nil
}

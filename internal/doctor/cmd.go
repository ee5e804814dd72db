package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/llem/llem/internal/cli"
	"github.com/llem/llem/internal/gpu"
	"github.com/llem/llem/internal/runner/docker"
	"github.com/llem/llem/internal/study"
)

type cmdOpts struct {
	JSON bool `long:"json" description:"one JSON object (energy_source, checks[{area, name, status, detail, fix}]) for scripts"`
}

const cmdLong = `Check what this machine offers llem: GPUs (NVML: name, memory, driver, persistence and MIG
mode), RAPL domains and whether they read, the CPU-time estimate used where neither exists, the
Docker engine and its NVIDIA runtime, the images a study names (with STUDY), the Python backends
LLEM_PYTHON (else python3) imports, and cgroup v2. Each line says what to do about what is
missing. Always exits 0 (a problem reading STUDY is reported as a line): what is missing is a
finding, not a failure.`

// probeTimeout bounds the engine and Python probes together.
const probeTimeout = 2 * time.Minute

// Command is the body of llem-doctor.
func Command(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o cmdOpts
	rest, err := cli.Parse("llem-doctor", "[OPTIONS] [STUDY]", cmdLong, &o, args, stdout, cli.ExitOK)
	if err != nil {
		if errors.Is(err, cli.ErrHelp) {
			return err
		}
		fmt.Fprintf(stderr, "llem-doctor: %v\n", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	env := machineEnv()
	var studyErr *Check
	if len(rest) > 0 {
		env.Study, studyErr = LoadStudy(rest[0])
	}
	r := Run(ctx, env)
	if studyErr != nil {
		r.Checks = append([]Check{*studyErr}, r.Checks...)
	}
	if o.JSON {
		b, _ := json.Marshal(r)
		_, err = fmt.Fprintf(stdout, "%s\n", b)
	} else {
		err = WriteText(stdout, r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "llem-doctor: %v\n", err)
	}
	return nil
}

// machineEnv is the Env the command checks (tests give a fake machine).
var machineEnv = MachineEnv

// MachineEnv is this machine: /sys, /proc, the real NVML, the engine named
// by DOCKER_HOST, the local runner's Python.
func MachineEnv() Env {
	py, pyErr := interpreter()
	return Env{SysRoot: "/sys", ProcRoot: "/proc", OpenGPU: gpu.Open, Engine: dockerEngine,
		Python: py, PythonErr: pyErr, Imports: pythonImports}
}

// LoadStudy expands a study to learn its backends and docker images; a
// problem comes back as a check line.
func LoadStudy(file string) (*StudyNeeds, *Check) {
	data, err := os.ReadFile(file)
	var s *study.Study
	if err == nil {
		s, err = study.Expand(file, data, study.Options{Cycles: 1, Order: study.OrderSequential})
	}
	if err != nil {
		return nil, &Check{Area: "study", Name: file, Status: Missing, Detail: oneLine(err), Fix: "fix the study (llem-expand reports the same errors)"}
	}
	n := &StudyNeeds{File: file}
	seen := map[string]bool{}
	_ = s.Each(func(r *study.Run) error {
		b := r.Config.Backend
		if r.Runner.Type != "docker" && !contains(n.LocalBackends, b) {
			n.LocalBackends = append(n.LocalBackends, b)
		}
		if r.Runner.Type == "docker" {
			img := r.Runner.Image
			if img == "" {
				img = docker.DefaultImages[b]
			}
			if img != "" && !seen[img] {
				seen[img] = true
				n.Images = append(n.Images, img)
			}
		}
		return nil
	})
	return n, nil
}

type engine struct{ c *client.Client }

func dockerEngine() (Engine, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	return engine{c}, nil
}

func (e engine) Info(ctx context.Context) (string, []string, string, error) {
	info, err := e.c.Info(ctx)
	if err != nil {
		return "", nil, "", err
	}
	var rts []string
	for k := range info.Runtimes {
		rts = append(rts, k)
	}
	return info.ServerVersion, rts, info.DefaultRuntime, nil
}

func (e engine) HasImage(ctx context.Context, ref string) (bool, error) {
	_, err := e.c.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func pythonImports(ctx context.Context, py string, modules []string) (map[string]*string, error) {
	out, err := exec.CommandContext(ctx, py, append([]string{"-c", pythonProbe}, modules...)...).Output()
	if err != nil {
		return nil, err
	}
	var got map[string]*string
	if err := json.Unmarshal(out, &got); err != nil {
		return nil, fmt.Errorf("probe output %q: %w", out, err)
	}
	return got, nil
}

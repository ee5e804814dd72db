package runloop

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner"
	"github.com/llem/llem/internal/runner/docker"
	"github.com/llem/llem/internal/runner/docker/dockertest"
)

// dockerServing is the engine and the stand-in's image for the docker
// serving tests; they skip under -short and where no engine answers.
func dockerServing(t *testing.T) (*client.Client, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the docker serving tests need the Docker engine")
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Skipf("no Docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		t.Skipf("SKIPPED: Docker engine not reachable: %v", err)
	}
	img := fmt.Sprintf("llem-test/standin-server:%d", os.Getpid())
	if err := buildStandinImage(cli, img); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), img, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return cli, img
}

// buildStandinImage wraps the static stand-in in an image FROM scratch, as
// llem-serve on the image's PATH.
func buildStandinImage(cli *client.Client, tag string) error {
	bin, err := os.ReadFile(standinBin)
	if err != nil {
		return err
	}
	return dockertest.Build(cli, tag, "FROM scratch\nCOPY llem-serve /usr/local/bin/llem-serve\n",
		dockertest.File{Name: "llem-serve", Mode: 0o755, Data: bin})
}

// portWatch wraps the docker runner: at the server's first line of output
// (the stand-in listens by then) it inspects the run's container and keeps
// its port bindings.
type portWatch struct {
	runner.Runner
	cli   *client.Client
	owner string
	mu    sync.Mutex
	seen  []string // "HOSTIP:HOSTPORT->PORT" of every binding
}

func (p *portWatch) Run(ctx context.Context, spec runner.Spec) (runner.Result, error) {
	var once sync.Once
	stderr := spec.Stderr
	spec.Stderr = writerFunc(func(b []byte) (int, error) {
		once.Do(func() { p.inspect(spec.Experiment.RunID) })
		return stderr.Write(b)
	})
	return p.Runner.Run(ctx, spec)
}

func (p *portWatch) inspect(runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := p.cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", docker.LabelOwner+"="+p.owner), filters.Arg("label", docker.LabelRunID+"="+runID))})
	if err != nil || len(list) != 1 {
		return
	}
	insp, err := p.cli.ContainerInspect(ctx, list[0].ID)
	if err != nil || insp.NetworkSettings == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for port, binds := range insp.NetworkSettings.Ports {
		for _, b := range binds {
			p.seen = append(p.seen, b.HostIP+":"+b.HostPort+"->"+string(port))
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// containersLeft lists the containers of owner, running or not.
func containersLeft(t *testing.T, cli *client.Client, owner string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelOwner+"="+owner))})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, fmt.Sprintf("%s %v %s", c.ID[:12], c.Names, c.State))
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	return names
}

// TestServingDocker runs the stand-in server in a container: its port is
// published on 127.0.0.1 only, and the container is gone after a run that
// succeeds, one whose server exits, and one interrupted under traffic.
func TestServingDocker(t *testing.T) {
	cli, img := dockerServing(t)
	owner := fmt.Sprintf("llem-test-runloop-%d", os.Getpid())
	dopts := func(out, mode string) (Options, *portWatch) {
		dr, err := docker.New(docker.Options{Owner: owner, NoPull: true, Log: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dr.Close() })
		pw := &portWatch{Runner: dr, cli: cli, owner: owner}
		o := standinOpts(out, mode)
		o.Runners["docker"] = pw
		return o, pw
	}
	rn := record.Runner{Type: "docker", Image: img}
	t.Run("ok", func(t *testing.T) {
		out := t.TempDir()
		o, pw := dopts(out, "ok")
		runs, _, _ := runStream(t, o, servingLine(1, servingSection, rn))
		if len(runs) != 1 {
			t.Fatalf("%d runs", len(runs))
		}
		checkServingRun(t, runDirOf(out, runs[0]), runs[0], true)
		if runs[0].Container == nil || runs[0].Container.ContainerID == "" {
			t.Errorf("container %+v", runs[0].Container)
		}
		pw.mu.Lock()
		seen := pw.seen
		pw.mu.Unlock()
		if len(seen) == 0 {
			t.Fatal("no port binding seen while the server ran")
		}
		for _, b := range seen {
			if !strings.HasPrefix(b, "127.0.0.1:") {
				t.Errorf("port binding %s: want 127.0.0.1 only", b)
			}
		}
		if left := containersLeft(t, cli, owner); len(left) > 0 {
			t.Errorf("containers left: %v", left)
		}
	})
	t.Run("exit", func(t *testing.T) {
		out := t.TempDir()
		o, _ := dopts(out, "exit")
		runs, _, _ := runStream(t, o, servingLine(2, servingSection, rn))
		if len(runs) != 1 || runs[0].Error == nil || runs[0].Error.Type != record.ErrServerExited || !strings.Contains(runs[0].Error.Message, "out of cheese") {
			t.Fatalf("runs %+v: want one failed server_exited with the log's tail", runs)
		}
		if left := containersLeft(t, cli, owner); len(left) > 0 {
			t.Errorf("containers left: %v", left)
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		out := t.TempDir()
		o, _ := dopts(out, "ok")
		long := strings.Replace(servingSection, `"requests":6`, `"requests":100000`, 1)
		r, _ := interruptUnderTraffic(t, o, servingLine(3, long, rn), filepath.Join(out, "s-fedcba98", "runs", "s003-c1", "requests.ndjson"))
		if r.Status != record.StatusInterrupted {
			t.Errorf("status %s, error %+v; want interrupted", r.Status, r.Error)
		}
		if left := containersLeft(t, cli, owner); len(left) > 0 {
			t.Errorf("containers left: %v", left)
		}
	})
}

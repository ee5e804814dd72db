package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/internal/runner/docker/dockertest"
)

// The suite runs against the real Docker engine. TestMain checks it is
// reachable (on CI=true an unreachable engine fails the suite; elsewhere the
// engine tests are skipped, loudly), builds a static test worker into an image
// FROM scratch, and afterwards asserts that no container with this suite's
// owner label is left.

var (
	engineErr  error  // why the engine tests are skipped
	testImage  string // llem-test/worker:<pid>, FROM scratch around testdata/worker
	nativeImg  string // llem-test/native:<pid>, FROM scratch around the native worker (scripts/docker/native)
	testOwner  = fmt.Sprintf("llem-test-%d", os.Getpid())
	testClient *client.Client
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// A child playing llem-exec (see TestKilledOwner): the parent's engine,
		// images and owner; the parent checks what it leaves behind.
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			os.Exit(1)
		}
		testClient = cli
		testOwner = os.Getenv("LLEM_TEST_OWNER")
		pyImage = os.Getenv("LLEM_TEST_PYIMAGE")
		os.Exit(m.Run())
	}
	flag.Parse()
	if testing.Short() {
		// No engine, no image builds: make check runs without services.
		engineErr = errors.New("-short: the engine tests need Docker")
		os.Exit(m.Run())
	}
	code := func() int {
		if err := setupEngine(); err != nil {
			banner := fmt.Sprintf("\n%s\n!!! Docker engine NOT reachable: %v\n!!! The docker runner's engine tests are SKIPPED.\n!!! Run `bash scripts/test-setup.sh` (starts the engine) to run them.\n%s\n",
				strings.Repeat("!", 78), err, strings.Repeat("!", 78))
			fmt.Fprint(os.Stderr, banner)
			if os.Getenv("CI") == "true" {
				fmt.Fprintln(os.Stderr, "CI=true: an unreachable Docker engine is a failure")
				return 1
			}
			engineErr = err
			return m.Run()
		}
		code := m.Run()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		left, err := testClient.ContainerList(ctx, container.ListOptions{All: true, Filters: ownerFilter(testOwner)})
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: cannot list containers after the suite: %v\n", err)
			code = 1
		}
		for _, c := range left {
			fmt.Fprintf(os.Stderr, "FAIL: container %s (%v, %s) outlived its run\n", c.ID[:12], c.Names, c.State)
			_ = testClient.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			code = 1
		}
		if len(left) == 0 && err == nil {
			fmt.Fprintf(os.Stderr, "docker suite: no container with label %s=%s left behind\n", LabelOwner, testOwner)
		}
		removeLaterImages(ctx)
		for _, img := range []string{testImage, nativeImg} {
			if _, err := testClient.ImageRemove(ctx, img, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
				fmt.Fprintf(os.Stderr, "warning: removing %s: %v\n", img, err)
			}
		}
		return code
	}()
	os.Exit(code)
}

func setupEngine() error {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	// A busy engine answers late; only a dead one reaches the bound.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		return err
	}
	testClient = cli
	removeStaleTestLeftovers(cli)
	testImage = fmt.Sprintf("llem-test/worker:%d", os.Getpid())
	if err := buildScratchImage(cli, testImage, "./testdata/worker"); err != nil {
		return err
	}
	nativeImg = fmt.Sprintf("llem-test/native:%d", os.Getpid())
	return buildScratchImage(cli, nativeImg, "../../../scripts/docker/native")
}

// buildScratchImage builds pkg statically (CGO_ENABLED=0) and wraps it in an
// image FROM scratch through the engine's build API.
func buildScratchImage(cli *client.Client, tag, pkg string) error {
	dir, err := os.MkdirTemp("", "llem-docker-test-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "worker")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	binData, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	return dockertest.Build(cli, tag, "FROM scratch\nCOPY worker /worker\nENTRYPOINT [\"/worker\"]\n",
		dockertest.File{Name: "worker", Mode: 0o755, Data: binData})
}

func needEngine(t *testing.T) {
	t.Helper()
	if engineErr != nil {
		t.Skipf("SKIPPED: Docker engine not reachable: %v", engineErr)
	}
}

// newTestRunner is a runner whose containers carry this suite's owner label.
func newTestRunner(t *testing.T, opts Options) *Runner {
	t.Helper()
	opts.Owner = testOwner
	if opts.Log == nil {
		opts.Log = &bytes.Buffer{}
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// writeExperiment makes a run directory holding experiment.json.
func writeExperiment(t *testing.T, exp any) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(exp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "experiment.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unmarshalInput(t *testing.T, b []byte) record.WorkerInput {
	t.Helper()
	var in record.WorkerInput
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	return in
}

func lastEv(t *testing.T, evs []record.Event) record.Event {
	t.Helper()
	if len(evs) == 0 {
		t.Fatal("the worker wrote no events")
	}
	return evs[len(evs)-1]
}

func firstEv(t *testing.T, evs []record.Event) record.Event {
	t.Helper()
	if len(evs) == 0 {
		t.Fatal("the worker wrote no events")
	}
	return evs[0]
}

// removeStaleTestLeftovers removes what an earlier run of this suite that
// died (a panic skips TestMain's cleanup) left: llem-test images and
// containers tagged with a pid that is gone.
func removeStaleTestLeftovers(cli *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dead := func(pidS string) bool {
		pid, err := strconv.Atoi(pidS)
		return err == nil && pid != os.Getpid() && !pidAlive(pid)
	}
	if list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelOwner))}); err == nil {
		for _, c := range list {
			if p, ok := strings.CutPrefix(c.Labels[LabelOwner], "llem-test-"); ok && dead(p) {
				_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
		}
	}
	if imgs, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", "llem-test/*"))}); err == nil {
		for _, im := range imgs {
			for _, tag := range im.RepoTags {
				if i := strings.LastIndexByte(tag, ':'); i > 0 && dead(tag[i+1:]) {
					_, _ = cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true})
				}
			}
		}
	}
}

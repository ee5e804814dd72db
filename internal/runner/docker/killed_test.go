package docker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/llem/llem/internal/runner"
)

const helperEnv = "LLEM_DOCKER_TEST_HELPER"

// TestKilledOwner plays an llem-exec that is SIGKILLed while its worker runs
// (a pytorch worker stuck loading): the container must not hold on — its
// stdin (the dead process's attach connection) closes, the worker's watchdog
// ends it — and the next pre-flight sweep removes it.
func TestKilledOwner(t *testing.T) {
	img := pythonImage(t)
	runDir := t.TempDir()
	in := pythonExperiment(t, img, "model: hang\nbackend: pytorch\nn: 3\nwarmup: {enabled: false}\n")
	if err := os.WriteFile(filepath.Join(runDir, "experiment.json"), mustJSON(t, in), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOwner$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "LLEM_TEST_OWNER="+testOwner, "LLEM_TEST_PYIMAGE="+img,
		"LLEM_TEST_RUNDIR="+runDir, "LLEM_TEST_MODELCACHE="+t.TempDir())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the stand-in is stuck in from_pretrained, in a running container.
	byRun := filters.NewArgs(filters.Arg("label", LabelRunID+"="+in.RunID))
	deadline := time.Now().Add(5 * time.Minute) // only a hang reaches it
	var id string
	for id == "" {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the helper's container never got to loading:\n%s", out.String())
		}
		b, _ := os.ReadFile(filepath.Join(runDir, "calls.ndjson"))
		if strings.Contains(string(b), "AutoModelForCausalLM.from_pretrained") {
			l, err := testClient.ContainerList(context.Background(), container.ListOptions{Filters: byRun})
			if err == nil && len(l) == 1 {
				id = l[0].ID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill() // SIGKILL: no cleanup of any kind in the helper
	_ = cmd.Wait()

	// The container ends by itself.
	t0 := time.Now()
	for {
		insp, err := testClient.ContainerInspect(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !insp.State.Running {
			t.Logf("orphaned container exited %s after its owner was killed (exit code %d)", time.Since(t0).Round(time.Millisecond), insp.State.ExitCode)
			break
		}
		if time.Since(t0) > 5*time.Minute {
			t.Fatal("the orphaned container was still running 5 minutes after its owner died")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// And the next pre-flight's sweep removes it.
	r := newTestRunner(t, Options{})
	removed, err := r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testClient.ContainerInspect(context.Background(), id); !isNotFound(err) {
		t.Fatalf("sweep removed %v but not the orphan %s", removed, id[:12])
	}
}

// TestHelperOwner is the helper process's body (it runs only under helperEnv).
func TestHelperOwner(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process for TestKilledOwner")
	}
	runDir := os.Getenv("LLEM_TEST_RUNDIR")
	b, err := os.ReadFile(filepath.Join(runDir, "experiment.json"))
	if err != nil {
		t.Fatal(err)
	}
	in := unmarshalInput(t, b)
	r, err := New(Options{Owner: testOwner, ModelCache: os.Getenv("LLEM_TEST_MODELCACHE"), CacheDir: filepath.Join(runDir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = r.Run(context.Background(), runner.Spec{Experiment: in.Experiment, RunDir: runDir,
		Env: []string{"LLEM_FAKE_LOG=" + MountRun + "/calls.ndjson"}, Stdout: os.Stdout, Stderr: os.Stderr, Grace: time.Second})
}

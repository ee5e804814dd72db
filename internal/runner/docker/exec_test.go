package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/llem/llem/internal/record"
	"github.com/llem/llem/schemas"
)

// llem-exec with the docker runner, as a user runs it: the built llem-expand
// and llem-exec, a study whose runners: puts the native backend in the
// suite's image (the native worker FROM scratch, built by TestMain), the real
// engine.

func buildTools(t *testing.T) (expand, execBin string) {
	t.Helper()
	dir := t.TempDir()
	for _, c := range []string{"llem-expand", "llem-exec"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, c), "../../../cmd/"+c).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, out)
		}
	}
	return filepath.Join(dir, "llem-expand"), filepath.Join(dir, "llem-exec")
}

func dockerStudy(name, img string, batches string, gap int) string {
	return fmt.Sprintf(`name: %s
model: llem-tiny
backend: native
n: 4
max_output_tokens: 8
dataset: {input_len: 16, output_len: 8}
warmup: {n_warmup: 1, thermal_floor_seconds: 0}
sweep:
  native.batch_size: [%s]
execution: {n_cycles: 1, experiment_gap_seconds: %d}
runners:
  native: "docker:%s"
`, name, batches, gap, img)
}

// startPipeline starts `llem-expand study | llem-exec args...` through a real
// pipe and returns llem-exec, its stdout (read as it comes) and stderr.
func startPipeline(t *testing.T, expand, execBin, yaml string, args ...string) (*exec.Cmd, io.ReadCloser, *syncBuf) {
	t.Helper()
	study := filepath.Join(t.TempDir(), "study.yaml")
	if err := os.WriteFile(study, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ex := exec.Command(expand, study)
	ru := exec.Command(execBin, args...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ex.Stdout, ru.Stdin = pw, pr
	var errb syncBuf
	ex.Stderr, ru.Stderr = io.Discard, &errb
	out, err := ru.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ru.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	pr.Close()
	if err := ex.Wait(); err != nil {
		t.Fatalf("llem-expand: %v", err)
	}
	return ru, out, &errb
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// assertNoStudyContainers lists every container, running or not, labelled
// with the study: llem-exec must have removed them all.
func assertNoStudyContainers(t *testing.T, study string) {
	t.Helper()
	left, err := testClient.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelStudy+"="+study))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range left {
		t.Errorf("container %s (%s) of study %s left behind", c.ID[:12], c.State, study)
		_ = testClient.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestLlemExecDocker: two native runs in containers through the pipeline:
// ok, with the image, its digest and the container in the run record,
// schema-valid, no container left.
func TestLlemExecDocker(t *testing.T) {
	needEngine(t)
	expand, execBin := buildTools(t)
	name := fmt.Sprintf("dockerexec-%d", os.Getpid())
	out := t.TempDir()
	t0 := time.Now()
	cmd, stdout, errb := startPipeline(t, expand, execBin, dockerStudy(name, nativeImg, "1, 2", 0),
		"--out", out, "--no-pull", "--sampler", "estimate", "--baseline", "0")
	raw, _ := io.ReadAll(stdout)
	if code := exitCode(cmd.Wait()); code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	took := time.Since(t0)
	if _, err := schemas.CheckNDJSON(raw); err != nil {
		t.Fatalf("schema: %v\n%s", err, raw)
	}
	insp, err := testClient.ImageInspect(context.Background(), nativeImg)
	if err != nil {
		t.Fatal(err)
	}
	var runs []record.Run
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var r record.Run
		if err := json.Unmarshal(l, &r); err != nil || r.Kind != record.KindRun {
			continue
		}
		runs = append(runs, r)
		if r.Status != record.StatusOK || r.Totals == nil || r.Totals.Requests != 4 {
			t.Errorf("%s: %s %+v totals %+v", r.RunID, r.Status, r.Error, r.Totals)
		}
		if r.Runner.Type != "docker" || r.Runner.Image != nativeImg {
			t.Errorf("%s: runner %+v, want docker %s (from the study's runners:)", r.RunID, r.Runner, nativeImg)
		}
		c := r.Container
		if c == nil || c.Image != nativeImg || c.ImageDigest != insp.ID || !hex64.MatchString(c.ContainerID) {
			t.Errorf("%s: container %+v, want image %s digest %s and a container id", r.RunID, c, nativeImg, insp.ID)
		}
		if r.Worker == nil || r.Worker.Command != nil || r.Worker.ExitCode == nil || *r.Worker.ExitCode != 0 {
			t.Errorf("%s: worker %+v", r.RunID, r.Worker)
		}
		if r.Phases.Measure == nil || len(r.Samplers) != 1 {
			t.Errorf("%s: phases %+v samplers %v", r.RunID, r.Phases, r.Samplers)
		}
		if _, err := os.Stat(filepath.Join(r.RunDir, "run.json")); err != nil {
			t.Error(err)
		}
	}
	if len(runs) != 2 {
		t.Fatalf("%d run records, want 2\n%s", len(runs), errb.String())
	}
	assertNoStudyContainers(t, name)
	t.Logf("2 native runs in containers through llem-expand | llem-exec: %s (container %s…, %s)", took.Round(time.Millisecond), runs[0].Container.ContainerID[:12], runs[0].Container.ImageDigest[:19])
}

// TestLlemExecDockerImageMissing: an image missing at pre-flight (pulls off)
// refuses the stream with the fix (exit 1, no run); an image that goes away
// after pre-flight fails only its run (image_missing, with the hint) and the
// next run still runs.
func TestLlemExecDockerImageMissing(t *testing.T) {
	needEngine(t)
	expand, execBin := buildTools(t)
	ctx := context.Background()

	name := fmt.Sprintf("dockerabsent-%d", os.Getpid())
	out := t.TempDir()
	cmd, stdout, errb := startPipeline(t, expand, execBin, dockerStudy(name, "llem-test/absent:never", "1", 0),
		"--out", out, "--no-pull", "--sampler", "none")
	raw, _ := io.ReadAll(stdout)
	code := exitCode(cmd.Wait())
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	last := lines[len(lines)-1]
	if code != 1 || len(bytes.TrimSpace(raw)) != 0 || !strings.Contains(last, "[image_missing]") || !strings.Contains(last, "`docker pull llem-test/absent:never`") {
		t.Fatalf("pre-flight with a missing image: exit %d, stdout %q, last stderr line %q", code, raw, last)
	}
	if m, _ := filepath.Glob(filepath.Join(out, "*", "runs", "*")); len(m) != 0 {
		t.Errorf("runs started although pre-flight failed: %v", m)
	}

	doomed := fmt.Sprintf("llem-test/doomed:%d", os.Getpid())
	if err := testClient.ImageTag(ctx, nativeImg, doomed); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = testClient.ImageRemove(context.Background(), doomed, image.RemoveOptions{}) })
	name = fmt.Sprintf("dockervanish-%d", os.Getpid())
	cmd, stdout, errb = startPipeline(t, expand, execBin, dockerStudy(name, doomed, "1, 2, 4", 2),
		"--out", t.TempDir(), "--no-pull", "--sampler", "none")
	var runs []record.Run
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 16<<20)
	var all []byte
	for sc.Scan() {
		all = append(append(all, sc.Bytes()...), '\n')
		var r record.Run
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Kind != record.KindRun {
			continue
		}
		runs = append(runs, r)
		switch len(runs) {
		case 1: // in the 2 s gap before the second run: the image goes away
			if _, err := testClient.ImageRemove(ctx, doomed, image.RemoveOptions{}); err != nil {
				t.Fatal(err)
			}
		case 2: // and comes back before the third
			if err := testClient.ImageTag(ctx, nativeImg, doomed); err != nil {
				t.Fatal(err)
			}
		}
	}
	code = exitCode(cmd.Wait())
	if code != 3 || len(runs) != 3 {
		t.Fatalf("exit %d (want 3), %d runs\n%s", code, len(runs), errb.String())
	}
	if _, err := schemas.CheckNDJSON(all); err != nil {
		t.Fatalf("schema: %v", err)
	}
	if runs[0].Status != record.StatusOK || runs[2].Status != record.StatusOK {
		t.Errorf("runs around the missing image: %s %+v, %s %+v", runs[0].Status, runs[0].Error, runs[2].Status, runs[2].Error)
	}
	e := runs[1].Error
	if runs[1].Status != record.StatusFailed || e == nil || e.Type != record.ErrImageMissing || !strings.Contains(e.Message, doomed) || !strings.Contains(e.Hint, "docker pull "+doomed) {
		t.Errorf("run with the vanished image: %s %+v", runs[1].Status, e)
	}
	if runs[1].Container == nil || runs[1].Container.Image != doomed || runs[1].Container.ContainerID != "" {
		t.Errorf("failed run's container %+v: want the image named and no container", runs[1].Container)
	}
	assertNoStudyContainers(t, name)
	t.Logf("vanished image: %s: %s (fix: %s)", e.Type, e.Message, e.Hint)
}

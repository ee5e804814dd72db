package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeGPUTools writes an nvidia-smi listing one GPU and an llem-sample that
// runs its command and prints the energy summary llem-sample prints, with
// the counter-vs-integral gap given (idle: 70 W, load: 650 W).
func fakeGPUTools(t *testing.T, gapPct string) (pathDir, binDir string) {
	t.Helper()
	pathDir, binDir = t.TempDir(), t.TempDir()
	smi := "#!/bin/sh\ncase \"$1\" in -L) echo 'GPU 0: Fake H100 (UUID: GPU-fa4e0000)';; *) echo '0, Fake H100, GPU-fa4e0000, 550.54.15, 700.00 W, Enabled';; esac\n"
	sample := `#!/bin/bash
while [ "$1" != -- ]; do shift; done; shift
mean=650.0
[ "$1" = sleep ] && mean=70.0
"$@" >/dev/null 2>&1
echo "llem-sample: 1.00 s, 50 ticks at 20ms (0 late), 50 rows" >&2
echo "     device  source  scope  counter_j  integral_j  gap_pct  mean_w  samples" >&2
echo "GPU-fa4e0000    nvml    gpu    1000.00     1000.00   ` + gapPct + `  $mean       50" >&2
`
	for name, body := range map[string]string{filepath.Join(pathDir, "nvidia-smi"): smi, filepath.Join(binDir, "llem-sample"): sample} {
		if err := os.WriteFile(name, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return pathDir, binDir
}

// scripts/gpu-check.sh can fail: on a (stand-in) GPU machine a counter vs
// integral gap above GAP_MAX_PCT fails the energy-gap check and the script
// exits 1; within it, the check passes. Without PyTorch the model and worker
// checks fail too (the machine it is meant for has PyTorch), never pass
// silently; a missing vLLM, second GPU or Docker runtime is a skip with its
// reason.
func TestGPUCheckFails(t *testing.T) {
	for _, c := range []struct {
		gap, want string
	}{
		{"7.3", "FAIL energy-gap:  GPU-fa4e0000: gap 7.3 % > 5 %;"},
		{"-1.2", "PASS energy-gap: every GPU within 5 %"},
	} {
		pathDir, binDir := fakeGPUTools(t, c.gap)
		cmd := exec.Command("bash", "../../scripts/gpu-check.sh")
		cmd.Env = append(os.Environ(), "PATH="+pathDir+":"+os.Getenv("PATH"), "LLEM_BIN="+binDir, "LOAD_CMD=true", "IDLE_S=0", "PYTHONPATH=")
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 {
			t.Fatalf("gap %s: exit %v, want 1\n%s", c.gap, err, out)
		}
		for _, want := range []string{c.want, "PASS driver: 1 GPU(s)", "PASS idle", "FAIL model: python3 lacks CUDA PyTorch or transformers",
			"SKIP pipeline-vllm: python3 cannot import vllm", "SKIP tensor-parallel: 1 GPU(s) visible, 2 needed", "gpu-check: FAILED"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("gap %s: output lacks %q\n%s", c.gap, want, out)
			}
		}
		if !regexp.MustCompile(`SKIP docker-runner: \S`).Match(out) {
			t.Errorf("docker-runner skipped without a reason:\n%s", out)
		}
	}
}

// The dry run says what each check checks, with its threshold, and whether
// it would run on this machine; it runs nothing.
func TestGPUCheckDryRun(t *testing.T) {
	out, err := exec.Command("bash", "../../scripts/gpu-check.sh", "--dry-run").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"dry run: nothing is run", "|integral − counter| / counter <= 5 %", "1. driver", "9. docker-runner", "tensor_parallel_size 2", "here: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dry run lacks %q\n%s", want, out)
		}
	}
}

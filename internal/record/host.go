package record

import (
	"bufio"
	"os"
	"runtime"
	"strings"
)

// HostFacts fills what the Go runtime and the kernel say about this
// machine: hostname, OS, architecture, CPU count, kernel release and CPU
// model. procRoot is where procfs is mounted ("/proc"; tests point it at a
// fixture). GPUs are left to the sampler, which asks NVML. llem-exec and
// llem-sample both describe the host with it.
func HostFacts(procRoot string) Host {
	h := Host{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	h.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile(procRoot + "/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open(procRoot + "/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return h
}

// Package python carries the Python workers (pytorch, vllm, tensorrt) inside
// the Go binaries: their sources are embedded, extracted on demand into a cache
// directory keyed by their content hash, and started either locally (Command)
// or inside a backend's container (the docker runner mounts Dir read-only).
//
// The workers use only the Python standard library beyond the backend itself,
// read experiment.json (LLEM_EXPERIMENT) and write worker-protocol events to
// stdout; see src/llem_worker/protocol.py.
package python

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
)

//go:embed src/run_worker.py src/llem_worker/*.py
var sources embed.FS

// Backends are the backends implemented by the Python workers.
var Backends = []string{"pytorch", "vllm", "tensorrt"}

// Entry is the launcher script, relative to the extracted directory. Running
// `python3 DIR/run_worker.py BACKEND` puts DIR on sys.path, so the llem_worker
// package needs no PYTHONPATH.
const Entry = "run_worker.py"

// IsBackend reports whether backend is one of Backends.
func IsBackend(backend string) bool {
	for _, b := range Backends {
		if b == backend {
			return true
		}
	}
	return false
}

var (
	hashOnce sync.Once
	hashHex  string
)

// Hash is the first 12 hex of SHA-256 over the embedded files (names and
// contents, in order): it names the extraction directory, so a new llem binary
// never runs an old extraction and two binaries never overwrite each other.
func Hash() string {
	hashOnce.Do(func() {
		h := sha256.New()
		var names []string
		_ = fs.WalkDir(sources, "src", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				names = append(names, p)
			}
			return err
		})
		sort.Strings(names)
		for _, n := range names {
			b, _ := sources.ReadFile(n)
			fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
			h.Write(b)
		}
		hashHex = hex.EncodeToString(h.Sum(nil))[:12]
	})
	return hashHex
}

// DefaultCacheDir is $LLEM_CACHE_DIR, else the user cache directory + /llem.
func DefaultCacheDir() string {
	if d := os.Getenv("LLEM_CACHE_DIR"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "llem")
	}
	return filepath.Join(os.TempDir(), "llem-cache")
}

// Extract writes the embedded sources under cacheDir/python-<hash> (once: an
// existing complete extraction is reused) and returns that directory. The
// files are written to a temporary sibling and renamed into place, so a
// concurrent llem-exec never sees a half-written tree.
func Extract(cacheDir string) (string, error) {
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	dir := filepath.Join(cacheDir, "python-"+Hash())
	if _, err := os.Stat(filepath.Join(dir, Entry)); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("python workers: cache dir: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".python-tmp-")
	if err != nil {
		return "", fmt.Errorf("python workers: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op after a successful rename
	err = fs.WalkDir(sources, "src", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("src", p)
		dst := filepath.Join(tmp, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := sources.ReadFile(p)
		if err != nil {
			return err
		}
		// World-readable: containers may run as another uid than the host user.
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("python workers: extract: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("python workers: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process won the race: its tree is as good as ours.
		if _, serr := os.Stat(filepath.Join(dir, Entry)); serr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("python workers: install %s: %w", dir, err)
	}
	return dir, nil
}

// Interpreter is the Python the local runner starts: $LLEM_PYTHON, else
// python3 on PATH.
func Interpreter() (string, error) {
	if p := os.Getenv("LLEM_PYTHON"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		return "", fmt.Errorf("no python3 on PATH for the Python workers (set LLEM_PYTHON to the interpreter that has the backend installed)")
	}
	return p, nil
}

// Command returns the argv that runs backend's worker locally, extracting the
// sources under cacheDir ("" = DefaultCacheDir) first. The local runner uses it
// for `runners: {pytorch: local}`.
func Command(backend, cacheDir string) ([]string, error) {
	if !IsBackend(backend) {
		return nil, fmt.Errorf("no Python worker for backend %q (have %v)", backend, Backends)
	}
	py, err := Interpreter()
	if err != nil {
		return nil, err
	}
	dir, err := Extract(cacheDir)
	if err != nil {
		return nil, err
	}
	return []string{py, filepath.Join(dir, Entry), backend}, nil
}

// ContainerCommand is the argv inside a container where the sources are
// mounted at mountDir and the image's Python is python3 on PATH.
func ContainerCommand(backend, mountDir string) []string {
	return []string{"python3", mountDir + "/" + Entry, backend}
}

package runloop

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/llem/llem/internal/atomicfile"
	"github.com/llem/llem/internal/record"
)

// writeJSONAtomic writes v as indented JSON to path whole or not at all
// (atomicfile): a crash leaves either the old file or the new one, never
// half of one.
func writeJSONAtomic(path string, v any) error { return atomicfile.WriteJSON(path, v) }

// dirGuard remembers the run directory and the files llem-exec holds open
// in it (events.ndjson, worker.log) before the worker starts, and checks
// after it ends that they are still those: a worker may write in its run
// directory, but one that replaces these with a symlink, a FIFO or another
// file (to make llem-exec or a later tool read or write elsewhere) fails its
// run, and what it planted is removed so that no tool follows it.
type dirGuard struct {
	dir   string
	dirFI os.FileInfo
	files map[string]os.FileInfo
}

func newDirGuard(dir string, open ...*os.File) *dirGuard {
	g := &dirGuard{dir: dir, files: map[string]os.FileInfo{}}
	g.dirFI, _ = os.Lstat(dir)
	for _, f := range open {
		if fi, err := f.Stat(); err == nil {
			g.files[filepath.Base(f.Name())] = fi
		}
	}
	return g
}

// check returns "" when all is as it was, else what changed (and removes
// the replacements). samples.arrows, written by the sampler, must be a
// regular file if it exists.
func (g *dirGuard) check() string {
	if fi, err := os.Lstat(g.dir); err != nil || g.dirFI == nil || !os.SameFile(fi, g.dirFI) || !fi.IsDir() {
		return fmt.Sprintf("the run directory %s was replaced while the worker ran", g.dir)
	}
	var bad []string
	for name, want := range g.files {
		p := filepath.Join(g.dir, name)
		fi, err := os.Lstat(p)
		if err == nil && os.SameFile(fi, want) {
			continue
		}
		what := "removed"
		if err == nil {
			what = "replaced by " + describeMode(fi.Mode())
			os.Remove(p)
		}
		bad = append(bad, name+" "+what)
	}
	p := filepath.Join(g.dir, "samples.arrows")
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		bad = append(bad, "samples.arrows replaced by "+describeMode(fi.Mode()))
		os.Remove(p)
	}
	if len(bad) == 0 {
		return ""
	}
	sort.Strings(bad)
	return fmt.Sprintf("the worker tampered with its run directory: %s", strings.Join(bad, ", "))
}

func describeMode(m os.FileMode) string {
	switch {
	case m&os.ModeSymlink != 0:
		return "a symlink"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "another file"
	}
	return "a special file"
}

// Entry is one line of journal.ndjson.
type Entry struct {
	T       int64         `json:"t"`
	Op      string        `json:"op"` // open | state | close
	RunID   string        `json:"run_id,omitempty"`
	Seq     *int          `json:"seq,omitempty"`
	ID      string        `json:"id,omitempty"`
	Status  string        `json:"status,omitempty"`
	Attempt int           `json:"attempt,omitempty"`
	Error   *record.Error `json:"error,omitempty"`
	PID     int           `json:"pid,omitempty"`
	Host    string        `json:"host,omitempty"`
	Reason  string        `json:"reason,omitempty"` // close: done | interrupted | fail-fast
}

// journal is the append-only, fsync'd log of a study directory.
type journal struct {
	f *os.File
}

// runState is what the journal says about one run.
type runState struct {
	Status   string
	Attempts int
}

// readJournal replays path. A last line without a newline (the previous
// llem-exec was killed mid-write) is reported through warn as file:line and
// cut off; any other bad line is an error naming file:line:col.
func readJournal(path string, warn func(string)) (map[string]*runState, error) {
	return readJournalFile(path, true, warn)
}

// readJournalFile is readJournal; with cut false it only reads: a last line
// without a newline is skipped silently, since it may be one a running
// llem-exec is writing at this moment.
func readJournalFile(path string, cut bool, warn func(string)) (map[string]*runState, error) {
	states := map[string]*runState{}
	// Replay may cut the file (below): never through a symlink.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, noFollowErr(path, syscall.ELOOP)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return states, nil
	}
	if err != nil {
		return nil, err
	}
	line := 0
	for off := 0; off < len(b); {
		line++
		end := -1
		for i := off; i < len(b); i++ {
			if b[i] == '\n' {
				end = i
				break
			}
		}
		if end < 0 && !cut {
			break
		}
		if end < 0 {
			warn(fmt.Sprintf("%s:%d: truncated record ignored (a previous llem-exec was killed while writing it)", path, line))
			if err := os.Truncate(path, int64(off)); err != nil {
				return nil, fmt.Errorf("%s: cut truncated record: %w", path, err)
			}
			break
		}
		raw := b[off:end]
		off = end + 1
		if len(raw) == 0 {
			continue
		}
		var e Entry
		if err := (record.Line{File: path, No: line, Raw: raw}).DecodeLax(&e); err != nil {
			return nil, err
		}
		if e.Op != "state" || e.RunID == "" {
			continue
		}
		st := states[e.RunID]
		if st == nil {
			st = &runState{}
			states[e.RunID] = st
		}
		st.Status = e.Status
		if e.Status == record.StatusRunning {
			st.Attempts++
		}
	}
	return states, nil
}

func openJournal(path string) (*journal, error) {
	// O_NOFOLLOW: the journal is llem-exec's own file; a symlink planted in
	// its place is refused rather than written through.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, noFollowErr(path, err)
	}
	return &journal{f: f}, nil
}

// append writes entries as one write and fsyncs: a state change is durable
// before anything that depends on it happens.
func (j *journal) append(es ...Entry) error {
	var buf []byte
	now := time.Now().UnixNano()
	for _, e := range es {
		if e.T == 0 {
			e.T = now
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	if _, err := j.f.Write(buf); err != nil {
		return fmt.Errorf("journal %s: %w", j.f.Name(), err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal %s: %w", j.f.Name(), err)
	}
	return nil
}

func (j *journal) close() error { return j.f.Close() }

// lock holds <study>/lock with flock; its content says who holds it.
type lock struct{ f *os.File }

func takeLock(path, host string) (*lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, noFollowErr(path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		held, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is held by another llem-exec (%s); wait for it or stop it", path, string(trimNL(held)))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	info, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "host": host, "time": time.Now().UTC().Format(time.RFC3339)})
	f.Truncate(0)
	f.WriteAt(append(info, '\n'), 0)
	return &lock{f: f}, nil
}

func (l *lock) release() { l.f.Close() }

// noFollowErr says plainly why O_NOFOLLOW refused a path.
func noFollowErr(path string, err error) error {
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("%s is a symlink; llem-exec does not write through symlinks in a study directory (remove it)", path)
	}
	return err
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

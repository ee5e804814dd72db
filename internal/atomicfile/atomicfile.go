// Package atomicfile writes a final file whole or not at all: the content
// goes to a temporary file in the same directory, which is flushed to disk
// (fsync), closed and renamed over the final name, and the directory is
// synced so that the rename survives a crash. A reader of the final name
// sees either the previous file or the whole new one, never part of one;
// after a failure at any step the error is returned and the temporary file
// is removed.
//
// Every llem tool that writes a file a person or a later tool reads (run.json,
// baseline records, requests_energy.ndjson, Parquet tables, llem-report -o)
// writes it through this package.
package atomicfile

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

// Perm is the mode of every file written: readable by all, as os.Create
// would make it under the usual umask.
const Perm = 0o644

// Write calls fill with a buffered writer into a temporary file beside path,
// then puts the file in place as path. fill's error, or any error writing,
// syncing or renaming, is returned (naming path) and path is left as it was.
func Write(path string, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(faulty(f), 64<<10)
	if err := fill(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(Perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// WriteBytes writes data as path.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteJSON writes v as indented JSON and a newline.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return WriteBytes(path, append(b, '\n'))
}

// syncDir makes a rename in dir durable. Some file systems cannot sync a
// directory (EINVAL); the rename is then as durable as they make it.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// failAfter, when ≥ 0, is how many more bytes writes to temporary files
// accept before failing (FailAfter).
var failAfter atomic.Int64

func init() { failAfter.Store(-1) }

// ErrInjected is the error of a write failed by FailAfter.
var ErrInjected = errors.New("injected write failure")

// FailAfter makes writes to the temporary files of this process fail with
// ErrInjected once n more bytes have been written, as a full disk would, until
// the returned function is called. It is for tests of the writers that use
// this package (which must then not run in parallel with other writers).
func FailAfter(n int64) (restore func()) {
	failAfter.Store(n)
	return func() { failAfter.Store(-1) }
}

type faultWriter struct{ w io.Writer }

func faulty(w io.Writer) io.Writer { return faultWriter{w} }

func (f faultWriter) Write(p []byte) (int, error) {
	left := failAfter.Load()
	if left < 0 {
		return f.w.Write(p)
	}
	if int64(len(p)) <= left {
		failAfter.Add(-int64(len(p)))
		return f.w.Write(p)
	}
	failAfter.Store(0)
	n, _ := f.w.Write(p[:left])
	return n, ErrInjected
}

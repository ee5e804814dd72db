package record

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ResolveRunDir finds a run directory that may have moved (llem-aggregate
// and llem-report --root): as recorded when it exists or no root is
// given; else under root, trying the recorded path's trailing components from
// the longest to the shortest (so root may name the results folder or the
// study folder).
func ResolveRunDir(dir, root string) string {
	if root == "" || dir == "" {
		return dir
	}
	if !filepath.IsAbs(dir) {
		if _, err := os.Stat(filepath.Join(root, dir)); err == nil {
			return filepath.Join(root, dir)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	parts := strings.Split(filepath.ToSlash(filepath.Clean(dir)), "/")
	for i := range parts {
		cand := filepath.Join(append([]string{root}, parts[i:]...)...)
		if _, err := os.Stat(cand); err == nil {
			return cand
		}
	}
	return dir
}

// ScanEvents reads a worker's events file (NDJSON, one record.Event a line)
// and calls fn with each non-blank line, numbered from 1 in the file. fn
// decodes what it needs with Line.DecodeLax, whose errors name
// file:line:col; its error stops the scan and is returned. A line over
// MaxLineBytes is an error naming its position. llem-aggregate and
// llem-report both read events files through it.
func ScanEvents(path string, fn func(l Line) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	no := 0
	for sc.Scan() {
		no++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		if err := fn(Line{File: path, No: no, Raw: raw}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", MaxLineBytes)
		}
		return &PosError{File: path, Line: no + 1, Err: err}
	}
	return nil
}

package record

import (
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

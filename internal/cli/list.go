package cli

import "strings"

// SplitList reads a comma-separated list flag (--gpus 0,1 --by model,batch):
// items trimmed of spaces, empty items dropped, nil for an empty flag.
// Every tool parses its list flags with it, so they all read alike.
func SplitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

package report

import (
	"testing"

	"github.com/llem/llem/internal/aggregate"
)

// Every flag llem-aggregate raises has a description in the report's flags
// table, so a reader never sees a bare code.
func TestEveryAggregateFlagDescribed(t *testing.T) {
	for _, c := range aggregate.FlagCodes() {
		if flagDescriptions[c] == "" {
			t.Errorf("flag %q has no description in flagDescriptions", c)
		}
	}
}

package carbon

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	r, err := Lookup("de")
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != "DE" || r.GPerKWh != 380 || r.Year != 2023 || !strings.Contains(r.Source, "Ember") {
		t.Errorf("DE = %+v", r)
	}
	if _, err := Lookup("XX"); err == nil || !strings.Contains(err.Error(), "DE") {
		t.Errorf("unknown region: %v", err)
	}
}

// Every row has a source and a plausible year and figure: the table is data
// that people edit, and a typo there must fail a test, not a report.
func TestTableComplete(t *testing.T) {
	rs, err := Regions()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) < 10 {
		t.Fatalf("%d regions", len(rs))
	}
	for _, r := range rs {
		if r.Source == "" || r.Name == "" || r.Year < 2015 || r.Year > 2100 || r.GPerKWh <= 0 || r.GPerKWh > 1500 {
			t.Errorf("implausible row %+v", r)
		}
	}
}

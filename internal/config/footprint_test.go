package config

import (
	"strings"
	"testing"
)

// The footprint assumptions are optional: a config without them keeps its
// canonical form and id; one with them carries them (and gets another id).
func TestFootprintAssumptions(t *testing.T) {
	plain := mustParse(t, "model: llem-tiny\n")
	pb, err := plain.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(pb), "pue") || strings.Contains(string(pb), "carbon") {
		t.Errorf("unset assumptions in the canonical form: %s", pb)
	}
	c := mustParse(t, "model: llem-tiny\nenergy: {carbon_intensity_g_per_kwh: 380, pue: 1.2, price_per_kwh: 0.3, currency: EUR}\n")
	cb, err := c.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cb), `"energy":{"backend":"auto","carbon_intensity_g_per_kwh":380,"currency":"EUR","price_per_kwh":0.3,"pue":1.2}`) {
		t.Errorf("canonical form: %s", cb)
	}
	back, err := Decode(cb)
	if err != nil {
		t.Fatal(err)
	}
	if *back.Energy.PUE != 1.2 || *back.Energy.Currency != "EUR" {
		t.Errorf("round trip: %+v", back.Energy)
	}
	var enc Encoder
	eb, err := enc.Append(nil, c)
	if err != nil || string(eb) != string(cb) {
		t.Errorf("encoder %s (%v)\nwant    %s", eb, err, cb)
	}
	for _, tc := range []struct{ src, path, msg string }{
		{"model: x\nenergy: {pue: 0.9}\n", "energy.pue", "≥ 1"},
		{"model: x\nenergy: {carbon_intensity_g_per_kwh: -5}\n", "energy.carbon_intensity_g_per_kwh", "≥ 0"},
		{"model: x\nenergy: {price_per_kwh: 0.3}\n", "energy.currency", "go together"},
		{"model: x\nenergy: {price_per_kwh: 0.3, currency: euro}\n", "energy.currency", "ISO 4217"},
	} {
		found := false
		for _, e := range parseErr(t, tc.src) {
			if e.Path == tc.path && strings.Contains(e.Error(), tc.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: want %s: %q, got %v", tc.src, tc.path, tc.msg, parseErr(t, tc.src))
		}
	}
}

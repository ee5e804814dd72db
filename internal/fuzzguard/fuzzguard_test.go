package fuzzguard

import (
	"flag"
	"testing"
)

// Under a plain go test the guard is off, so a slow input cannot fail it;
// with -test.fuzz set it is armed (and disarmed by stop).
func TestStart(t *testing.T) {
	if Fuzzing() {
		t.Skip("run under -fuzz")
	}
	Start("plain")()
	f := flag.Lookup("test.fuzz")
	if f == nil {
		t.Fatal("no test.fuzz flag in a test binary")
	}
	if err := f.Value.Set("FuzzX"); err != nil {
		t.Fatal(err)
	}
	defer f.Value.Set("")
	if !Fuzzing() {
		t.Fatal("Fuzzing() false with -test.fuzz set")
	}
	Start("armed")()
}

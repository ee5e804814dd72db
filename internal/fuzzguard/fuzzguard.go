// Package fuzzguard arms the per-input watchdog of llem's fuzz targets.
//
// A fuzz input that makes a parser hang is a finding, and the fuzzer keeps an
// input only when the process crashes on it, so each target panics when one
// input runs too long. That limit is only meaningful while the fuzzing engine
// runs (go test -fuzz): under a plain go test, which replays the seed corpus,
// a loaded machine or the race detector can stretch any input past it, and a
// test must not fail because the machine is busy. There the guard does
// nothing.
package fuzzguard

import (
	"flag"
	"fmt"
	"time"
)

// Limit is how long one input may take while fuzzing.
const Limit = 5 * time.Second

// Start arms the watchdog for one input of the named target and returns the
// function that disarms it.
func Start(target string) (stop func()) {
	if !Fuzzing() {
		return func() {}
	}
	t := time.AfterFunc(Limit, func() { panic(fmt.Sprintf("%s: input took more than %s", target, Limit)) })
	return func() { t.Stop() }
}

// Fuzzing reports whether the test binary runs the fuzzing engine (the
// -test.fuzz flag is set), rather than the seed corpus as a plain test.
func Fuzzing() bool {
	f := flag.Lookup("test.fuzz")
	return f != nil && f.Value.String() != ""
}

// Package reliability holds llem's fault-injection and hostile-input suite
// (its tests only): real llem binaries, built by TestMain, driven through
// worker crashes and hangs, a dying sampler, a full or read-only disk, cut
// files, clock steps, concurrent writers, SIGKILL at random moments, hostile
// records and run directories, and secrets in the environment. Every test
// asserts the same promises: no finished result lost or duplicated, no
// damaged file left unreported, a clear one-line message.
//
// `go test ./internal/reliability` is the short form (in CI). With
// LLEM_RELIABILITY=long it runs the long form (200+ kill trials); with
// LLEM_RELIABILITY_OUT=DIR each test appends its figures to DIR/suite.ndjson,
// from which scripts/reliability/run.sh writes RELIABILITY.md's figures.
package reliability

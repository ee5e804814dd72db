// Package record defines every record kind that flows between the llem tools
// (experiment, skipped, baseline, run, energy, summary), the worker protocol's
// events, and an NDJSON reader and writer whose errors name file:line:col.
//
// Records are the contract of the pipeline: each type here has a JSON Schema in
// schemas/ and tests validate what the tools emit against it. Units are part of
// the field names (energy_j, power_w, duration_s, *_ns for Unix nanoseconds).
// A value that is unknown is a nil pointer and marshals as null, never as 0.
package record

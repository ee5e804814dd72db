// Package config is llem's experiment schema: LLenergyMeasure v0.8's config
// (top level, decoder with presets, warmup, baseline, energy, pytorch, vllm
// with engine/attention/sampling/beam_search, tensorrt, lora,
// passthrough_kwargs, output_dir) plus the `native` section of the built-in
// CPU backend, the `sglang` section of the server-only SGLang backend, and the
// `serving` section that makes an experiment a serving run (serving.go).
//
// Configs are decoded from yaml.v3 nodes, so every error names file:line:col
// and the field path, says what was expected and, for a misspelt key or enum
// value, the closest valid one. Decoding is an overlay: a mapping sets the
// keys it has over what the config holds (sections merge, scalars replace),
// which is how a study's base file, shared fields, sweep values and explicit
// experiments compose. Sections and maps are copied on write, so configs made
// from one base by plain struct copies never share mutable state.
//
// The effective config (after Finalize) has every default filled in and
// encodes to RFC 8785 canonical JSON; its id is the first 16 hex digits of the
// SHA-256 of that JSON. Consumers of experiment records call Decode on the
// record's config.
package config

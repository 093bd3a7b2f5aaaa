// Package config loads the gateway's YAML file (`spillway serve -c FILE`)
// into the resolved types of types.go.
//
// Loading is strict and explains itself: an unknown key, a value of the
// wrong kind and every cross-field problem is an [*Error] at the
// FILE:LINE:COL where it was written, all of them reported at once as
// [Errors]; settings that load but cannot work as intended (an attempt
// timeout as long as the total, a budget that allows no retry, ...) are
// returned as [Warning]s. The policies' own warnings (a breaker that can
// never open, ...) and the values a policy refuses when it is built come
// from gateway.Check, which builds what serve would run and places them
// with [Config.WarningAt]. ${VAR} and ${VAR:-default} expand from the environment in
// scalar values; durations are Go durations (250ms, 2s, 5m), percentages
// are 50% or 0.5, sizes are 1MiB, 512KiB, 10MB or plain bytes.
//
// Each key is spelled once, in a yaml tag of the schema (schema.go): one
// struct per mapping of the file. Decoding shapes the YAML tree to the
// schema (every unknown key, with "did you mean", and every value of the
// wrong shape reported at once), decodes it with goccy/go-yaml's strict
// struct decoding, and parses each value into the field of the same name
// of the resolved types, by the field's type and the tag's options
// (durations, sizes, percentages, enums). [Keys] lists the tags' paths,
// which tests hold the JSON Schema (docs/spillway.schema.json) and
// docs/configuration.md to.
//
// The defaults: mapping is merged key by key into every upstream (all keys
// but instances); then every key still unset takes the built-in default
// written in its field's comment and in docs/configuration.md.
package config

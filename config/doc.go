// Package config is manifold's configuration file: one YAML document,
// overridden by MANIFOLD_* environment variables, overridden by flags (the
// command applies those). Every field documents its default; a field left
// out, or set to its zero value, takes it. Defaults that a library applies
// are that library's named constants (resolve.DefaultTTL, ...).
//
// Values are parsed once, into typed fields (Duration, Platform,
// BareTagPolicy, ...), whose errors name the field; Validate checks what
// involves several fields. One table, Fields, drives the environment
// overrides, serve's flags, the defaults and the generated reference
// (docs/configuration.md). Libraries do not import this package; cmd/proxy
// turns a Config into their options.
package config

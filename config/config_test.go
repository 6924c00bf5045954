package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/config"
	"github.com/manifold-proxy/manifold/index"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Listen != ":5000" || c.DataDir != "./manifold-data" || c.DefaultPlatform != "linux/amd64" ||
		time.Duration(c.Cache.TTL) != 30*time.Second || time.Duration(*c.Cache.StaleIfError) != 5*time.Minute ||
		c.Limits.MaxManifestBytes != 4<<20 || c.Limits.Concurrency != 8 || c.Store.MemoryBytes != 64<<20 ||
		!*c.FollowRedirects || c.Log.Level != "info" || len(c.Upstreams) != 0 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	c, err := config.Parse(strings.NewReader(`
listen: 127.0.0.1:6000
readOnly: true
upstreams:
  - url: https://registry-1.docker.io
    prefix: hub
  - url: http://127.0.0.1:5001
    username: ci
    password: secret
policies:
  - repositories: "legacy/*"
    bareTag: override
grammar: {aliases: true}
cache: {ttl: 1m, staleWhileRevalidate: 10s}
store: {driver: filesystem, parameters: {rootdirectory: /tmp/x}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:6000" || !c.ReadOnly || len(c.Upstreams) != 2 || c.Upstreams[0].Prefix != "hub" ||
		time.Duration(c.Cache.TTL) != time.Minute || time.Duration(c.Cache.StaleWhileRevalidate) != 10*time.Second ||
		!c.Grammar.Aliases || c.Store.Driver != "filesystem" {
		t.Errorf("parsed: %+v", c)
	}
	if r := c.Rules(); r.For("legacy/app") != index.Override || r.For("new/app") != index.Merge {
		t.Errorf("rules %+v", r)
	}
}

func TestZeroStaleIfError(t *testing.T) {
	t.Parallel()
	c, err := config.Parse(strings.NewReader("cache: {staleIfError: 0s}"))
	if err != nil {
		t.Fatal(err)
	}
	if *c.Cache.StaleIfError != 0 {
		t.Errorf("staleIfError: 0s must turn it off, got %s", time.Duration(*c.Cache.StaleIfError))
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"listn: x", "cache: {ttl: soon}", "upstreams: nope", "readOnly: maybe"} {
		if _, err := config.Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// TestValidateNamesFields: every error says which field is wrong.
func TestValidateNamesFields(t *testing.T) {
	t.Parallel()
	tests := []struct{ yaml, field string }{
		{"listen: nowhere", "listen:"},
		{"upstreams: [{url: https://a.example}, {url: ftp://b}]", "upstreams[1].url:"},
		{"upstreams: [{url: 'https://a.example/v2/'}]", "upstreams[0].url:"},
		{"upstreams: [{}]", "upstreams[0].url: required"},
		{"upstreams: [{url: 'https://a'}, {url: 'https://b'}]", "upstreams[1].prefix:"},
		{"upstreams: [{url: 'https://a', password: x}]", "upstreams[0].username:"},
		{"upstreams: [{url: 'https://a', keychain: true, username: u}]", "upstreams[0].keychain:"},
		{"policies: [{repositories: 'a/*', bareTag: sometimes}]", "policies[0].bareTag:"},
		{"policies: [{bareTag: merge}]", "policies[0].repositories: required"},
		{"policies: [{repositories: '[', bareTag: merge}]", "policies[0].repositories:"},
		{"defaultPlatform: linux/arm/v9", "defaultPlatform:"},
		{"log: {level: loud}", "log.level:"},
		{"log: {format: xml}", "log.format:"},
		{"limits: {concurrency: -1}", "limits.concurrency:"},
		{"store: {parameters: {a: b}}", "store.driver:"},
		{"auth: {anonymousRead: true}", "auth.htpasswd: auth.htpasswd or auth.token required"},
		{"auth: {token: {service: s, issuer: i, jwks: /k}}", "auth.token.realm:"},
		{"auth: {token: {realm: 'https://a/token', issuer: i, jwks: /k}}", "auth.token.service: required"},
		{"auth: {token: {realm: 'https://a/token', service: s, issuer: i}}", "auth.token.rootCertBundle:"},
		{"auth: {htpasswd: /h, token: {realm: 'https://a/token', service: s, issuer: i, jwks: /k}}", "auth.token: set either"},
		{"policies: [{repositories: x, require: [linux/amd64, linux/arm/v9]}]", "policies[0].require[1]:"},
		{"auth: {htpasswd: /x, rules: [{read: [a]}]}", "auth.rules[0].repositories: required"},
	}
	for _, tt := range tests {
		c, err := config.Parse(strings.NewReader(tt.yaml))
		if err != nil {
			t.Fatalf("%q: %v", tt.yaml, err)
		}
		err = c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%q: error %v, want one naming %q", tt.yaml, err, tt.field)
		}
	}
}

func TestApplyEnv(t *testing.T) {
	t.Parallel()
	c, _ := config.Parse(strings.NewReader("upstreams: [{url: 'https://old.example', username: a, password: b}]"))
	env := map[string]string{
		"MANIFOLD_LISTEN":            "127.0.0.1:7000",
		"MANIFOLD_UPSTREAM":          "http://127.0.0.1:5001",
		"MANIFOLD_UPSTREAM_PASSWORD": "new",
		"MANIFOLD_READ_ONLY":         "true",
		"MANIFOLD_CACHE_TTL":         "2m",
		"MANIFOLD_DEFAULT_PLATFORM":  "linux/arm64",
	}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7000" || len(c.Upstreams) != 1 || c.Upstreams[0].URL != "http://127.0.0.1:5001" ||
		c.Upstreams[0].Password != "new" || c.Upstreams[0].Username != "a" || !c.ReadOnly ||
		time.Duration(c.Cache.TTL) != 2*time.Minute || c.DefaultPlatform != "linux/arm64" {
		t.Errorf("after env: %+v", c)
	}
	if err := c.ApplyEnv(func(k string) string { return map[string]string{"MANIFOLD_READ_ONLY": "perhaps"}[k] }); err == nil || !strings.Contains(err.Error(), "MANIFOLD_READ_ONLY") {
		t.Errorf("bad env: %v", err)
	}
}

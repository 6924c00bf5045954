package config_test

import (
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/config"
	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.Listen != ":5000" || c.DataDir != "./manifold-data" || platform.String(v1.Platform(c.DefaultPlatform)) != "linux/amd64" ||
		time.Duration(c.Cache.TTL) != 30*time.Second || time.Duration(*c.Cache.StaleIfError) != 5*time.Minute ||
		c.Limits.MaxManifestBytes != 4<<20 || c.Limits.Concurrency != 32 || c.Store.MemoryBytes != 64<<20 ||
		!*c.FollowRedirects || c.Log.Level != slog.LevelInfo || c.Log.Format != config.LogText || len(c.Upstreams) != 0 {
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
	if c.Policies[0].Repositories != "legacy/*" || index.Policy(c.Policies[0].BareTag) != index.Override {
		t.Errorf("policies %+v", c.Policies)
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
	for _, tt := range []struct{ yaml, err string }{
		{"listn: x", "listn: unknown field"},
		{"cache: {ttl: soon, tll: 1s}", `cache.ttl: want a duration such as "30s"`},
		{"cache: {ttl: soon, tll: 1s}", "cache.tll: unknown field"},
		{"upstreams: nope", "upstreams: want a list"},
		{"readOnly: maybe", `readOnly: "maybe": want true or false`},
		{"cache: [1]", "cache: want a mapping of fields"},
		{"listen: [a]", "listen: want a single value"},
		{"listen: a\nlisten: b", "listen: set twice"},
		{"limits: {concurrency: x}", `limits.concurrency: "x": want a whole number`},
		{"cache: {ttl: -1s}", `cache.ttl: "-1s": must not be negative`},
		{": [", "yaml:"},
	} {
		_, err := config.Parse(strings.NewReader(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: error %v, want one containing %q", tt.yaml, err, tt.err)
		}
	}
}

// TestErrorsNameFields: every error says which field is wrong, whether
// the value itself is bad (Parse) or its combination with others
// (Validate).
func TestErrorsNameFields(t *testing.T) {
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
		{"cache: {entries: -1}", "cache.entries:"},
		{"store: {memoryBytes: -1}", "store.memoryBytes:"},
		{"limits: {maxManifestBytes: -1}", "limits.maxManifestBytes:"},
		{"auth: {token: {realm: nowhere, service: s, issuer: i, jwks: /k}}", "auth.token.realm:"},
		{"auth: {htpasswd: /x, rules: [{repositories: '['}]}", "auth.rules[0].repositories:"},
		{"policies: [{repositories: x, require: ['']}]", "policies[0].require[0]: empty platform"},
		{"store: {parameters: {a: b}}", "store.driver:"},
		{"auth: {anonymousRead: true}", "auth.htpasswd: auth.htpasswd or auth.token required"},
		{"auth: {token: {service: s, issuer: i, jwks: /k}}", "auth.token.realm:"},
		{"auth: {token: {realm: 'https://a/token', issuer: i, jwks: /k}}", "auth.token.service: required"},
		{"auth: {token: {realm: 'https://a/token', service: s, issuer: i}}", "auth.token.rootCertBundle:"},
		{"auth: {htpasswd: /h, token: {realm: 'https://a/token', service: s, issuer: i, jwks: /k}}", "auth.token: set either"},
		{"policies: [{repositories: x, require: [linux/amd64, linux/arm/v9]}]", "policies[0].require[1]:"},
		{"auth: {htpasswd: /x, rules: [{read: [a]}]}", "auth.rules[0].repositories: required"},
		{"tls: {certificate: /c}", "tls.key: required with tls.certificate"},
		{"tls: {key: /k}", "tls.certificate: required with tls.key"},
		{"tls: {clientCAs: /ca}", "tls.clientCAs: needs tls.certificate"},
		{"tls: {certificate: /c, key: /k, minVersion: '1.1'}", `tls.minVersion: "1.1": want 1.2 or 1.3`},
		{"tls: {certificate: /c, key: /k, minVersion: 1.3, extra: x}", "tls.extra: unknown field"},
		{"upstreams: [{url: 'https://a', mirrorOf: ['https://docker.io']}]", "upstreams[0].mirrorOf[0]: \"https://docker.io\": want a registry name"},
		{"upstreams: [{url: 'https://a', mirrorOf: [docker.io/library]}]", "upstreams[0].mirrorOf[0]:"},
		{"upstreams: [{url: 'https://a', mirrorOf: docker.io}]", "upstreams[0].mirrorOf: want a list"},
		{"upstreams: [{url: 'https://a', mirrorOf: [docker.io]}, {prefix: b, url: 'https://b', mirrorOf: [ghcr.io, index.docker.io]}]",
			"upstreams[1].mirrorOf[1]: docker.io is also mirrored by upstreams[0]"},
		{"upstreams: [{url: 'https://a', mirrorOf: ['*']}, {prefix: b, url: 'https://b', mirrorOf: ['*']}]",
			"upstreams[1].mirrorOf[0]: * is also mirrored by upstreams[0]"},
	}
	for _, tt := range tests {
		c, err := config.Parse(strings.NewReader(tt.yaml))
		if err == nil {
			err = c.Validate()
		}
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
		time.Duration(c.Cache.TTL) != 2*time.Minute || platform.String(v1.Platform(c.DefaultPlatform)) != "linux/arm64/v8" {
		t.Errorf("after env: %+v", c)
	}
	if err := c.ApplyEnv(func(k string) string { return map[string]string{"MANIFOLD_READ_ONLY": "perhaps"}[k] }); err == nil || !strings.Contains(err.Error(), "MANIFOLD_READ_ONLY") {
		t.Errorf("bad env: %v", err)
	}
}

// TestScalarsAsWritten: a scalar reaches its field as written, so YAML
// 1.1's booleans and numbers do not change what a string means:
// `bareTag: off` is the policy, a password "yes" stays "yes".
func TestScalarsAsWritten(t *testing.T) {
	t.Parallel()
	c, err := config.Parse(strings.NewReader(`
upstreams: [{url: 'https://a.example', prefix: 010, username: yes, password: 1.10}]
policies: [{repositories: a, bareTag: off}, {repositories: b, bareTag: on}]
readOnly: yes
`))
	if err == nil {
		t.Fatal("bareTag: on accepted")
	}
	if !strings.Contains(err.Error(), `policies[1].bareTag: unknown bare-tag policy "on"`) || strings.Contains(err.Error(), "policies[0]") {
		t.Errorf("error %v, want policies[1].bareTag only", err)
	}
	c, err = config.Parse(strings.NewReader(`
upstreams: [{url: 'https://a.example', prefix: 010, username: yes, password: 1.10}]
policies: [{repositories: a, bareTag: off}]
readOnly: yes
`))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstreams[0]
	if u.Prefix != "010" || u.Username != "yes" || u.Password != "1.10" || index.Policy(c.Policies[0].BareTag) != index.Off || !c.ReadOnly {
		t.Errorf("parsed %+v %+v readOnly %v", u, c.Policies, c.ReadOnly)
	}
}

// TestEveryErrorReported: one run names every bad field, joined.
func TestEveryErrorReported(t *testing.T) {
	t.Parallel()
	_, err := config.Parse(strings.NewReader("listen: nowhere\ncache: {ttl: soon}\nlog: {level: loud}\n"))
	for _, want := range []string{"listen:", "cache.ttl:", "log.level:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	c, _ := config.Parse(strings.NewReader("upstreams: [{}, {prefix: x, password: p}]"))
	err = c.Validate()
	for _, want := range []string{"upstreams[0].url: required", "upstreams[1].url: required", "upstreams[1].username:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestSet(t *testing.T) {
	t.Parallel()
	c, _ := config.Parse(strings.NewReader("upstreams: [{url: 'https://hub.example', prefix: hub}]\nlisten: ':6000'"))
	if err := c.Set("upstreams[].url", "http://127.0.0.1:5001"); err != nil {
		t.Fatal(err)
	}
	if len(c.Upstreams) != 2 || c.Upstreams[1].URL != "http://127.0.0.1:5001" || c.Upstreams[0].URL != "https://hub.example" {
		t.Errorf("default upstream: %+v", c.Upstreams)
	}
	if err := c.Set("listen", ""); err != nil || c.Listen != config.DefaultListen {
		t.Errorf("empty listen: %q %v, want the default", c.Listen, err)
	}
	if err := c.Set("cache.staleIfError", "0s"); err != nil || *c.Cache.StaleIfError != 0 {
		t.Errorf("staleIfError 0s: %v", err)
	}
	for _, tt := range []struct{ path, value, err string }{
		{"listen", "nowhere", "listen: "},
		{"nope", "x", "nope: no such field"},
		{"policies[].bareTag", "off", "only the default upstream"},
		{"cache", "x", "cache: not a single value"},
		{"policies", "x", "policies: not a single value"},
	} {
		if err := c.Set(tt.path, tt.value); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("Set(%q, %q): %v, want %q", tt.path, tt.value, err, tt.err)
		}
	}
}

// TestL4_NoCredentialsInErrors: a configuration error printed the
// user:password of an upstream URL. Credentials in a URL are refused, and
// no message echoes them.
func TestL4_NoCredentialsInErrors(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		"upstreams:\n  - url: https://alice:s3cr3t@registry.example.com\n",
		"upstreams:\n  - url: https://alice:s3cr3t@registry.example.com/path\n",
		"upstreams:\n  - url: ftp://alice:s3cr3t@registry.example.com\n",
		"auth:\n  token:\n    realm: //alice:s3cr3t@\n",
	} {
		_, err := config.Parse(strings.NewReader(doc))
		if err == nil || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "alice") {
			t.Errorf("%q: %v", doc, err)
		}
	}
}

// TestTLSAndMirrors: the TLS section and mirrorOf as a file writes them;
// Docker Hub's hosts are read as docker.io, and minVersion defaults to 1.2.
func TestTLSAndMirrors(t *testing.T) {
	t.Parallel()
	c, err := config.Parse(strings.NewReader(`
tls: {certificate: /etc/manifold/tls.crt, key: /etc/manifold/tls.key}
upstreams:
  - url: https://registry-1.docker.io
    mirrorOf: [index.docker.io, Registry.Example.Test:5000]
  - {prefix: any, url: 'https://mirror.example', mirrorOf: ['*']}
`))
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.Certificate != "/etc/manifold/tls.crt" || c.TLS.MinVersion != "1.2" || c.TLS.MinVersion.Uint16() != tls.VersionTLS12 {
		t.Errorf("tls: %+v", c.TLS)
	}
	if got := c.Upstreams[0].MirrorOf; len(got) != 2 || got[0] != "docker.io" || got[1] != "registry.example.test:5000" {
		t.Errorf("mirrorOf: %q", got)
	}
	if got := c.Upstreams[1].MirrorOf; len(got) != 1 || got[0] != config.AnyRegistry {
		t.Errorf("mirrorOf: %q", got)
	}
}

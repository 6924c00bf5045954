// Package config is manifold's configuration file: one YAML document,
// overridden by MANIFOLD_* environment variables, overridden by flags (the
// command applies those). Every field documents its default. Libraries do
// not import this package; cmd/proxy turns a Config into their options.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

// Config is the whole configuration.
type Config struct {
	// Listen is the proxy's address. Default ":5000".
	Listen string `json:"listen"`
	// DataDir holds the embedded registry's storage (when no upstream is
	// configured). Default "./manifold-data".
	DataDir string `json:"dataDir"`
	// ReadOnly refuses pushes and deletes. Default false.
	ReadOnly bool `json:"readOnly"`
	// Upstreams are the registries behind the proxy. Default: none, which
	// starts the embedded registry (distribution v3) on DataDir.
	Upstreams []Upstream `json:"upstreams"`
	// Policies choose what happens to a bare tag that has suffixed members,
	// per repository pattern; first match wins. Default: merge everywhere.
	Policies []Policy `json:"policies"`
	// Grammar turns on extra member tag layouts. Default: both off.
	Grammar Grammar `json:"grammar"`
	// DefaultPlatform is what a client that cannot read manifest lists gets.
	// Default "linux/amd64".
	DefaultPlatform string `json:"defaultPlatform"`
	// Cache tunes tag-list and descriptor caching.
	Cache Cache `json:"cache"`
	// Limits bound resource use.
	Limits Limits `json:"limits"`
	// Store keeps synthesized indexes by digest.
	Store Store `json:"store"`
	// FollowRedirects makes the proxy follow upstream redirects (blob
	// storage, CDNs) and stream the content itself; false passes them to
	// the client. Default true.
	FollowRedirects *bool `json:"followRedirects"`
	// Auth controls who may use the proxy. Default: anyone (no login).
	Auth Auth `json:"auth"`
	// Log configures structured logs on stderr.
	Log Log `json:"log"`
	// ShutdownTimeout bounds graceful shutdown. Default "30s".
	ShutdownTimeout Duration `json:"shutdownTimeout"`
}

// Upstream is one registry behind the proxy.
type Upstream struct {
	// Prefix selects the upstream: proxy repository "<prefix>/<repo>" is
	// "<repo>" there. Default "" (the default upstream; at most one).
	Prefix string `json:"prefix"`
	// URL is http://host[:port] (plain HTTP) or https://host[:port].
	// Required.
	URL string `json:"url"`
	// InsecureSkipVerify skips TLS certificate checks. Default false.
	InsecureSkipVerify bool `json:"insecureSkipVerify"`
	// Username and Password are static credentials. Default: none.
	Username string `json:"username"`
	Password string `json:"password"`
	// PasswordFile is read for the password (Kubernetes secrets). Default "".
	PasswordFile string `json:"passwordFile"`
	// Keychain uses docker's config.json and credential helpers for this
	// upstream. Default false. Exclusive with Username.
	Keychain bool `json:"keychain"`
}

// Policy applies a bare-tag policy to repositories matching a pattern.
type Policy struct {
	// Repositories is a path.Match pattern on the proxy repository name,
	// e.g. "legacy/*". Required.
	Repositories string `json:"repositories"`
	// BareTag is merge (default), override, fallback or off.
	BareTag string `json:"bareTag"`
	// Require lists platforms ("linux/amd64", "linux/arm/v7") that must all
	// be present before the index is served; until then the bare tag is
	// upstream's (or 404). Default: none.
	Require []string `json:"require"`
}

// Grammar toggles extra member tag layouts.
type Grammar struct {
	// Aliases accepts legacy arch words (aarch64, arm64v8, arm32v7, armhf,
	// x86_64, i386...) in suffixes. Default false.
	Aliases bool `json:"aliases"`
	// Prefix accepts "<arch>-<base>" tags such as amd64-1.0 (linux
	// implied). Default false.
	Prefix bool `json:"prefix"`
}

// Cache tunes caching of mutable upstream answers.
type Cache struct {
	// TTL of tag lists and tag → digest answers. Default "30s".
	TTL Duration `json:"ttl"`
	// StaleWhileRevalidate serves an expired answer this long while
	// refreshing it in the background. Default "0s".
	StaleWhileRevalidate Duration `json:"staleWhileRevalidate"`
	// StaleIfError serves the last good answer this long past its TTL when
	// upstream fails (5xx, 429, timeouts); "0s" turns it off. Default "5m".
	StaleIfError *Duration `json:"staleIfError"`
	// Entries bounds each cache. Default 10000.
	Entries int `json:"entries"`
}

// Limits bound work per request.
type Limits struct {
	// MaxManifestBytes refuses larger member manifests and configs.
	// Default 4194304 (4 MiB).
	MaxManifestBytes int64 `json:"maxManifestBytes"`
	// Concurrency is how many members of a group are resolved at once.
	// Default 8.
	Concurrency int `json:"concurrency"`
}

// Store configures where synthesized indexes are kept by digest.
type Store struct {
	// MemoryBytes bounds the in-memory LRU. Default 67108864 (64 MiB).
	MemoryBytes int64 `json:"memoryBytes"`
	// Driver is an optional shared backend: a distribution storage driver
	// name (filesystem, s3, gcs, azure, inmemory) and its parameters, as in
	// distribution's own configuration. Default: none (memory only).
	Driver string `json:"driver"`
	// Parameters of the driver, e.g. {rootdirectory: /var/lib/manifold}.
	Parameters map[string]any `json:"parameters"`
}

// Auth configures client authentication to the proxy.
type Auth struct {
	// Htpasswd is a file of users with bcrypt passwords (htpasswd -B).
	// Default "": no login required.
	Htpasswd string `json:"htpasswd"`
	// Realm of the Basic challenge. Default "manifold".
	Realm string `json:"realm"`
	// Token accepts bearer tokens of a Docker token service (the scheme
	// Docker Hub uses) instead of htpasswd. Default: off.
	Token *TokenAuth `json:"token"`
	// AnonymousRead lets requests without credentials pull. Default false.
	AnonymousRead bool `json:"anonymousRead"`
	// Rules restrict users per repository pattern; first match wins; no
	// match: every user may read and write. Default: none.
	Rules []AccessRule `json:"rules"`
}

// TokenAuth configures bearer-token authentication (distribution's token
// access controller): clients get a token from Realm and present it.
type TokenAuth struct {
	// Realm is the token service URL clients are sent to. Required.
	Realm string `json:"realm"`
	// Service is this proxy's name in tokens (their audience). Required.
	Service string `json:"service"`
	// Issuer must match the tokens' iss claim. Required.
	Issuer string `json:"issuer"`
	// RootCertBundle is a PEM file of the certificates tokens chain to.
	// One of RootCertBundle and JWKS is required.
	RootCertBundle string `json:"rootCertBundle"`
	// JWKS is a JSON Web Key Set file of trusted signing keys.
	JWKS string `json:"jwks"`
}

// AccessRule says who may read and write matching repositories.
type AccessRule struct {
	// Repositories is a path.Match pattern. Required.
	Repositories string `json:"repositories"`
	// Read and Write list user names; "*" is any authenticated user.
	Read  []string `json:"read"`
	Write []string `json:"write"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default "info".
	Level string `json:"level"`
	// Format is text or json. Default "text".
	Format string `json:"format"`
}

// Duration is a time.Duration written as "30s", "5m".
type Duration time.Duration

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Default returns a Config with every default filled in.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

// Parse reads a YAML configuration; unknown fields are errors. Defaults
// are filled in; call Validate after applying overrides.
func Parse(r io.Reader) (*Config, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := yaml.UnmarshalStrict(b, c); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	c.applyDefaults()
	return c, nil
}

// Load reads the file at path (or only defaults when path is "").
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = ":5000"
	}
	if c.DataDir == "" {
		c.DataDir = "./manifold-data"
	}
	if c.DefaultPlatform == "" {
		c.DefaultPlatform = "linux/amd64"
	}
	if c.Cache.TTL == 0 {
		c.Cache.TTL = Duration(30 * time.Second)
	}
	if c.Cache.StaleIfError == nil {
		d := Duration(5 * time.Minute)
		c.Cache.StaleIfError = &d
	}
	if c.Cache.Entries == 0 {
		c.Cache.Entries = 10000
	}
	if c.Limits.MaxManifestBytes == 0 {
		c.Limits.MaxManifestBytes = 4 << 20
	}
	if c.Limits.Concurrency == 0 {
		c.Limits.Concurrency = 8
	}
	if c.Store.MemoryBytes == 0 {
		c.Store.MemoryBytes = 64 << 20
	}
	if c.FollowRedirects == nil {
		t := true
		c.FollowRedirects = &t
	}
	if c.Auth.Realm == "" {
		c.Auth.Realm = "manifold"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(30 * time.Second)
	}
}

// Env is the environment variables read by ApplyEnv, with what they set.
var Env = []struct{ Name, Field string }{
	{"MANIFOLD_LISTEN", "listen"},
	{"MANIFOLD_DATA_DIR", "dataDir"},
	{"MANIFOLD_READ_ONLY", "readOnly"},
	{"MANIFOLD_UPSTREAM", "upstreams: one default upstream with this url"},
	{"MANIFOLD_UPSTREAM_USERNAME", "username of the default upstream"},
	{"MANIFOLD_UPSTREAM_PASSWORD", "password of the default upstream"},
	{"MANIFOLD_DEFAULT_PLATFORM", "defaultPlatform"},
	{"MANIFOLD_CACHE_TTL", "cache.ttl"},
	{"MANIFOLD_LOG_LEVEL", "log.level"},
	{"MANIFOLD_LOG_FORMAT", "log.format"},
}

// ApplyEnv overrides fields from MANIFOLD_* variables (see Env), read with
// getenv (os.Getenv).
func (c *Config) ApplyEnv(getenv func(string) string) error {
	if v := getenv("MANIFOLD_LISTEN"); v != "" {
		c.Listen = v
	}
	if v := getenv("MANIFOLD_DATA_DIR"); v != "" {
		c.DataDir = v
	}
	if v := getenv("MANIFOLD_READ_ONLY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("MANIFOLD_READ_ONLY: %w", err)
		}
		c.ReadOnly = b
	}
	if v := getenv("MANIFOLD_UPSTREAM"); v != "" {
		c.SetDefaultUpstream(v)
	}
	if v := getenv("MANIFOLD_UPSTREAM_USERNAME"); v != "" {
		c.defaultUpstream().Username = v
	}
	if v := getenv("MANIFOLD_UPSTREAM_PASSWORD"); v != "" {
		c.defaultUpstream().Password = v
	}
	if v := getenv("MANIFOLD_DEFAULT_PLATFORM"); v != "" {
		c.DefaultPlatform = v
	}
	if v := getenv("MANIFOLD_CACHE_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("MANIFOLD_CACHE_TTL: %w", err)
		}
		c.Cache.TTL = Duration(d)
	}
	if v := getenv("MANIFOLD_LOG_LEVEL"); v != "" {
		c.Log.Level = v
	}
	if v := getenv("MANIFOLD_LOG_FORMAT"); v != "" {
		c.Log.Format = v
	}
	return nil
}

// SetDefaultUpstream sets the URL of the default (prefix "") upstream,
// adding it if there is none.
func (c *Config) SetDefaultUpstream(url string) { c.defaultUpstream().URL = url }

func (c *Config) defaultUpstream() *Upstream {
	for i := range c.Upstreams {
		if c.Upstreams[i].Prefix == "" {
			return &c.Upstreams[i]
		}
	}
	c.Upstreams = append(c.Upstreams, Upstream{})
	return &c.Upstreams[len(c.Upstreams)-1]
}

// Validate checks the configuration; errors name the field.
func (c *Config) Validate() error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		fail("listen", "%q is not host:port: %v", c.Listen, err)
	}
	prefixes := map[string]int{}
	for i, u := range c.Upstreams {
		f := fmt.Sprintf("upstreams[%d]", i)
		pu, err := url.Parse(u.URL)
		switch {
		case u.URL == "":
			fail(f+".url", "required")
		case err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https"):
			fail(f+".url", "%q: want http://host[:port] or https://host[:port]", u.URL)
		case pu.Path != "" && pu.Path != "/":
			fail(f+".url", "%q: a registry URL has no path", u.URL)
		}
		p := strings.Trim(u.Prefix, "/")
		if j, dup := prefixes[p]; dup {
			fail(f+".prefix", "%q is also upstreams[%d].prefix", u.Prefix, j)
		}
		prefixes[p] = i
		if u.Keychain && (u.Username != "" || u.Password != "" || u.PasswordFile != "") {
			fail(f+".keychain", "set either keychain or username/password, not both")
		}
		if u.Password != "" && u.PasswordFile != "" {
			fail(f+".passwordFile", "set either password or passwordFile, not both")
		}
		if (u.Password != "" || u.PasswordFile != "") && u.Username == "" {
			fail(f+".username", "required with a password")
		}
	}
	for i, p := range c.Policies {
		f := fmt.Sprintf("policies[%d]", i)
		if p.Repositories == "" {
			fail(f+".repositories", "required")
		} else if _, err := path.Match(p.Repositories, ""); err != nil {
			fail(f+".repositories", "%q: %v", p.Repositories, err)
		}
		if _, err := index.ParsePolicy(p.BareTag); err != nil {
			fail(f+".bareTag", "%v", err)
		}
		for j, r := range p.Require {
			if _, err := platform.Parse(r); err != nil {
				fail(fmt.Sprintf("%s.require[%d]", f, j), "%v", err)
			}
		}
	}
	if _, err := platform.Parse(c.DefaultPlatform); err != nil {
		fail("defaultPlatform", "%v", err)
	}
	if c.Cache.TTL < 0 || c.Cache.StaleWhileRevalidate < 0 || *c.Cache.StaleIfError < 0 {
		fail("cache", "durations must not be negative")
	}
	if c.Cache.Entries < 0 {
		fail("cache.entries", "must not be negative")
	}
	if c.Limits.MaxManifestBytes < 0 {
		fail("limits.maxManifestBytes", "must not be negative")
	}
	if c.Limits.Concurrency < 0 {
		fail("limits.concurrency", "must not be negative")
	}
	if c.Store.MemoryBytes < 0 {
		fail("store.memoryBytes", "must not be negative")
	}
	if c.Store.Driver == "" && len(c.Store.Parameters) > 0 {
		fail("store.driver", "required with store.parameters")
	}
	if c.Auth.Htpasswd == "" && c.Auth.Token == nil && (c.Auth.AnonymousRead || len(c.Auth.Rules) > 0) {
		fail("auth.htpasswd", "auth.htpasswd or auth.token required with auth.anonymousRead or auth.rules")
	}
	if tk := c.Auth.Token; tk != nil {
		if c.Auth.Htpasswd != "" {
			fail("auth.token", "set either auth.htpasswd or auth.token, not both")
		}
		if u, err := url.Parse(tk.Realm); tk.Realm == "" || err != nil || u.Host == "" {
			fail("auth.token.realm", "%q: want the token service URL", tk.Realm)
		}
		if tk.Service == "" {
			fail("auth.token.service", "required")
		}
		if tk.Issuer == "" {
			fail("auth.token.issuer", "required")
		}
		if tk.RootCertBundle == "" && tk.JWKS == "" {
			fail("auth.token.rootCertBundle", "rootCertBundle or jwks required")
		}
	}
	for i, r := range c.Auth.Rules {
		f := fmt.Sprintf("auth.rules[%d].repositories", i)
		if r.Repositories == "" {
			fail(f, "required")
		} else if _, err := path.Match(r.Repositories, ""); err != nil {
			fail(f, "%q: %v", r.Repositories, err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		fail("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		fail("log.format", "%q: want text or json", c.Log.Format)
	}
	if len(errs) == 0 {
		return nil
	}
	// One line for the CLI, every problem named.
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Rules converts Policies to index rules.
func (c *Config) Rules() index.Rules {
	rules := make(index.Rules, len(c.Policies))
	for i, p := range c.Policies {
		pol, _ := index.ParsePolicy(p.BareTag)
		rules[i] = index.Rule{Pattern: p.Repositories, Policy: pol}
		for _, r := range p.Require {
			pl, _ := platform.Parse(r)
			rules[i].Require = append(rules[i].Require, pl)
		}
	}
	return rules
}

// ReadPassword returns the upstream's password, reading PasswordFile if set.
func (u Upstream) ReadPassword() (string, error) {
	if u.PasswordFile == "" {
		return u.Password, nil
	}
	b, err := os.ReadFile(u.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("upstream %s passwordFile: %w", u.URL, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

package config

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/store"
	"github.com/manifold-proxy/manifold/upstream"
)

// A Field is one setting in the table that drives the environment
// overrides, serve's flags, the defaults and the reference
// (docs/configuration.md, generated from this table and the doc comments
// of Config).
type Field struct {
	// Path names the field in the file: "cache.ttl". "upstreams[].url" is
	// the url of every upstream; from a variable or a flag it sets the
	// default upstream's (prefix ""), which is added if there is none.
	Path string
	// Env is the environment variable that overrides the field, or "".
	Env string
	// Flag is the `proxy serve` flag that overrides it (over Env), or "".
	Flag string
	// Default is what the zero value stands for, filled in by Parse and
	// Default: a value of the field's type (of the pointed-to type for a
	// pointer), or nil when the zero value is itself the default.
	Default any
}

// Fields is the table: every setting of Config, in the order of the file.
// A test checks it against Config, and the reference against both.
func Fields() []Field {
	return []Field{
		{Path: "listen", Env: "MANIFOLD_LISTEN", Flag: "listen", Default: Address(DefaultListen)},
		{Path: "tls.certificate", Env: "MANIFOLD_TLS_CERTIFICATE", Flag: "tls-cert"},
		{Path: "tls.key", Env: "MANIFOLD_TLS_KEY", Flag: "tls-key"},
		{Path: "tls.clientCAs", Env: "MANIFOLD_TLS_CLIENT_CAS", Flag: "tls-client-cas"},
		{Path: "tls.minVersion", Default: TLSVersion(DefaultTLSMinVersion)},
		{Path: "dataDir", Env: "MANIFOLD_DATA_DIR", Flag: "data-dir", Default: DefaultDataDir},
		{Path: "readOnly", Env: "MANIFOLD_READ_ONLY", Flag: "read-only"},
		{Path: "upstreams[].prefix"},
		{Path: "upstreams[].url", Env: "MANIFOLD_UPSTREAM", Flag: "upstream"},
		{Path: "upstreams[].mirrorOf"},
		{Path: "upstreams[].insecureSkipVerify"},
		{Path: "upstreams[].username", Env: "MANIFOLD_UPSTREAM_USERNAME"},
		{Path: "upstreams[].password", Env: "MANIFOLD_UPSTREAM_PASSWORD"},
		{Path: "upstreams[].passwordFile"},
		{Path: "upstreams[].keychain"},
		{Path: "policies[].repositories"},
		{Path: "policies[].bareTag", Default: BareTagPolicy(index.Merge)},
		{Path: "policies[].require"},
		{Path: "grammar.aliases"},
		{Path: "grammar.prefix"},
		{Path: "defaultPlatform", Env: "MANIFOLD_DEFAULT_PLATFORM", Default: mustPlatform(proxy.DefaultPlatform)},
		{Path: "cache.ttl", Env: "MANIFOLD_CACHE_TTL", Default: Duration(resolve.DefaultTTL)},
		{Path: "cache.staleWhileRevalidate"},
		{Path: "cache.staleIfError", Default: Duration(DefaultStaleIfError)},
		{Path: "cache.entries", Default: Count(resolve.DefaultEntries)},
		{Path: "cache.content.enabled", Default: true},
		{Path: "cache.content.maxBytes", Default: Size(content.DefaultMaxBytes)},
		{Path: "cache.content.driver"},
		{Path: "cache.content.parameters"},
		{Path: "limits.maxManifestBytes", Default: Size(resolve.DefaultMaxManifestBytes)},
		{Path: "limits.concurrency", Default: Count(resolve.DefaultConcurrency)},
		{Path: "limits.upstreamTimeout", Default: Duration(upstream.DefaultTimeout)},
		{Path: "limits.upstreamInFlight", Default: Count(upstream.DefaultMaxInFlight)},
		{Path: "limits.maxSearchGroups", Default: Count(resolve.DefaultMaxSearchGroups)},
		{Path: "store.memoryBytes", Default: Size(store.DefaultMemoryBytes)},
		{Path: "store.driver"},
		{Path: "store.parameters"},
		{Path: "redis.addrs"},
		{Path: "redis.db"},
		{Path: "redis.username"},
		{Path: "redis.password", Env: "MANIFOLD_REDIS_PASSWORD"},
		{Path: "redis.passwordFile"},
		{Path: "redis.masterName"},
		{Path: "redis.tls"},
		{Path: "redis.ca"},
		{Path: "redis.keyPrefix", Default: DefaultRedisKeyPrefix},
		{Path: "followRedirects", Default: proxy.DefaultFollowRedirects},
		{Path: "auth.htpasswd"},
		{Path: "auth.realm", Default: DefaultRealm},
		{Path: "auth.token.realm"},
		{Path: "auth.token.service"},
		{Path: "auth.token.issuer"},
		{Path: "auth.token.rootCertBundle"},
		{Path: "auth.token.jwks"},
		{Path: "auth.anonymousRead"},
		{Path: "auth.rules[].repositories"},
		{Path: "auth.rules[].read"},
		{Path: "auth.rules[].write"},
		{Path: "ui.enabled", Env: "MANIFOLD_UI_ENABLED", Default: true},
		{Path: "server.maxConnections", Default: Count(DefaultMaxConnections)},
		{Path: "server.readHeaderTimeout", Default: Duration(DefaultReadHeaderTimeout)},
		{Path: "server.idleTimeout", Default: Duration(DefaultIdleTimeout)},
		{Path: "server.progressTimeout", Default: Duration(proxy.DefaultProgressTimeout)},
		{Path: "metrics.listen", Env: "MANIFOLD_METRICS_LISTEN"},
		{Path: "metrics.auth"},
		{Path: "log.level", Env: "MANIFOLD_LOG_LEVEL", Flag: "log-level", Default: slog.LevelInfo},
		{Path: "log.format", Env: "MANIFOLD_LOG_FORMAT", Default: LogText},
		{Path: "shutdownTimeout", Default: Duration(DefaultShutdownTimeout)},
	}
}

func mustPlatform(s string) Platform {
	p, err := platform.Parse(s)
	if err != nil {
		panic(fmt.Sprintf("config: default platform %q: %v", s, err))
	}
	return Platform(p)
}

// ApplyEnv overrides the fields that have a variable in Fields with the
// variables that are set and not empty, read with getenv (os.Getenv).
func (c *Config) ApplyEnv(getenv func(string) string) error {
	var errs []error
	for _, f := range Fields() {
		if f.Env == "" {
			continue
		}
		if v := getenv(f.Env); v != "" {
			if err := c.Set(f.Path, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.Env, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Set sets the field at path (a Path of Fields) from its text, as a
// variable or a flag gives it; the empty text is the field's default.
func (c *Config) Set(path, text string) error {
	v := reflect.ValueOf(c).Elem()
	for _, part := range strings.Split(path, ".") {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		name, list := strings.CutSuffix(part, "[]")
		i := -1
		if v.Kind() == reflect.Struct {
			i = fieldIndex(v.Type(), name)
		}
		switch {
		case i < 0:
			return fmt.Errorf("%s: no such field", path)
		case list && (name != "upstreams" || v.Type() != reflect.TypeFor[Config]()):
			return fmt.Errorf("%s: of the lists, only the default upstream can be set", path)
		case list:
			v = reflect.ValueOf(c.defaultUpstream()).Elem()
		default:
			v = v.Field(i)
		}
	}
	if !isLeaf(v.Type()) || v.Kind() == reflect.Slice || v.Kind() == reflect.Map {
		return fmt.Errorf("%s: not a single value", path)
	}
	if err := setText(v, text); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c.applyDefaults()
	return nil
}

// applyDefaults gives every zero field that has a Default in Fields its
// default, in every element of a list, and not under an absent section
// (auth.token).
func (c *Config) applyDefaults() {
	for _, f := range Fields() {
		if f.Default == nil {
			continue
		}
		at(reflect.ValueOf(c).Elem(), strings.Split(f.Path, "."), func(v reflect.Value) {
			if !v.IsZero() {
				return
			}
			if v.Kind() == reflect.Pointer {
				v.Set(reflect.New(v.Type().Elem()))
				v = v.Elem()
			}
			v.Set(reflect.ValueOf(f.Default))
		})
	}
}

// at calls fn with every value path names under v.
func at(v reflect.Value, path []string, fn func(reflect.Value)) {
	if len(path) == 0 {
		fn(v)
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	name, list := strings.CutSuffix(path[0], "[]")
	f := v.Field(fieldIndex(v.Type(), name))
	if !list {
		at(f, path[1:], fn)
		return
	}
	for i := range f.Len() {
		at(f.Index(i), path[1:], fn)
	}
}

package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/manifold-proxy/manifold/index"
)

// Defaults of the commands, which no library applies.
const (
	// DefaultListen is serve's address.
	DefaultListen = ":5000"
	// DefaultDataDir is where the embedded registry stores images.
	DefaultDataDir = "./manifold-data"
	// DefaultStaleIfError is how long the last good answer is served
	// past its TTL when upstream fails. (resolve turns stale-if-error
	// off when its option is zero; serve turns it on.)
	DefaultStaleIfError = 5 * time.Minute
	// DefaultRealm is the realm of the Basic challenge.
	DefaultRealm = "manifold"
	// DefaultShutdownTimeout bounds a graceful shutdown.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultRedisKeyPrefix is redis.keyPrefix's default.
	DefaultRedisKeyPrefix = "manifold:"
	// DefaultMaxConnections is server.maxConnections' default.
	DefaultMaxConnections = 4096
	// DefaultReadHeaderTimeout is server.readHeaderTimeout's default.
	DefaultReadHeaderTimeout = 30 * time.Second
	// DefaultIdleTimeout is server.idleTimeout's default.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultTLSMinVersion is tls.minVersion's default.
	DefaultTLSMinVersion = "1.2"
)

// Config is the whole configuration.
type Config struct {
	// Listen is the address the proxy serves on. Default ":5000"
	// (config.DefaultListen).
	Listen Address `json:"listen"`
	// TLS serves the proxy over HTTPS. Default: plain HTTP.
	TLS TLS `json:"tls"`
	// DataDir holds the embedded registry's storage when no upstream is
	// configured, and the content cache (cache.content) when one is.
	// Default "./manifold-data" (config.DefaultDataDir).
	DataDir string `json:"dataDir"`
	// ReadOnly refuses pushes and deletes. Default false.
	ReadOnly bool `json:"readOnly"`
	// Upstreams are the registries behind the proxy. Default: none, which
	// starts the embedded registry (distribution v3) on dataDir.
	Upstreams []Upstream `json:"upstreams"`
	// Policies choose what a bare tag that has per-platform members
	// serves, per repository pattern; the first match wins. Default: none,
	// merge everywhere.
	Policies []Policy `json:"policies"`
	// Grammar turns on extra member tag layouts. Default: both off.
	Grammar index.Grammar `json:"grammar"`
	// DefaultPlatform is what a client that cannot read manifest lists
	// gets. Default "linux/amd64" (proxy.DefaultPlatform).
	DefaultPlatform Platform `json:"defaultPlatform"`
	// Cache tunes the caching of tag lists and descriptors.
	Cache Cache `json:"cache"`
	// Limits bound resource use.
	Limits Limits `json:"limits"`
	// Store keeps synthesized indexes by digest.
	Store Store `json:"store"`
	// Redis is the cache the replicas share. Default: none (each replica
	// caches alone).
	Redis Redis `json:"redis"`
	// FollowRedirects makes the proxy follow upstream redirects (blob
	// storage, CDNs) and stream the content itself; false passes them to
	// the client. Default true (proxy.DefaultFollowRedirects).
	FollowRedirects *bool `json:"followRedirects"`
	// Auth controls who may use the proxy. Default: anyone, no login.
	Auth Auth `json:"auth"`
	// UI is the status page under /ui/.
	UI UI `json:"ui"`
	// Server tunes the proxy's own listener.
	Server Server `json:"server"`
	// Metrics configures /metrics.
	Metrics Metrics `json:"metrics"`
	// Log configures the structured logs on stderr.
	Log Log `json:"log"`
	// ShutdownTimeout bounds a graceful shutdown on SIGTERM or SIGINT.
	// Default "30s" (config.DefaultShutdownTimeout).
	ShutdownTimeout Duration `json:"shutdownTimeout"`
}

// Upstream is one registry behind the proxy: where it is, which
// repositories go to it, and how the proxy logs in to it.
type Upstream struct {
	// Prefix selects the upstream: proxy repository "<prefix>/<repo>" is
	// "<repo>" there (/v2/hub/library/nginx → library/nginx). Default ""
	// (the default upstream, used when no prefix matches; at most one).
	Prefix string `json:"prefix"`
	// URL is http://host[:port] (plain HTTP) or https://host[:port].
	// Required.
	URL RegistryURL `json:"url"`
	// MirrorOf lists the registries this upstream serves mirror requests
	// for, such as docker.io, or "*" for any. containerd's mirror requests
	// name the image's registry (?ns=docker.io): they go to the upstream
	// that lists it, else to an upstream whose url is that registry, else
	// to the one that lists "*"; an ns that no upstream mirrors is answered
	// 404 NAME_UNKNOWN at once, so containerd tries its next host. A
	// registry is listed by one upstream at most. Names of docker.io
	// follow Docker Hub's rule (nginx is library/nginx), and so do requests
	// without ns to an upstream that lists docker.io: what dockerd's
	// registry-mirrors sends. Default: none (only its own registry).
	MirrorOf []Registry `json:"mirrorOf"`
	// InsecureSkipVerify skips TLS certificate checks. Default false.
	InsecureSkipVerify bool `json:"insecureSkipVerify"`
	// Username of static credentials. Default: none, anonymous.
	Username string `json:"username"`
	// Password of static credentials. Default: none.
	Password string `json:"password"`
	// PasswordFile is read for the password at start and at each token
	// renewal, so a rotated secret (Kubernetes) is picked up. Default: none.
	PasswordFile string `json:"passwordFile"`
	// Keychain takes credentials from docker's config.json and credential
	// helpers instead of username and password. Default false.
	Keychain bool `json:"keychain"`
}

// TLS: with a certificate and its key the proxy speaks HTTPS (HTTP/2 and
// HTTP/1.1) instead of plain HTTP. The files are PEM, checked for changes
// at most once a second and re-read when they change (cert-manager, a
// rotated Kubernetes Secret): new connections get the new certificate,
// open ones keep theirs. A missing, unreadable or mismatched pair stops
// the proxy at start; one that fails to load later is logged and the
// current one kept.
type TLS struct {
	// Certificate is the server's certificate, then the intermediates
	// clients need. Default: none, plain HTTP.
	Certificate string `json:"certificate"`
	// Key is the certificate's private key. Required with certificate.
	Key string `json:"key"`
	// ClientCAs holds the CA certificates that client certificates must
	// chain to: set, every client must present one (mutual TLS) or the
	// handshake fails. Default: none, no client certificates.
	ClientCAs string `json:"clientCAs"`
	// MinVersion is the lowest TLS version accepted. Default "1.2".
	MinVersion TLSVersion `json:"minVersion"`
}

// Policy applies a bare-tag policy to repositories matching a pattern.
type Policy struct {
	// Repositories is a pattern on the repository name as clients of the
	// proxy name it, such as "legacy/*". Required.
	Repositories Pattern `json:"repositories"`
	// BareTag is what a bare tag serves: merge (a single-platform bare tag
	// joins the index), override (the index replaces it), fallback
	// (synthesize only when the bare tag is absent) or off. Default
	// "merge".
	BareTag BareTagPolicy `json:"bareTag"`
	// Require lists platforms that must all be present before the index
	// is served, so a half-pushed set is not published; until then the
	// bare tag is upstream's (or 404). Default: none.
	Require []Platform `json:"require"`
}

// Cache: tag lists and tag → digest answers change upstream, so the proxy
// keeps them for a TTL, and can serve them stale while it refreshes them
// or while upstream fails. (What a digest names never changes and is kept
// apart from these.)
type Cache struct {
	// TTL of tag lists, tag → digest answers and catalogs. Default "30s"
	// (resolve.DefaultTTL).
	TTL Duration `json:"ttl"`
	// StaleWhileRevalidate serves an expired answer this long while it is
	// refreshed in the background. Default "0s" (off).
	StaleWhileRevalidate Duration `json:"staleWhileRevalidate"`
	// StaleIfError serves the last good answer this long past its TTL when
	// upstream fails (5xx, 429, timeouts); "0s" turns it off. Default "5m"
	// (config.DefaultStaleIfError).
	StaleIfError *Duration `json:"staleIfError"`
	// Entries bounds each cache. Default 10000 (resolve.DefaultEntries).
	Entries Count `json:"entries"`
	// Content is the pull-through content cache.
	Content Content `json:"content"`
}

// Limits bound what one request can cost the proxy and the upstream.
type Limits struct {
	// MaxManifestBytes refuses larger member manifests and configs, and
	// larger manifests pushed through the proxy. Default 4194304 (4 MiB,
	// resolve.DefaultMaxManifestBytes).
	MaxManifestBytes Size `json:"maxManifestBytes"`
	// Concurrency is how many members of a group are resolved at once.
	// Default 32 (resolve.DefaultConcurrency).
	Concurrency Count `json:"concurrency"`
	// UpstreamTimeout bounds the wait for an upstream's answer to a GET or
	// HEAD, over every retry: a hanging upstream is an error after it,
	// never a hang. Default "30s" (upstream.DefaultTimeout).
	UpstreamTimeout Duration `json:"upstreamTimeout"`
	// UpstreamInFlight bounds the requests open on each upstream at once;
	// more wait for a slot. Default 256 (upstream.DefaultMaxInFlight).
	UpstreamInFlight Count `json:"upstreamInFlight"`
	// MaxSearchGroups bounds the bare tags searched to find a digest this
	// replica never served; a repository with more is not searched (the
	// digest is then found only in the store). Default 5000
	// (resolve.DefaultMaxSearchGroups).
	MaxSearchGroups Count `json:"maxSearchGroups"`
}

// UI configures the status page (/ui/): every repository's platform
// matrix, read-only, under the registry API's authentication and read
// rules.
type UI struct {
	// Enabled serves /ui/. Default true.
	Enabled *bool `json:"enabled"`
}

// Server tunes the proxy's own listener.
type Server struct {
	// MaxConnections bounds the client connections open at once; more
	// wait to be accepted. Default 4096 (config.DefaultMaxConnections).
	MaxConnections Count `json:"maxConnections"`
	// ReadHeaderTimeout bounds the reading of a request's headers. Default
	// "30s" (config.DefaultReadHeaderTimeout).
	ReadHeaderTimeout Duration `json:"readHeaderTimeout"`
	// IdleTimeout closes a keep-alive connection idle this long. Default
	// "2m" (config.DefaultIdleTimeout).
	IdleTimeout Duration `json:"idleTimeout"`
	// ProgressTimeout ends a request whose body read or answer write makes
	// no progress for this long (a stalled upload, a client that stopped
	// reading); a request that keeps moving is never cut. Default "1m"
	// (proxy.DefaultProgressTimeout).
	ProgressTimeout Duration `json:"progressTimeout"`
}

// Metrics configures /metrics (Prometheus).
type Metrics struct {
	// Listen serves /metrics on an address of its own instead of the
	// proxy's (e.g. "127.0.0.1:9090", reachable by the scraper only).
	// Default "": on the proxy's listener.
	Listen Address `json:"listen"`
	// Auth requires an authenticated user (any) for /metrics on the
	// proxy's listener when client authentication is on. Default false.
	Auth bool `json:"auth"`
}

// Redis configures the cache replicas share (sharedcache): tag lists and
// tag → digest answers one replica fetched serve all, with the TTLs of
// cache, and one upstream fetch per answer runs across the fleet at a
// time. One address is a single server, several a cluster; with
// masterName, the addresses are sentinels. Redis failing degrades each
// replica to its own cache; no pull fails for it.
type Redis struct {
	// Addrs are host:port addresses. Default: none (Redis off).
	Addrs []Address `json:"addrs"`
	// DB selects the database (single server, sentinel). Default 0.
	DB Count `json:"db"`
	// Username for Redis 6 ACLs. Default "".
	Username string `json:"username"`
	// Password authenticates. Default "".
	Password string `json:"password"`
	// PasswordFile is read for the password (Kubernetes secrets); exclusive
	// with password. Default "".
	PasswordFile string `json:"passwordFile"`
	// MasterName is the sentinel primary's name. Default "".
	MasterName string `json:"masterName"`
	// TLS connects over TLS. Default false.
	TLS bool `json:"tls"`
	// CA is a PEM file of the CAs that sign Redis' certificate (with tls).
	// Default "": the system roots.
	CA string `json:"ca"`
	// KeyPrefix starts every key manifold writes. Default "manifold:"
	// (config.DefaultRedisKeyPrefix).
	KeyPrefix string `json:"keyPrefix"`
}

// Store configures where synthesized indexes are kept by digest, so that
// a digest the proxy served stays pullable.
type Store struct {
	// MemoryBytes bounds the in-memory LRU. Default 67108864 (64 MiB,
	// store.DefaultMemoryBytes).
	MemoryBytes Size `json:"memoryBytes"`
	// Driver is an optional shared backend behind the memory: a
	// distribution storage driver name (filesystem, s3, gcs, azure,
	// inmemory). Default: none, memory only.
	Driver string `json:"driver"`
	// Parameters of the driver, as in distribution's own configuration,
	// such as {rootdirectory: /var/lib/manifold}. Default: none.
	Parameters map[string]any `json:"parameters"`
}

// Auth configures how clients log in to the proxy: with docker login,
// crane auth login and the like. The proxy never forwards those
// credentials upstream; it uses its own, per upstream. With a token the
// token service decides what each token grants (pull, push per
// repository) and the rules apply on top. Deletes need write access (and a
// token's delete action); a cross-repository mount needs read access to
// its source, or it becomes a plain upload. A rule that denies answers
// 403 DENIED; the catalog lists only what the user may read.
type Auth struct {
	// Htpasswd is a file of users with bcrypt passwords (htpasswd -B); it
	// turns on HTTP Basic login. Default: none, no login.
	Htpasswd string `json:"htpasswd"`
	// Realm of the Basic challenge. Default "manifold" (config.DefaultRealm).
	Realm string `json:"realm"`
	// Token accepts bearer tokens of a Docker token service (the scheme
	// Docker Hub uses) instead of htpasswd users. Default: none.
	Token *TokenAuth `json:"token"`
	// AnonymousRead lets requests without credentials pull; pushes still
	// need a login. Default false.
	AnonymousRead bool `json:"anonymousRead"`
	// Rules restrict users per repository pattern; the first match wins;
	// with no match every user may read and write. Default: none.
	Rules []AccessRule `json:"rules"`
}

// TokenAuth configures bearer-token authentication (distribution's token
// access controller): clients get a token from Realm and present it.
type TokenAuth struct {
	// Realm is the token service URL clients are sent to. Required.
	Realm URL `json:"realm"`
	// Service is this proxy's name in tokens (their audience). Required.
	Service string `json:"service"`
	// Issuer must match the tokens' iss claim. Required.
	Issuer string `json:"issuer"`
	// RootCertBundle is a PEM file of the certificates tokens chain to.
	// Required, unless jwks is set.
	RootCertBundle string `json:"rootCertBundle"`
	// JWKS is a JSON Web Key Set file of trusted signing keys. Required,
	// unless rootCertBundle is set.
	JWKS string `json:"jwks"`
}

// AccessRule says who may read and write matching repositories.
type AccessRule struct {
	// Repositories is a pattern on repository names. Required.
	Repositories Pattern `json:"repositories"`
	// Read lists the users who may pull; "*" is any authenticated user,
	// "anonymous" is no login (with anonymousRead). Default: none.
	Read []string `json:"read"`
	// Write lists the users who may push and delete, in the same form.
	// Default: none.
	Write []string `json:"write"`
}

// Log configures slog: requests are logged once, at the edge, and
// synthesis findings (excluded members, duplicates) as they happen.
type Log struct {
	// Level is debug, info, warn or error. Default "info" (slog's zero
	// Level).
	Level slog.Level `json:"level"`
	// Format is text or json. Default "text" (config.LogText).
	Format LogFormat `json:"format"`
}

// Default returns a Config with every default filled in.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

// Parse reads a YAML configuration and fills in the defaults. Unknown
// fields and bad values are errors, joined, each naming its field; call
// Validate after applying overrides.
func Parse(r io.Reader) (*Config, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	if err := decode(b, c); err != nil {
		return nil, err
	}
	c.applyDefaults()
	return c, nil
}

// Load reads the file at path, or returns the defaults when path is "". A
// file that cannot be read is an *fs.PathError.
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

// defaultUpstream is the upstream with prefix "", added if there is none.
func (c *Config) defaultUpstream() *Upstream {
	for i := range c.Upstreams {
		if c.Upstreams[i].Prefix == "" {
			return &c.Upstreams[i]
		}
	}
	c.Upstreams = append(c.Upstreams, Upstream{})
	return &c.Upstreams[len(c.Upstreams)-1]
}

// Validate checks what involves more than one value: required fields,
// exclusive ones, duplicates. (Each value was checked when it was parsed.)
// The errors are joined, each naming its field.
func (c *Config) Validate() error {
	errs := c.validateUpstreams()
	for i, p := range c.Policies {
		f := fmt.Sprintf("policies[%d]", i)
		if p.Repositories == "" {
			errs = append(errs, fmt.Errorf("%s.repositories: required", f))
		}
		for j, r := range p.Require {
			if r.OS == "" {
				errs = append(errs, fmt.Errorf("%s.require[%d]: empty platform", f, j))
			}
		}
	}
	if c.Store.Driver == "" && len(c.Store.Parameters) > 0 {
		errs = append(errs, errors.New("store.driver: required with store.parameters"))
	}
	if r := c.Redis; len(r.Addrs) == 0 && (r.Password != "" || r.PasswordFile != "" || r.MasterName != "" || r.TLS) {
		errs = append(errs, errors.New("redis.addrs: required with the other redis settings"))
	}
	if c.Redis.Password != "" && c.Redis.PasswordFile != "" {
		errs = append(errs, errors.New("redis.passwordFile: set either password or passwordFile, not both"))
	}
	errs = append(errs, c.Cache.Content.validate()...)
	errs = append(errs, c.validateAuth()...)
	errs = append(errs, c.validateTLS()...)
	return errors.Join(errs...)
}

func (c *Config) validateTLS() []error {
	var errs []error
	switch t := c.TLS; {
	case t.Certificate != "" && t.Key == "":
		errs = append(errs, errors.New("tls.key: required with tls.certificate"))
	case t.Key != "" && t.Certificate == "":
		errs = append(errs, errors.New("tls.certificate: required with tls.key"))
	case t.ClientCAs != "" && t.Certificate == "":
		errs = append(errs, errors.New("tls.clientCAs: needs tls.certificate and tls.key (client certificates are part of TLS)"))
	}
	return errs
}

func (c *Config) validateUpstreams() []error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	prefixes, mirrored := map[string]int{}, map[Registry]int{}
	for i, u := range c.Upstreams {
		f := fmt.Sprintf("upstreams[%d]", i)
		if u.URL == "" {
			fail(f+".url", "required")
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
		for j, m := range u.MirrorOf {
			if k, dup := mirrored[m]; dup {
				fail(fmt.Sprintf("%s.mirrorOf[%d]", f, j), "%s is also mirrored by upstreams[%d]", m, k)
			}
			mirrored[m] = i
		}
	}
	return errs
}

func (c *Config) validateAuth() []error {
	var errs []error
	fail := func(field, msg string) { errs = append(errs, fmt.Errorf("%s: %s", field, msg)) }
	a := c.Auth
	if a.Htpasswd == "" && a.Token == nil && (a.AnonymousRead || len(a.Rules) > 0) {
		fail("auth.htpasswd", "auth.htpasswd or auth.token required with auth.anonymousRead or auth.rules")
	}
	if tk := a.Token; tk != nil {
		if a.Htpasswd != "" {
			fail("auth.token", "set either auth.htpasswd or auth.token, not both")
		}
		if tk.Realm == "" {
			fail("auth.token.realm", "required: the token service URL")
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
	for i, r := range a.Rules {
		if r.Repositories == "" {
			fail(fmt.Sprintf("auth.rules[%d].repositories", i), "required")
		}
	}
	return errs
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

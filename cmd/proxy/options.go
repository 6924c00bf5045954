package main

// This file is the one place where the configuration (and the flags that
// override it) becomes the options of the libraries, for every command:
// serve (proxy, upstream, store, auth), inspect and migrate (migrate),
// build (build). A zero value in the configuration is passed on as zero,
// and the library applies its default (config fills in the same named
// constants, so the two agree).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/auth"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // access controller
	_ "github.com/distribution/distribution/v3/registry/auth/token"    // access controller
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/manifold-proxy/manifold/config"
	"github.com/manifold-proxy/manifold/crossbuild"
	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/migrate"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/sharedcache"
	"github.com/manifold-proxy/manifold/store"
	"github.com/manifold-proxy/manifold/tlsreload"
	"github.com/manifold-proxy/manifold/upstream"
)

// loadConfig reads the configuration file at path (only the defaults when
// path is ""); with cmd (serve), the MANIFOLD_* environment and then the
// flags of cmd that config.Fields names and the user set override it. The
// result is validated; an error is one line that names every bad field.
func loadConfig(path string, cmd *cobra.Command) (*config.Config, error) {
	cfg, err := config.Load(path)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return nil, err // the file, not its content
	}
	if err == nil && cmd != nil {
		err = applyOverrides(cfg, cmd)
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return nil, cliError(fmt.Errorf("invalid configuration: %w", err))
	}
	return cfg, nil
}

func applyOverrides(cfg *config.Config, cmd *cobra.Command) error {
	if err := cfg.ApplyEnv(os.Getenv); err != nil {
		return err
	}
	fl := cmd.Flags()
	for _, f := range config.Fields() {
		if f.Flag == "" || !fl.Changed(f.Flag) {
			continue
		}
		if err := cfg.Set(f.Path, fl.Lookup(f.Flag).Value.String()); err != nil {
			return fmt.Errorf("--%s: %w", f.Flag, err)
		}
	}
	return nil
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Level}
	if cfg.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func userAgent() string { return "manifold/" + versionString() }

// proxyOptions turns the configuration into proxy options, with ups as the
// upstreams (the configured ones, or the embedded registry, which only
// transport reaches; nil is the default transport).
func proxyOptions(ctx context.Context, cfg *config.Config, ups []config.Upstream, transport http.RoundTripper, ctl auth.AccessController, log *slog.Logger) (proxy.Options, error) {
	defaultPlatform := v1.Platform(cfg.DefaultPlatform)
	opts := proxy.Options{
		ReadOnly:        cfg.ReadOnly,
		Policies:        rules(cfg),
		Grammar:         cfg.Grammar,
		DefaultPlatform: &defaultPlatform,
		Cache: resolve.CacheOptions{
			TTL:                  time.Duration(cfg.Cache.TTL),
			StaleWhileRevalidate: time.Duration(cfg.Cache.StaleWhileRevalidate),
			StaleIfError:         time.Duration(*cfg.Cache.StaleIfError),
			Entries:              int(cfg.Cache.Entries),
		},
		MaxManifestBytes: int64(cfg.Limits.MaxManifestBytes),
		Concurrency:      int(cfg.Limits.Concurrency),
		MaxSearchGroups:  int(cfg.Limits.MaxSearchGroups),
		FollowRedirects:  cfg.FollowRedirects,
		ProgressTimeout:  time.Duration(cfg.Server.ProgressTimeout),
		MetricsAuth:      cfg.Metrics.Auth,
		Logger:           log,
	}
	for _, u := range ups {
		c, err := upstreamClient(u, transport, cfg.Limits)
		if err != nil {
			return opts, err
		}
		up := proxy.Upstream{Prefix: u.Prefix, Client: c}
		for _, m := range u.MirrorOf {
			up.MirrorOf = append(up.MirrorOf, string(m))
		}
		opts.Upstreams = append(opts.Upstreams, up)
	}
	st, err := indexStore(ctx, cfg.Store)
	if err != nil {
		return opts, err
	}
	opts.Store = st
	if len(cfg.Redis.Addrs) > 0 {
		sh, err := redisCache(cfg.Redis)
		if err != nil {
			return opts, err
		}
		opts.Cache.Shared, opts.Cache.SharedPrefix = sh, cfg.Redis.KeyPrefix
	}
	if ctl != nil {
		a := &proxy.Access{Controller: ctl, AnonymousRead: cfg.Auth.AnonymousRead}
		for _, r := range cfg.Auth.Rules {
			a.Rules = append(a.Rules, proxy.AccessRule{Pattern: string(r.Repositories), Read: r.Read, Write: r.Write})
		}
		opts.Access = a
	}
	return opts, nil
}

// rules are the configuration's bare-tag policies, as the proxy and
// migrate match them.
func rules(cfg *config.Config) index.Rules {
	rs := make(index.Rules, len(cfg.Policies))
	for i, p := range cfg.Policies {
		rs[i] = index.Rule{Pattern: string(p.Repositories), Policy: index.Policy(p.BareTag)}
		for _, r := range p.Require {
			rs[i].Require = append(rs[i].Require, v1.Platform(r))
		}
	}
	return rs
}

// redisCache is the replicas' shared cache of cfg.
func redisCache(cfg config.Redis) (*sharedcache.Redis, error) {
	o := sharedcache.Options{DB: int(cfg.DB), Username: cfg.Username, Password: cfg.Password, MasterName: cfg.MasterName}
	for _, a := range cfg.Addrs {
		o.Addrs = append(o.Addrs, string(a))
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("redis.passwordFile: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	if cfg.TLS {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CA != "" {
			pem, err := os.ReadFile(cfg.CA)
			if err != nil {
				return nil, fmt.Errorf("redis.ca: %w", err)
			}
			o.TLS.RootCAs = x509.NewCertPool()
			if !o.TLS.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("redis.ca: %s holds no PEM certificate", cfg.CA)
			}
		}
	}
	return sharedcache.New(o)
}

// indexStore is the memory LRU, in front of the configured driver if any.
func indexStore(ctx context.Context, cfg config.Store) (store.Store, error) {
	mem := store.NewMemory(int64(cfg.MemoryBytes))
	if cfg.Driver == "" {
		return mem, nil
	}
	d, err := factory.Create(ctx, cfg.Driver, cfg.Parameters)
	if err != nil {
		return nil, fmt.Errorf("store.driver %q: %w", cfg.Driver, err)
	}
	return store.Tiered{mem, store.NewDriver(d)}, nil
}

func upstreamClient(u config.Upstream, transport http.RoundTripper, limits config.Limits) (*upstream.Client, error) {
	o := upstream.Options{URL: string(u.URL), InsecureSkipVerify: u.InsecureSkipVerify, Transport: transport, UserAgent: userAgent(),
		Retry: upstream.Retry{Timeout: time.Duration(limits.UpstreamTimeout)}, MaxInFlight: int(limits.UpstreamInFlight)}
	switch {
	case u.Keychain:
		o.Keychain = authn.DefaultKeychain
	case u.PasswordFile != "":
		// Read at start to fail early, and again at each token renewal.
		if _, err := u.ReadPassword(); err != nil {
			return nil, err
		}
		o.Auth = upstream.PasswordFile(u.Username, u.PasswordFile)
	case u.Username != "":
		o.Auth = authn.FromConfig(authn.AuthConfig{Username: u.Username, Password: u.Password})
	}
	return upstream.New(o)
}

// tlsOptions are the options of the proxy listener's TLS (cfg.Certificate
// set).
func tlsOptions(cfg config.TLS, log *slog.Logger) tlsreload.Options {
	return tlsreload.Options{Certificate: cfg.Certificate, Key: cfg.Key, ClientCAs: cfg.ClientCAs, MinVersion: cfg.MinVersion.Uint16(), Logger: log}
}

// accessController builds the client authentication of cfg, or nil.
func accessController(cfg config.Auth) (auth.AccessController, error) {
	switch {
	case cfg.Htpasswd != "":
		// distribution's controller would create a missing file with a
		// random user; a missing file is a configuration error here.
		if _, err := os.Stat(cfg.Htpasswd); err != nil {
			return nil, fmt.Errorf("auth.htpasswd: %w", err)
		}
		ctl, err := auth.GetAccessController("htpasswd", map[string]any{"realm": cfg.Realm, "path": cfg.Htpasswd})
		if err != nil {
			return nil, fmt.Errorf("auth.htpasswd: %w", err)
		}
		return proxy.EvenHtpasswd(ctl, cfg.Htpasswd)
	case cfg.Token != nil:
		ctl, err := auth.GetAccessController("token", map[string]any{
			"realm": string(cfg.Token.Realm), "service": cfg.Token.Service, "issuer": cfg.Token.Issuer,
			"rootcertbundle": cfg.Token.RootCertBundle, "jwks": cfg.Token.JWKS,
		})
		if err != nil {
			return nil, fmt.Errorf("auth.token: %w", err)
		}
		return ctl, nil
	}
	return nil, nil
}

// migrateOptions are the options of inspect and migrate for repo, read
// through c: the proxy's policies, grammar and limits, so that the index
// migrate writes is the one the proxy serves.
func migrateOptions(cfg *config.Config, c *upstream.Client, repo name.Repository, expect []v1.Platform, progress func(migrate.Progress)) migrate.Options {
	return migrate.Options{
		Client:            c,
		Repository:        repo.RepositoryStr(),
		PolicyName:        policyName(cfg, repo.Registry, repo.RepositoryStr()),
		Policies:          rules(cfg),
		Grammar:           cfg.Grammar,
		MaxManifestBytes:  int64(cfg.Limits.MaxManifestBytes),
		MemberConcurrency: int(cfg.Limits.Concurrency),
		Expect:            expect,
		Progress:          progress,
	}
}

// policyName is the repository as the proxy's clients name it, which the
// configuration's policy patterns match: an upstream of the configuration
// on this registry with a prefix puts that prefix in front.
func policyName(cfg *config.Config, reg name.Registry, repo string) string {
	for _, u := range cfg.Upstreams {
		p := strings.Trim(u.Prefix, "/")
		if p == "" {
			continue
		}
		if _, host, ok := strings.Cut(string(u.URL), "://"); ok && strings.TrimSuffix(host, "/") == reg.RegistryStr() {
			return p + "/" + repo
		}
	}
	return repo
}

// buildOptions are build's options, from its flags (build reads no
// configuration file).
func buildOptions(f buildFlags, pkg string, progress func(crossbuild.Event)) crossbuild.Options {
	return crossbuild.Options{
		Repo: f.repo, Tags: f.tags, Platforms: f.platforms, Package: pkg,
		Index: f.index, DryRun: f.dryRun, Bases: f.bases, Adds: f.adds,
		Jobs: f.jobs, LDFlags: f.ldflags, GoTags: f.goTags, NoTrimpath: !f.trimpath,
		Insecure: f.insecure, CacheDir: f.cacheDir, Progress: progress,
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/distribution/distribution/v3/registry/auth"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // access controller
	_ "github.com/distribution/distribution/v3/registry/auth/token"    // access controller
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"github.com/manifold-proxy/manifold/config"
	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/store"
	"github.com/manifold-proxy/manifold/upstream"
)

type serveFlags struct {
	config, listen, upstream, dataDir, logLevel string
	readOnly                                    bool
}

func newServe() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the registry front-end",
		Long: `Serve the OCI Distribution API in front of an upstream registry, adding a
synthesized multi-platform index under every bare tag whose per-platform tags
(<tag>-<os>-<arch>[-<variant>]) exist upstream. With no upstream configured,
an embedded registry (distribution v3) stores images under --data-dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadServeConfig(cmd, f)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML configuration file")
	fl.StringVar(&f.listen, "listen", "", `address to listen on (default ":5000")`)
	fl.StringVar(&f.upstream, "upstream", "", "upstream registry URL, http:// for plain HTTP (default: embedded registry)")
	fl.StringVar(&f.dataDir, "data-dir", "", `embedded registry storage (default "./manifold-data")`)
	fl.BoolVar(&f.readOnly, "read-only", false, "refuse pushes and deletes")
	fl.StringVar(&f.logLevel, "log-level", "", `debug, info, warn or error (default "info")`)
	return cmd
}

// loadServeConfig applies file, then environment, then flags.
func loadServeConfig(cmd *cobra.Command, f serveFlags) (*config.Config, error) {
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	if err := cfg.ApplyEnv(os.Getenv); err != nil {
		return nil, err
	}
	fl := cmd.Flags()
	if fl.Changed("listen") {
		cfg.Listen = f.listen
	}
	if fl.Changed("upstream") {
		cfg.SetDefaultUpstream(f.upstream)
	}
	if fl.Changed("data-dir") {
		cfg.DataDir = f.dataDir
	}
	if fl.Changed("read-only") {
		cfg.ReadOnly = f.readOnly
	}
	if fl.Changed("log-level") {
		cfg.Log.Level = f.logLevel
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, cfg *config.Config, logw io.Writer) error {
	log := newLogger(cfg.Log, logw)
	// Everything that can be refused is checked before the embedded
	// registry creates its data dir.
	access, err := accessController(cfg.Auth)
	if err != nil {
		return err
	}
	ups := cfg.Upstreams
	var private http.RoundTripper // the embedded registry's only way in
	if len(ups) == 0 {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		reg, err := embedded.Start(ctx, embedded.Options{Dir: cfg.DataDir, Verbose: cfg.Log.Level == "debug", Private: true})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = reg.Close(sctx)
		}()
		log.Info("embedded registry started (reachable through the proxy only)", "dataDir", cfg.DataDir)
		ups = []config.Upstream{{URL: reg.URL}}
		private = reg.Transport
	}
	opts, err := proxyOptions(ctx, cfg, ups, access, log)
	if err != nil {
		return err
	}
	if private != nil {
		c, err := upstream.New(upstream.Options{URL: ups[0].URL, Transport: private, UserAgent: "manifold/" + versionString()})
		if err != nil {
			return err
		}
		opts.Upstreams[0].Client = c
	}
	p, err := proxy.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: blob downloads stream for as long as they take.
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("manifold serving", "addr", ln.Addr().String(), "version", versionString(), "readOnly", cfg.ReadOnly)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// proxyOptions turns the configuration into proxy options.
func proxyOptions(ctx context.Context, cfg *config.Config, ups []config.Upstream, ctl auth.AccessController, log *slog.Logger) (proxy.Options, error) {
	defaultPlatform, _ := platform.Parse(cfg.DefaultPlatform)
	opts := proxy.Options{
		ReadOnly:        cfg.ReadOnly,
		Policies:        cfg.Rules(),
		Grammar:         index.Grammar{Aliases: cfg.Grammar.Aliases, Prefix: cfg.Grammar.Prefix},
		DefaultPlatform: &defaultPlatform,
		Cache: resolve.CacheOptions{
			TTL:                  time.Duration(cfg.Cache.TTL),
			StaleWhileRevalidate: time.Duration(cfg.Cache.StaleWhileRevalidate),
			StaleIfError:         time.Duration(*cfg.Cache.StaleIfError),
			Entries:              cfg.Cache.Entries,
		},
		MaxManifestBytes: cfg.Limits.MaxManifestBytes,
		Concurrency:      cfg.Limits.Concurrency,
		FollowRedirects:  cfg.FollowRedirects,
		Logger:           log,
	}
	for _, u := range ups {
		c, err := upstreamClient(u)
		if err != nil {
			return opts, err
		}
		opts.Upstreams = append(opts.Upstreams, proxy.Upstream{Prefix: u.Prefix, Client: c})
	}
	st := store.Store(store.NewMemory(cfg.Store.MemoryBytes))
	if cfg.Store.Driver != "" {
		d, err := factory.Create(ctx, cfg.Store.Driver, cfg.Store.Parameters)
		if err != nil {
			return opts, fmt.Errorf("store.driver %q: %w", cfg.Store.Driver, err)
		}
		st = store.Tiered{st, store.NewDriver(d)}
	}
	opts.Store = st
	if ctl != nil {
		a := &proxy.Access{Controller: ctl, AnonymousRead: cfg.Auth.AnonymousRead}
		for _, r := range cfg.Auth.Rules {
			a.Rules = append(a.Rules, proxy.AccessRule{Pattern: r.Repositories, Read: r.Read, Write: r.Write})
		}
		opts.Access = a
	}
	return opts, nil
}

func upstreamClient(u config.Upstream) (*upstream.Client, error) {
	o := upstream.Options{URL: u.URL, InsecureSkipVerify: u.InsecureSkipVerify, UserAgent: "manifold/" + versionString()}
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
		return ctl, nil
	case cfg.Token != nil:
		ctl, err := auth.GetAccessController("token", map[string]any{
			"realm": cfg.Token.Realm, "service": cfg.Token.Service, "issuer": cfg.Token.Issuer,
			"rootcertbundle": cfg.Token.RootCertBundle, "jwks": cfg.Token.JWKS,
		})
		if err != nil {
			return nil, fmt.Errorf("auth.token: %w", err)
		}
		return ctl, nil
	}
	return nil, nil
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"golang.org/x/net/netutil"

	"github.com/manifold-proxy/manifold/config"
	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/tlsreload"
	"github.com/manifold-proxy/manifold/ui"
)

func newServe() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the registry front-end",
		Long: `Serve the OCI Distribution API in front of an upstream registry, adding a
synthesized multi-platform index under every bare tag whose per-platform tags
(<tag>-<os>-<arch>[-<variant>]) exist upstream. With no upstream configured,
an embedded registry (distribution v3) stores images under --data-dir.

The configuration file is overridden by MANIFOLD_* environment variables,
which the flags override (docs/configuration.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath, cmd)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, cmd.ErrOrStderr())
		},
	}
	// The flags other than --config are read through config.Fields, which
	// names them (applyOverrides), so each is parsed by its field's type.
	fl := cmd.Flags()
	fl.StringVar(&configPath, "config", "", "YAML configuration file")
	fl.String("listen", "", fmt.Sprintf("address to listen on (default %q)", config.DefaultListen))
	fl.String("upstream", "", "upstream registry URL, http:// for plain HTTP (default: embedded registry)")
	fl.String("data-dir", "", fmt.Sprintf("embedded registry storage (default %q)", config.DefaultDataDir))
	fl.Bool("read-only", false, "refuse pushes and deletes")
	fl.String("log-level", "", `debug, info, warn or error (default "info")`)
	fl.String("tls-cert", "", "PEM certificate (then its intermediates): serve HTTPS and HTTP/2; re-read when it changes")
	fl.String("tls-key", "", "PEM private key of --tls-cert")
	fl.String("tls-client-cas", "", "PEM CA certificates that clients' certificates must chain to (mutual TLS)")
	return cmd
}

func serve(ctx context.Context, cfg *config.Config, logw io.Writer) error {
	log := newLogger(cfg.Log, logw)
	// Everything that can be refused is checked before the embedded
	// registry creates its data dir.
	access, err := accessController(cfg.Auth)
	if err != nil {
		return err
	}
	tlsConfig, err := serverTLS(cfg, log)
	if err != nil {
		return err
	}
	ups := cfg.Upstreams
	var private http.RoundTripper // the embedded registry's only way in
	if len(ups) == 0 {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		reg, err := embedded.Start(ctx, embedded.Options{Dir: cfg.DataDir, Verbose: cfg.Log.Level <= slog.LevelDebug, Private: true})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = reg.Close(sctx)
		}()
		log.Info("embedded registry started (reachable through the proxy only)", "dataDir", cfg.DataDir)
		ups = []config.Upstream{{URL: config.RegistryURL(reg.URL)}}
		private = reg.Transport
	}
	opts, err := proxyOptions(ctx, cfg, ups, private, access, log)
	if err != nil {
		return err
	}
	closeContent, err := openContent(ctx, cfg, &opts, log)
	if err != nil {
		return err
	}
	if closeContent != nil {
		defer closeContent()
	}
	if opts.Cache.Shared != nil {
		// go-redis logs through a logger of its own (package-level, so
		// set here, in main): its reconnection notes go to debug; the
		// failures are counted (manifold_shared_cache_errors_total).
		redis.SetLogger(redisLog{log})
		log.Info("shared cache", "redis", cfg.Redis.Addrs)
	}
	var metrics *prometheus.Registry
	if cfg.Metrics.Listen != "" {
		// /metrics on its own address, not on the proxy's.
		metrics = prometheus.NewRegistry()
		opts.Registerer = metrics
	}
	p, err := proxy.New(opts)
	if err != nil {
		return err
	}
	handler := http.Handler(p)
	if *cfg.UI.Enabled {
		page, err := ui.New(ui.Options{Proxy: p, Logger: log})
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/ui/", page)
		mux.Handle("/", p)
		handler = mux
	}
	servers := []*server{{name: "manifold", addr: string(cfg.Listen), handler: handler, maxConns: int(cfg.Server.MaxConnections), tls: tlsConfig}}
	if metrics != nil {
		servers = append(servers, &server{name: "metrics", addr: string(cfg.Metrics.Listen), handler: promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}), maxConns: 64})
	}
	return serveAll(ctx, cfg, servers, log)
}

// serverTLS is the proxy listener's TLS configuration, nil for plain
// HTTP. A pair that does not load is refused here, in one line naming the
// field and the file; plain HTTP on an address other hosts can reach gets
// one warning saying what their clients will need.
func serverTLS(cfg *config.Config, log *slog.Logger) (*tls.Config, error) {
	if cfg.TLS.Certificate == "" {
		if !loopback(string(cfg.Listen)) {
			log.Warn("serving plain HTTP on a non-loopback address: docker, containerd and podman on other hosts refuse it unless each marks it insecure "+
				"(daemon.json insecure-registries, hosts.toml http://, registries.conf insecure = true), and logins cross the network in clear text; "+
				"set tls.certificate and tls.key (--tls-cert, --tls-key) to serve HTTPS", "addr", string(cfg.Listen))
		}
		return nil, nil
	}
	r, err := tlsreload.New(tlsOptions(cfg.TLS, log))
	if err != nil {
		return nil, fmt.Errorf("tls.%w", err)
	}
	return r.Config(), nil
}

// loopback reports whether addr (host:port) listens on loopback only: a
// loopback IP or localhost. An empty host is every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// server is one listener of `proxy serve`.
type server struct {
	name, addr string
	handler    http.Handler
	maxConns   int
	tls        *tls.Config // nil: plain HTTP
	srv        *http.Server
}

// serveAll listens on every server's address (all or none), serves until
// ctx ends or one fails, then shuts them all down gracefully.
func serveAll(ctx context.Context, cfg *config.Config, servers []*server, log *slog.Logger) error {
	errc := make(chan error, len(servers))
	for _, s := range servers {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, started := range servers {
				if started.srv != nil {
					_ = started.srv.Close()
				}
			}
			return fmt.Errorf("listen (%s): %w", s.name, err)
		}
		s.srv = &http.Server{
			Handler:           s.handler,
			ReadHeaderTimeout: time.Duration(cfg.Server.ReadHeaderTimeout),
			IdleTimeout:       time.Duration(cfg.Server.IdleTimeout),
			// The server's own messages (refused TLS handshakes, a
			// handler's panic) in the structured log, not plain lines
			// between its JSON ones.
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			// No ReadTimeout or WriteTimeout: uploads and blob downloads
			// take as long as they take; the proxy ends only those that
			// stop moving (server.progressTimeout).
		}
		ln = netutil.LimitListener(ln, s.maxConns)
		if s.tls != nil {
			// HTTP/2 and HTTP/1.1 over TLS; the certificate is the
			// configuration's (GetConfigForClient), so no files here.
			s.srv.TLSConfig = s.tls
			go func() { errc <- s.srv.ServeTLS(ln, "", "") }()
		} else {
			go func() { errc <- s.srv.Serve(ln) }()
		}
		log.Info(s.name+" serving", "addr", ln.Addr().String(), "tls", s.tls != nil, "version", versionString(), "readOnly", cfg.ReadOnly)
	}
	var failed error
	select {
	case failed = <-errc:
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	for _, s := range servers {
		if err := s.srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
	}
	if failed != nil && !errors.Is(failed, http.ErrServerClosed) {
		return failed
	}
	return nil
}

// redisLog sends go-redis' own log lines to slog, at debug.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

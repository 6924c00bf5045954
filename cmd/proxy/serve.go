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

	"github.com/spf13/cobra"

	"github.com/manifold-proxy/manifold/config"
	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/proxy"
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
	p, err := proxy.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", string(cfg.Listen))
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

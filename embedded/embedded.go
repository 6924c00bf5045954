package embedded

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // access controller
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // storage driver
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"   // storage driver
	"github.com/manifold-proxy/manifold/upstream"
	"github.com/sirupsen/logrus"
)

// Options configure the embedded registry.
type Options struct {
	// Dir is the filesystem storage root. Empty means in-memory storage
	// (tests).
	Dir string
	// Addr to listen on. Default 127.0.0.1:0 (a free loopback port).
	// Ignored with Private.
	Addr string
	// Private listens on no address: only Registry.Transport reaches the
	// registry, at http://embedded.invalid. Default false.
	Private bool
	// Verbose keeps distribution's own request logs (logrus, on stderr).
	// Default false: they are discarded.
	Verbose bool
	// Htpasswd, when set, is an htpasswd file (bcrypt) whose users the
	// registry requires (HTTP basic auth). Default: no authentication.
	Htpasswd string
	// Wrap, when set, wraps the registry's handler (tests count requests
	// and inject faults around the real registry this way).
	Wrap func(http.Handler) http.Handler
}

// Registry is a running embedded registry.
type Registry struct {
	// URL is http://127.0.0.1:<port>, or http://embedded.invalid when
	// private.
	URL string
	// Transport reaches the registry: a plain transport on a loopback port,
	// the only way in when private.
	Transport http.RoundTripper
	srv       *http.Server
	ln        net.Listener
	app       *handlers.App
}

// Start starts the registry and returns when it accepts connections.
func Start(ctx context.Context, o Options) (*Registry, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	// distribution logs through logrus' standard logger and offers no
	// per-app logger from outside its internal packages.
	if !o.Verbose {
		logrus.SetOutput(io.Discard)
	} else if _, ok := logrus.StandardLogger().Formatter.(redacting); !ok {
		// Its request logs carry upload URLs with their _state tokens.
		logrus.SetFormatter(redacting{logrus.StandardLogger().Formatter})
	}
	cfg := &configuration.Configuration{}
	cfg.Log.Level = "error"
	// distribution fills these defaults in only when it parses YAML.
	cfg.Catalog.MaxEntries = 1000
	storage := configuration.Storage{
		"delete":      configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	if o.Dir == "" {
		storage["inmemory"] = configuration.Parameters{}
	} else {
		storage["filesystem"] = configuration.Parameters{"rootdirectory": o.Dir}
	}
	cfg.Storage = storage
	if o.Htpasswd != "" {
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "manifold-embedded", "path": o.Htpasswd}}
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	cfg.HTTP.Secret = hex.EncodeToString(secret)

	app := handlers.NewApp(ctx, cfg)
	var h http.Handler = app
	if o.Wrap != nil {
		h = o.Wrap(app)
	}
	var ln net.Listener
	var tr http.RoundTripper = http.DefaultTransport
	if o.Private {
		ml := newMemListener()
		ln, tr = ml, ml.transport()
	} else {
		tcp, err := net.Listen("tcp", o.Addr)
		if err != nil {
			return nil, fmt.Errorf("embedded registry: %w", err)
		}
		ln = tcp
	}
	r := &Registry{
		URL:       "http://" + ln.Addr().String(),
		Transport: tr,
		srv:       &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second},
		ln:        ln,
		app:       app,
	}
	go func() {
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logrus.WithError(err).Error("embedded registry stopped")
		}
	}()
	return r, nil
}

// Close stops the registry, letting requests in flight finish until ctx
// ends (at most 2 s when ctx has no deadline: Go's server otherwise waits 5 s
// for connections that never sent a request), then closes what is left.
func (r *Registry) Close(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	err := r.srv.Shutdown(ctx)
	if err != nil {
		err = r.srv.Close()
	}
	_ = r.app.Shutdown()
	return err
}

// redacting formats distribution's log entries through upstream.Redact.
type redacting struct{ inner logrus.Formatter }

func (f redacting) Format(e *logrus.Entry) ([]byte, error) {
	b, err := f.inner.Format(e)
	return []byte(upstream.Redact(string(b))), err
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // storage driver
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"   // storage driver
	"github.com/sirupsen/logrus"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/upstream"
)

// server is one HTTP server of the run, on a loopback port.
type server struct {
	URL string
	srv *http.Server
}

func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *server) close() { _ = s.srv.Close() }

// front counts the requests that reach the upstream and adds a latency to
// each, as a registry across a network has.
type front struct {
	next     http.Handler
	requests atomic.Int64
	delay    atomic.Int64 // nanoseconds
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if d := time.Duration(f.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	f.next.ServeHTTP(w, r)
}

// distribution starts distribution v3 on filesystem storage under dir; with
// remote set, in pull-through (proxy:) mode in front of it.
func distribution(ctx context.Context, dir, remote string) (http.Handler, error) {
	logrus.SetOutput(io.Discard)
	cfg := &configuration.Configuration{}
	cfg.Log.Level = "error"
	cfg.Catalog.MaxEntries = 1000
	cfg.Storage = configuration.Storage{
		"filesystem":  configuration.Parameters{"rootdirectory": dir},
		"delete":      configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	if remote != "" {
		cfg.Proxy.RemoteURL = remote
	}
	return handlers.NewApp(ctx, cfg), nil
}

// staticServer is the limit: a minimal Go server that answers every GET
// with the same bytes and the headers a registry sends.
func staticServer(body []byte, mediaType, digest string) http.Handler {
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{mediaType}
		h["Docker-Content-Digest"] = []string{digest}
		h["Content-Length"] = []string{length}
		h["Docker-Distribution-Api-Version"] = []string{"registry/2.0"}
		_, _ = w.Write(body)
	})
}

// manifold is the proxy in front of upstreamURL, as `proxy serve` builds
// it: resolver caches, an in-memory index store, the request log on (JSON,
// written to nowhere: its formatting is measured, not a disk), metrics on;
// with
// contentDir set, the content cache on the filesystem there.
func manifold(ctx context.Context, upstreamURL, contentDir string, client *upstream.Client) (*server, *content.Cache, error) {
	if client == nil {
		c, err := upstream.New(upstream.Options{URL: upstreamURL})
		if err != nil {
			return nil, nil, err
		}
		client = c
	}
	o := proxy.Options{
		Upstreams: []proxy.Upstream{{Client: client}},
		Cache:     resolve.CacheOptions{TTL: time.Minute},
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	if contentDir != "" {
		d, err := filesystem.FromParameters(map[string]any{"rootdirectory": contentDir})
		if err != nil {
			return nil, nil, err
		}
		c, err := content.New(ctx, content.Options{Driver: d, LocalRoot: contentDir})
		if err != nil {
			return nil, nil, err
		}
		o.Content = c
	}
	p, err := proxy.New(o)
	if err != nil {
		return nil, nil, err
	}
	s, err := serve(p)
	return s, o.Content, err
}

// settle waits for the content cache's fills to commit (they finish after
// their client is served).
func settle(c *content.Cache) {
	for i := 0; i < 1000 && c != nil && c.Stats.FillsInFlight.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// waitOK polls url until it answers 200, for servers that start in the
// background.
func waitOK(url string) error {
	for range 200 {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New(url + " did not answer 200")
}

func errStatus(url string, code int) error { return fmt.Errorf("GET %s: HTTP %d", url, code) }

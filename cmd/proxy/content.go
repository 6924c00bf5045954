package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	"github.com/manifold-proxy/manifold/config"
	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/store"
)

// openContent opens the content cache of cfg (cache.content) into opts,
// and returns its Close (nil when there is none). There is none with the
// embedded registry, whose content is local already. Without a store
// driver of their own, synthesized indexes are kept on the content cache's
// driver too (under their own prefix, with their own retention), so that a
// restart keeps serving them by digest.
func openContent(ctx context.Context, cfg *config.Config, opts *proxy.Options, log *slog.Logger) (func(), error) {
	cc := cfg.Cache.Content
	if len(cfg.Upstreams) == 0 || !*cc.Enabled {
		return nil, nil
	}
	name, params := cc.Driver, cc.Parameters
	if name == "" {
		name, params = "filesystem", map[string]any{"rootdirectory": filepath.Join(cfg.DataDir, "content")}
	}
	d, err := factory.Create(ctx, name, params)
	if err != nil {
		return nil, fmt.Errorf("cache.content.driver %q: %w", name, err)
	}
	o := content.Options{Driver: d, MaxBytes: int64(cc.MaxBytes), Logger: log}
	if name == "filesystem" {
		// Fills spool inside the driver's directory (commit is a rename)
		// and stored blobs are sent with sendfile.
		o.LocalRoot = fmt.Sprint(params["rootdirectory"])
	}
	c, err := content.New(ctx, o)
	if err != nil {
		return nil, err
	}
	opts.Content = c
	if cfg.Store.Driver == "" {
		opts.Store = store.Tiered{opts.Store, store.NewDriver(d)}
	}
	log.Info("content cache", "driver", name, "maxBytes", cc.MaxBytes, "stored", c.Bytes(), "entries", c.Len())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := c.Close(sctx); err != nil {
			log.Warn("content cache close", "error", err)
		}
	}, nil
}

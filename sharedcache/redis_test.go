package sharedcache_test

import (
	"context"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/sharedcache"
)

func TestRedis(t *testing.T) {
	t.Parallel()
	srv := regtest.StartRedis(t)
	r, err := sharedcache.New(sharedcache.Options{Addrs: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if _, ok, err := r.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("empty: %v %v", ok, err)
	}
	if err := r.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if b, ok, err := r.Get(ctx, "k"); !ok || err != nil || string(b) != "v" {
		t.Fatalf("get: %q %v %v", b, ok, err)
	}
	unlock, ok, err := r.Lock(ctx, "lock", time.Minute)
	if !ok || err != nil {
		t.Fatalf("lock: %v %v", ok, err)
	}
	if _, ok, _ := r.Lock(ctx, "lock", time.Minute); ok {
		t.Error("a held lock was taken twice")
	}
	unlock()
	if u, ok, _ := r.Lock(ctx, "lock", time.Minute); !ok {
		t.Error("a released lock could not be taken")
	} else {
		u()
	}
	if err := r.Incr(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := r.Get(ctx, "n"); string(b) != "1" {
		t.Errorf("incr: %q", b)
	}
	// Redis gone: every call fails fast, and says so.
	srv.Stop()
	start := time.Now()
	if _, _, err := r.Get(ctx, "k"); err == nil {
		t.Error("get on a dead redis succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a dead redis took %s to fail", d)
	}
}

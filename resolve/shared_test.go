package resolve_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/sharedcache"
	"github.com/manifold-proxy/manifold/upstream"
)

// replica is one proxy replica's resolver on a shared Redis.
func replica(t *testing.T, r *reg, redis string) (*resolve.Resolver, *resolve.Cache) {
	t.Helper()
	sh, err := sharedcache.New(sharedcache.Options{Addrs: []string{redis}})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := upstream.New(upstream.Options{URL: "http://" + r.host})
	cache := resolve.NewCache(c, resolve.CacheOptions{Shared: sh, SharedPrefix: "manifold:" + r.host + ":"})
	t.Cleanup(func() {
		cache.Close()
		_ = sh.Close()
	})
	return resolve.New(cache, resolve.Options{}), cache
}

// TestSharedCache: three replicas on one Redis. A cold burst spread over
// them costs the upstream one tag list and one read per member; an
// invalidation on one is seen by all; Redis down, each keeps serving.
func TestSharedCache(t *testing.T) {
	t.Parallel()
	srv := regtest.StartRedis(t)
	r := newReg(t)
	ctx := context.Background()
	for _, p := range []string{"linux/amd64", "linux/arm64/v8", "linux/arm/v7"} {
		r.push(t, "1.0-"+map[string]string{"linux/amd64": "linux-amd64", "linux/arm64/v8": "linux-arm64", "linux/arm/v7": "linux-arm-v7"}[p], p)
	}
	var resolvers []*resolve.Resolver
	var caches []*resolve.Cache
	for range 3 {
		res, c := replica(t, r, srv.Addr)
		resolvers, caches = append(resolvers, res), append(caches, c)
	}
	// Warm the token of each (one ping and no more), then count.
	for _, c := range caches {
		_, _ = c.Head(ctx, "app", "no-such-tag")
	}
	r.requests.Store(0)
	r.mu.Lock()
	r.paths = nil
	r.mu.Unlock()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			g, err := resolvers[i%3].Resolve(ctx, "app", "1.0", index.Rule{})
			if err != nil || g.Outcome != resolve.Index || len(g.Result.Entries) != 3 {
				t.Errorf("replica %d: %v %v", i%3, g, err)
			}
		})
	}
	wg.Wait()
	// One tag list, and per member one manifest read by tag (the others
	// read it by digest: manifests and configs by digest are each
	// replica's own, until the content store shares them), plus configs.
	tags := r.count("/tags/list")
	if tags != 1 {
		t.Errorf("a cold burst over 3 replicas listed the tags %d times, want 1", tags)
	}
	if n := r.count("/manifests/1.0-"); n != 3 {
		t.Errorf("member tags read %d times over 3 replicas, want 3", n)
	}
	var hits int64
	for _, c := range caches {
		hits += c.SharedStats.Hits.Load()
	}
	if hits == 0 {
		t.Error("no replica answered from the shared cache")
	}

	// A push through replica 0: every replica sees it at once.
	r.push(t, "1.0-linux-s390x", "linux/s390x")
	caches[0].Invalidate("app")
	deadline := time.Now().Add(5 * time.Second)
	for _, res := range resolvers[1:] {
		for {
			g, err := res.Resolve(ctx, "app", "1.0", index.Rule{})
			if err == nil && len(g.Result.Entries) == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("another replica still serves %v %v after the push", g, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	fresh, _ := replica(t, r, srv.Addr)
	if g, err := fresh.Resolve(ctx, "app", "1.0", index.Rule{}); err != nil || len(g.Result.Entries) != 4 {
		t.Errorf("after an invalidation, a replica reading the shared cache: %v %v", g, err)
	}

	// Redis down: pulls go on.
	srv.Stop()
	late, lateCache := replica(t, r, srv.Addr)
	if g, err := late.Resolve(ctx, "app", "1.0", index.Rule{}); err != nil || g.Outcome != resolve.Index {
		t.Errorf("Redis down: %v %v", g, err)
	}
	if lateCache.SharedStats.Errors.Load() == 0 {
		t.Error("the Redis failure was not counted")
	}
}

package resolve_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/sharedcache"
	"github.com/manifold-proxy/manifold/upstream"
)

// replica is one proxy replica's resolver on a shared Redis.
func replica(t *testing.T, r *reg, redis string, log ...*regtest.Log) (*resolve.Resolver, *resolve.Cache) {
	t.Helper()
	sh, err := sharedcache.New(sharedcache.Options{Addrs: []string{redis}})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := upstream.New(upstream.Options{URL: "http://" + r.host})
	o := resolve.CacheOptions{Shared: sh, SharedPrefix: "manifold:" + r.host + ":"}
	if len(log) > 0 {
		o.Logger = log[0].Logger()
	}
	cache := resolve.NewCache(c, o)
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
	// One tag list, and per member one manifest read by tag, one by
	// digest and one config, for the three replicas together.
	tags := r.count("/tags/list")
	if tags != 1 {
		t.Errorf("a cold burst over 3 replicas listed the tags %d times, want 1", tags)
	}
	if n := r.count("/manifests/1.0-"); n != 3 {
		t.Errorf("member tags read %d times over 3 replicas, want 3", n)
	}
	for _, what := range []string{"/manifests/sha256:", "/blobs/sha256:"} {
		if n := r.count(what); n > 3 {
			t.Errorf("%s… read %d times over 3 replicas, want at most 3 (one per member, shared)", what, n)
		}
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
	var log regtest.Log
	late, lateCache := replica(t, r, srv.Addr, &log)
	for range 3 {
		if g, err := late.Resolve(ctx, "app", "1.0", index.Rule{}); err != nil || g.Outcome != resolve.Index {
			t.Errorf("Redis down: %v %v", g, err)
		}
	}
	if lateCache.SharedStats.Errors.Load() == 0 {
		t.Error("the Redis failure was not counted")
	}
	// One warning per part of the shared cache (tags, heads, catalog,
	// manifests, blobs), not one per request.
	if n := strings.Count(log.String(), "shared cache failed"); n == 0 || n > 5 {
		t.Errorf("%d warnings for the Redis failure:\n%s", n, log.String())
	}
}

// memStore is what a Redis holds, in memory; memShared is one replica's
// connection to it, with hooks that let a test interleave another
// replica's work at a chosen point.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

type memShared struct {
	s *memStore
	// afterGet runs once Get has read key (its answer is already what
	// the store held), before Get returns; lockBusy, when it returns
	// true, makes Lock answer that another holder has key.
	afterGet func(key string)
	lockBusy func(key string) bool
}

func (c *memShared) Get(_ context.Context, key string) ([]byte, bool, error) {
	c.s.mu.Lock()
	b, ok := c.s.m[key]
	c.s.mu.Unlock()
	if c.afterGet != nil {
		c.afterGet(key)
	}
	return b, ok, nil
}

func (c *memShared) Set(_ context.Context, key string, b []byte, _ time.Duration) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.m[key] = b
	return nil
}

func (c *memShared) Incr(_ context.Context, key string) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	n, _ := strconv.Atoi(string(c.s.m[key]))
	c.s.m[key] = []byte(strconv.Itoa(n + 1))
	return nil
}

func (c *memShared) Lock(_ context.Context, key string, _ time.Duration) (func(), bool, error) {
	if c.lockBusy != nil && c.lockBusy(key) {
		return nil, false, nil
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if _, held := c.s.m[key]; held {
		return nil, false, nil
	}
	c.s.m[key] = []byte("held")
	return func() {
		c.s.mu.Lock()
		defer c.s.mu.Unlock()
		delete(c.s.m, key)
	}, true, nil
}

func (c *memShared) Publish(context.Context, string, string) error { return nil }

func (c *memShared) Subscribe(string, func(string)) func() { return func() {} }

// TestSharedAnswerBeforeLock: replica B misses a tag's answer in the
// shared cache, and replica A stores it and lets its lock go before B
// takes the lock — B on its first look, or B while it waits for A. B then
// holds a free lock, but the answer is there: it must read it, not fetch
// the tag from the upstream a second time.
func TestSharedAnswerBeforeLock(t *testing.T) {
	t.Parallel()
	const tag = "1.0-linux-amd64"
	for _, tc := range []struct {
		name     string
		busyOnce bool // B's first Lock finds A holding it: B waits
		onGet    int  // A runs after B's n-th read of the tag's key
	}{
		{"lock after a miss", false, 1},
		{"lock while waiting", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newReg(t)
			r.push(t, tag, "linux/amd64")
			r.mu.Lock()
			r.paths = nil // the push's own requests
			r.mu.Unlock()
			ctx := context.Background()
			c, _ := upstream.New(upstream.Options{URL: "http://" + r.host})
			st := &memStore{m: map[string][]byte{}}
			opts := func(sh resolve.Shared) resolve.CacheOptions {
				return resolve.CacheOptions{Shared: sh, SharedPrefix: "manifold:test:"}
			}
			a := resolve.NewCache(c, opts(&memShared{s: st}))
			t.Cleanup(a.Close)
			var gets atomic.Int32
			var busy atomic.Bool
			busy.Store(tc.busyOnce)
			isTag := func(key string) bool { return strings.Contains(key, ":heads:") && !strings.HasSuffix(key, ":lock") }
			b := resolve.NewCache(c, opts(&memShared{s: st,
				afterGet: func(key string) {
					if isTag(key) && int(gets.Add(1)) == tc.onGet {
						if _, err := a.Head(ctx, "app", tag); err != nil {
							t.Errorf("replica A: %v", err)
						}
					}
				},
				lockBusy: func(key string) bool { return strings.Contains(key, ":heads:") && busy.Swap(false) },
			}))
			t.Cleanup(b.Close)
			if _, err := b.Head(ctx, "app", tag); err != nil {
				t.Fatal(err)
			}
			if n := r.count("/manifests/" + tag); n != 1 {
				t.Errorf("the tag was read %d times upstream by two replicas on one shared cache, want 1", n)
			}
			if b.SharedStats.Hits.Load() != 1 {
				t.Errorf("replica B: %d shared-cache hits, want 1 (A's answer)", b.SharedStats.Hits.Load())
			}
		})
	}
}

// TestSharedContentChecked: a manifest another replica left in the shared
// cache is checked against its digest; bytes that do not hash to it (a
// tampered or corrupted entry) are refused, never served.
func TestSharedContentChecked(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	d := r.push(t, "1.0-linux-amd64", "linux/amd64")
	c, _ := upstream.New(upstream.Options{URL: "http://" + r.host})
	st := &memStore{m: map[string][]byte{}}
	opts := resolve.CacheOptions{Shared: &memShared{s: st}, SharedPrefix: "manifold:test:"}
	ctx := context.Background()
	a := resolve.NewCache(c, opts)
	t.Cleanup(a.Close)
	good, _, err := a.Manifest(ctx, "app", d, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	tampered := 0
	for k, v := range st.m {
		if strings.Contains(k, ":manifests:") {
			st.m[k] = bytes.Replace(v, []byte(`"b":"`), []byte(`"b":"e30K`), 1) // "{}\n" in front
			tampered++
		}
	}
	st.mu.Unlock()
	if tampered != 1 {
		t.Fatalf("%d shared manifest entries, want 1", tampered)
	}
	b := resolve.NewCache(c, opts)
	t.Cleanup(b.Close)
	got, _, err := b.Manifest(ctx, "app", d, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "hashes to") || bytes.Equal(got, good) && err == nil {
		t.Errorf("a tampered shared entry: %d bytes, %v; want it refused", len(got), err)
	}
}

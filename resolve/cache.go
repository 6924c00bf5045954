package resolve

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// CacheOptions configure NewCache.
type CacheOptions struct {
	// TTL of tag lists and tag → descriptor answers. Default 30s.
	TTL time.Duration
	// StaleWhileRevalidate: after TTL, an answer is still served for this
	// long while it is refreshed in the background. Default 0 (off).
	StaleWhileRevalidate time.Duration
	// StaleIfError: when a refresh fails with a network error, a 5xx or a
	// 429, the last good answer is served for this long after its TTL.
	// Default 0 (off).
	StaleIfError time.Duration
	// Entries bounds each of the caches. Default 10000.
	Entries int
	// FetchTimeout bounds one upstream fetch shared by concurrent callers.
	// Default 60s.
	FetchTimeout time.Duration
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// CacheStats count cache outcomes; read them with atomic loads.
type CacheStats struct {
	Hits, Misses, Stale, StaleIfError, Fetches atomic.Int64
}

// Cache decorates a Source: mutable answers (Tags, Head by tag) are cached
// for a TTL, immutable ones (by digest) until evicted. Concurrent misses for
// one key share a single upstream fetch.
type Cache struct {
	src       Source
	o         CacheOptions
	tags      *memo[[]string]
	heads     *memo[v1.Descriptor]
	manifests *memo[manifestBytes]
	blobs     *memo[[]byte]
	Stats     CacheStats
}

var _ Source = (*Cache)(nil)

type manifestBytes struct {
	b  []byte
	mt types.MediaType
}

// NewCache wraps src.
func NewCache(src Source, o CacheOptions) *Cache {
	if o.TTL <= 0 {
		o.TTL = 30 * time.Second
	}
	if o.Entries <= 0 {
		o.Entries = 10000
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 60 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache{src: src, o: o}
	forever := CacheOptions{TTL: 1<<63 - 1, Entries: o.Entries, FetchTimeout: o.FetchTimeout, Now: o.Now}
	c.tags = newMemo[[]string](o, &c.Stats)
	c.heads = newMemo[v1.Descriptor](o, &c.Stats)
	c.manifests = newMemo[manifestBytes](forever, &c.Stats)
	c.blobs = newMemo[[]byte](forever, &c.Stats)
	return c
}

// Tags implements Source.
func (c *Cache) Tags(ctx context.Context, repo string) ([]string, error) {
	return c.tags.get(ctx, repo, func(ctx context.Context) ([]string, error) { return c.src.Tags(ctx, repo) })
}

// Head implements Source. Heads by digest are immutable and cached like
// manifests.
func (c *Cache) Head(ctx context.Context, repo, ref string) (v1.Descriptor, error) {
	return c.heads.get(ctx, repo+"\x00"+ref, func(ctx context.Context) (v1.Descriptor, error) { return c.src.Head(ctx, repo, ref) })
}

// Manifest implements Source.
func (c *Cache) Manifest(ctx context.Context, repo string, dgst v1.Hash, limit int64) ([]byte, types.MediaType, error) {
	m, err := c.manifests.get(ctx, repo+"@"+dgst.String(), func(ctx context.Context) (manifestBytes, error) {
		b, mt, err := c.src.Manifest(ctx, repo, dgst, limit)
		return manifestBytes{b, mt}, err
	})
	return m.b, m.mt, err
}

// Blob implements Source.
func (c *Cache) Blob(ctx context.Context, repo string, dgst v1.Hash, limit int64) ([]byte, error) {
	return c.blobs.get(ctx, repo+"@"+dgst.String(), func(ctx context.Context) ([]byte, error) { return c.src.Blob(ctx, repo, dgst, limit) })
}

// Invalidate drops what is cached about repo's tags (after a push or delete
// through the proxy), so the next read sees the change.
func (c *Cache) Invalidate(repo string) {
	c.tags.lru.Remove(repo)
	for _, k := range c.heads.lru.Keys() {
		if len(k) > len(repo) && k[:len(repo)+1] == repo+"\x00" {
			c.heads.lru.Remove(k)
		}
	}
}

type entry[V any] struct {
	v  V
	at time.Time
	// err is a definitive answer (a 4xx such as 404), cached like a value.
	err error
}

type memo[V any] struct {
	lru   *lru.Cache[string, *entry[V]]
	o     CacheOptions
	sf    singleflight.Group
	stats *CacheStats
	// keepErrors caches definitive errors (404...) for the TTL. Immutable
	// caches do not: a digest that is absent now may be pushed later.
	keepErrors bool
}

func newMemo[V any](o CacheOptions, stats *CacheStats) *memo[V] {
	l, _ := lru.New[string, *entry[V]](o.Entries)
	return &memo[V]{lru: l, o: o, stats: stats, keepErrors: o.TTL < 1<<63-1}
}

// definitive errors are answers, not failures: cache them.
func definitive(err error) bool {
	s := statusOf(err)
	return s >= 400 && s < 500 && s != 408 && s != 429
}

func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) {
		return sc.StatusCode()
	}
	return 0
}

func (m *memo[V]) get(ctx context.Context, key string, fetch func(context.Context) (V, error)) (V, error) {
	now := m.o.Now()
	e, ok := m.lru.Get(key)
	if ok {
		age := now.Sub(e.at)
		if age < m.o.TTL {
			m.stats.Hits.Add(1)
			return e.v, e.err
		}
		if age < m.o.TTL+m.o.StaleWhileRevalidate {
			m.stats.Stale.Add(1)
			go m.refresh(context.WithoutCancel(ctx), key, fetch) //nolint:errcheck // background refresh
			return e.v, e.err
		}
	}
	m.stats.Misses.Add(1)
	v, err := m.refresh(ctx, key, fetch)
	if err != nil && !definitive(err) && ok && e.err == nil && now.Sub(e.at) < m.o.TTL+m.o.StaleIfError {
		m.stats.StaleIfError.Add(1)
		return e.v, nil
	}
	return v, err
}

// refresh fetches key once for all concurrent callers. The fetch runs on a
// context detached from any one caller (a client hanging up must not fail
// the others), bounded by FetchTimeout; each caller still stops waiting
// when its own context ends.
func (m *memo[V]) refresh(ctx context.Context, key string, fetch func(context.Context) (V, error)) (V, error) {
	ch := m.sf.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.o.FetchTimeout)
		defer cancel()
		m.stats.Fetches.Add(1)
		v, err := fetch(fctx)
		if err == nil || (m.keepErrors && definitive(err)) {
			m.lru.Add(key, &entry[V]{v: v, at: m.o.Now(), err: err})
		}
		return v, err
	})
	select {
	case r := <-ch:
		v, _ := r.Val.(V)
		return v, r.Err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

package resolve

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/manifold-proxy/manifold/internal/flight"
	"github.com/manifold-proxy/manifold/upstream"
)

// Defaults of CacheOptions.
const (
	// DefaultTTL is how long tag lists and tag → descriptor answers are
	// kept.
	DefaultTTL = 30 * time.Second
	// DefaultEntries bounds each of the caches.
	DefaultEntries = 10000
)

// CacheOptions configure NewCache.
type CacheOptions struct {
	// TTL of tag lists and tag → descriptor answers. Default DefaultTTL.
	TTL time.Duration
	// StaleWhileRevalidate: after TTL, an answer is still served for this
	// long while it is refreshed in the background. Default 0 (off).
	StaleWhileRevalidate time.Duration
	// StaleIfError: when a refresh fails with a network error, a 5xx or a
	// 429, the last good answer is served for this long after its TTL.
	// Default 0 (off).
	StaleIfError time.Duration
	// Entries bounds each of the caches. Default DefaultEntries.
	Entries int
	// FetchTimeout bounds one upstream fetch shared by concurrent callers.
	// Default upstream.DefaultTimeout.
	FetchTimeout time.Duration
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// CacheStats count cache outcomes; read them with atomic loads.
type CacheStats struct {
	Hits, Misses, Stale, StaleIfError, Fetches atomic.Int64
}

// Cache decorates a Source: mutable answers (Tags, Head by tag) are cached
// for a TTL; concurrent misses for one key share a single upstream fetch.
// Manifests and configs by digest are fetched once per concurrent burst
// but not kept: the Resolver keeps the facts it parses from them, which is
// much smaller than the bytes.
type Cache struct {
	src         Source
	o           CacheOptions
	tags        *memo[[]string]
	heads       *memo[v1.Descriptor]
	digestHeads *memo[v1.Descriptor]
	manifests   *memo[manifestBytes]
	blobs       *memo[[]byte]
	catalog     *memo[[]string]
	Stats       CacheStats

	mu   sync.Mutex
	gens map[string]uint64 // repository → invalidation generation
}

var _ Source = (*Cache)(nil)

type manifestBytes struct {
	b  []byte
	mt types.MediaType
}

// NewCache wraps src.
func NewCache(src Source, o CacheOptions) *Cache {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Entries <= 0 {
		o.Entries = DefaultEntries
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = upstream.DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache{src: src, o: o, gens: map[string]uint64{}}
	c.tags = newMemo[[]string](o, &c.Stats, true)
	c.heads = newMemo[v1.Descriptor](o, &c.Stats, true)
	// Digests asked for by clients live apart, so that random digests
	// cannot evict the members' tag answers.
	c.digestHeads = newMemo[v1.Descriptor](o, &c.Stats, true)
	c.manifests = newMemo[manifestBytes](o, &c.Stats, false)
	c.blobs = newMemo[[]byte](o, &c.Stats, false)
	c.catalog = newMemo[[]string](o, &c.Stats, true)
	return c
}

var _ Versioned = (*Cache)(nil)

// Generation implements Versioned.
func (c *Cache) Generation(repo string) uint64 { return c.gen(repo) }

// Now implements Versioned.
func (c *Cache) Now() time.Time { return c.o.Now() }

func (c *Cache) gen(repo string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gens[repo]
}

// Tags implements Source.
func (c *Cache) Tags(ctx context.Context, repo string) ([]string, error) {
	g := c.gen(repo)
	return c.tags.get(ctx, repo, g, func() bool { return c.gen(repo) == g },
		func(ctx context.Context) ([]string, error) { return c.src.Tags(ctx, repo) })
}

// Head implements Source.
func (c *Cache) Head(ctx context.Context, repo, ref string) (v1.Descriptor, error) {
	m := c.heads
	if strings.Contains(ref, ":") {
		m = c.digestHeads
	}
	g := c.gen(repo)
	return m.get(ctx, repo+"\x00"+ref, g, func() bool { return c.gen(repo) == g },
		func(ctx context.Context) (v1.Descriptor, error) { return c.src.Head(ctx, repo, ref) })
}

var _ TagGetter = (*Cache)(nil)

// GetTag implements TagGetter: the source reads the manifest by tag (when
// it can; else a HEAD and a GET by digest), and the descriptor answers
// later Heads of the tag for the TTL.
func (c *Cache) GetTag(ctx context.Context, repo, tag string, limit int64) (v1.Descriptor, []byte, error) {
	var b []byte
	g := c.gen(repo)
	d, err := c.heads.get(ctx, repo+"\x00"+tag, g, func() bool { return c.gen(repo) == g },
		func(ctx context.Context) (v1.Descriptor, error) {
			tg, ok := c.src.(TagGetter)
			if !ok {
				d, err := c.src.Head(ctx, repo, tag)
				return d, err
			}
			d, mb, err := tg.GetTag(ctx, repo, tag, limit)
			b = mb
			return d, err
		})
	if err != nil {
		return d, nil, err
	}
	if b != nil { // this call's own fetch, finished
		return d, b, nil
	}
	// Answered from the cache, or by a HEAD: read the bytes by digest.
	b, mt, err := c.Manifest(ctx, repo, d.Digest, limit)
	if err == nil && d.MediaType == "" {
		d.MediaType = mt
	}
	return d, b, err
}

// LastHead implements TagGetter.
func (c *Cache) LastHead(repo, tag string) (v1.Descriptor, bool) {
	e, ok := c.heads.lru.Peek(repo + "\x00" + tag)
	if !ok || e.err != nil {
		return v1.Descriptor{}, false
	}
	return e.v, true
}

// Cataloger is a Source that lists its repositories (upstream.Client).
type Cataloger interface {
	Catalog(ctx context.Context) ([]string, error)
}

// ErrNoCatalog is returned by Catalog when the source cannot list its
// repositories.
var ErrNoCatalog = errors.New("the source has no catalog")

// Catalog lists the source's repositories with the TTL semantics of tag
// lists: one crawl of every page per TTL shared by concurrent callers,
// stale-while-revalidate, and the last good list when the source fails
// (stale-if-error).
func (c *Cache) Catalog(ctx context.Context) ([]string, error) {
	cat, ok := c.src.(Cataloger)
	if !ok {
		return nil, ErrNoCatalog
	}
	return c.catalog.get(ctx, "catalog", 0, nil, cat.Catalog)
}

// Manifest implements Source.
func (c *Cache) Manifest(ctx context.Context, repo string, dgst v1.Hash, limit int64) ([]byte, types.MediaType, error) {
	m, err := c.manifests.get(ctx, repo+"@"+dgst.String(), 0, nil, func(ctx context.Context) (manifestBytes, error) {
		b, mt, err := c.src.Manifest(ctx, repo, dgst, limit)
		return manifestBytes{b, mt}, err
	})
	return m.b, m.mt, err
}

// Blob implements Source.
func (c *Cache) Blob(ctx context.Context, repo string, dgst v1.Hash, limit int64) ([]byte, error) {
	return c.blobs.get(ctx, repo+"@"+dgst.String(), 0, nil, func(ctx context.Context) ([]byte, error) { return c.src.Blob(ctx, repo, dgst, limit) })
}

// Invalidate drops what is cached about repo's tags (after a push or delete
// through the proxy), so the next read sees the change. A fetch already
// under way when it is called is neither stored nor shared with later
// readers.
func (c *Cache) Invalidate(repo string) {
	c.mu.Lock()
	c.gens[repo]++
	c.mu.Unlock()
	c.tags.lru.Remove(repo)
	for _, k := range c.heads.lru.Keys() {
		if strings.HasPrefix(k, repo+"\x00") {
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
	sf    flight.Group[V]
	stats *CacheStats
	// keep stores answers for the TTL; without it the memo only shares
	// concurrent fetches.
	keep bool
}

func newMemo[V any](o CacheOptions, stats *CacheStats, keep bool) *memo[V] {
	n := o.Entries
	if !keep {
		n = 1
	}
	l, _ := lru.New[string, *entry[V]](n)
	return &memo[V]{lru: l, o: o, stats: stats, keep: keep}
}

// get answers key from the cache or fetches it. gen is the generation of
// what key depends on, and current reports whether it is still the
// generation: a fetch that started before an invalidation is neither
// stored nor joined by callers that come after it.
func (m *memo[V]) get(ctx context.Context, key string, gen uint64, current func() bool, fetch func(context.Context) (V, error)) (V, error) {
	now := m.o.Now()
	e, ok := m.lru.Get(key)
	if ok && m.keep {
		age := now.Sub(e.at)
		if age < m.o.TTL {
			m.stats.Hits.Add(1)
			recordFresh(ctx, e.at.Add(m.o.TTL))
			return e.v, e.err
		}
		if age < m.o.TTL+m.o.StaleWhileRevalidate {
			m.stats.Stale.Add(1)
			recordStale(ctx)
			// In the background: a waiter that never leaves, so the
			// refresh completes (bounded by FetchTimeout).
			go m.refresh(context.WithoutCancel(ctx), key, gen, current, fetch) //nolint:errcheck // background refresh
			return e.v, e.err
		}
	}
	m.stats.Misses.Add(1)
	v, err := m.refresh(ctx, key, gen, current, fetch)
	if err != nil && !upstream.IsDefinitive(err) && ok && e.err == nil && now.Sub(e.at) < m.o.TTL+m.o.StaleIfError {
		m.stats.StaleIfError.Add(1)
		recordStale(ctx)
		return e.v, nil
	}
	if m.keep {
		// Stored now (or not at all, when an invalidation came first; the
		// generation check of the kept resolution covers that).
		recordFresh(ctx, now.Add(m.o.TTL))
	}
	return v, err
}

// refresh fetches key once for all concurrent callers (internal/flight):
// the fetch runs detached from any one caller (a client hanging up must not
// fail the others), bounded by FetchTimeout, and is cancelled when every
// caller waiting for it has gone.
func (m *memo[V]) refresh(ctx context.Context, key string, gen uint64, current func() bool, fetch func(context.Context) (V, error)) (V, error) {
	return m.sf.Do(ctx, key+"\x00"+strconv.FormatUint(gen, 10), func(ctx context.Context) (V, error) {
		fctx, cancel := context.WithTimeout(ctx, m.o.FetchTimeout)
		defer cancel()
		m.stats.Fetches.Add(1)
		v, err := fetch(fctx)
		if m.keep && (err == nil || upstream.IsDefinitive(err)) && (current == nil || current()) {
			m.lru.Add(key, &entry[V]{v: v, at: m.o.Now(), err: err})
		}
		return v, err
	})
}

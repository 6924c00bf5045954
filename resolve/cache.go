package resolve

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
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
	// Shared, when set, is a cache the replicas share (Redis): tag lists
	// and tag → descriptor answers fetched by one replica serve all, with
	// the same TTL semantics, and one fetch per answer runs across the
	// fleet at a time. Default: none.
	Shared Shared
	// SharedPrefix names this upstream in the shared cache's keys
	// (e.g. "manifold:registry.example.com:"). Required with Shared.
	SharedPrefix string
	// Logger receives a warning when the shared cache fails (at most one
	// per part of it every few seconds: a failed shared cache is left
	// alone that long). Default: silent.
	Logger *slog.Logger
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
	// SharedStats count the shared cache's use (CacheOptions.Shared).
	SharedStats SharedStats
	unsubscribe func()

	mu   sync.Mutex
	gens map[string]uint64 // repository → invalidation generation
}

var _ Source = (*Cache)(nil)

type manifestBytes struct {
	b  []byte
	mt types.MediaType
}

// manifestBytes travel through the shared cache as JSON.
type manifestJSON struct {
	B  []byte          `json:"b"`
	MT types.MediaType `json:"mt"`
}

func (m manifestBytes) MarshalJSON() ([]byte, error) {
	return json.Marshal(manifestJSON{m.b, m.mt})
}

func (m *manifestBytes) UnmarshalJSON(b []byte) error {
	var j manifestJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	m.b, m.mt = j.B, j.MT
	return nil
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
	if o.Shared != nil {
		c.tags.sh = c.space("tags:")
		c.heads.sh = c.space("heads:")
		c.catalog.sh = c.space("catalog:")
		// Content by digest too: one replica reads a member's manifest
		// and config for the fleet (checked against the digest when
		// read back: the shared cache is not trusted with bytes).
		c.manifests.sh = c.space("manifests:")
		c.blobs.sh = c.space("blobs:")
		// A push or delete through any replica reaches every replica's
		// local cache at once, not after its TTL.
		c.unsubscribe = o.Shared.Subscribe(o.SharedPrefix+"invalidate", c.forget)
	}
	return c
}

// space is one memo's part of the shared cache. Keys live under their
// repository's epoch, which Invalidate moves.
func (c *Cache) space(kind string) *sharedSpace {
	log := c.o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &sharedSpace{s: c.o.Shared, prefix: c.o.SharedPrefix + kind, stats: &c.SharedStats, log: log,
		epoch: func(ctx context.Context, key string) (string, error) {
			repo, _, _ := strings.Cut(key, "\x00")
			if kind == "catalog:" {
				return "0", nil
			}
			b, ok, err := c.o.Shared.Get(ctx, epochKey(c.o.SharedPrefix, repo))
			return parseEpoch(b, ok), err
		}}
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

// TagsFetched is when the cached tag list of repo was fetched (by this
// replica or, with a shared cache, by the one that fetched it).
func (c *Cache) TagsFetched(repo string) (time.Time, bool) {
	e, ok := c.tags.lru.Peek(repo)
	if !ok {
		return time.Time{}, false
	}
	return e.at, true
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
	if err == nil {
		err = checkContent(m.b, dgst, limit)
	}
	return m.b, m.mt, err
}

// Blob implements Source.
func (c *Cache) Blob(ctx context.Context, repo string, dgst v1.Hash, limit int64) ([]byte, error) {
	b, err := c.blobs.get(ctx, repo+"@"+dgst.String(), 0, nil, func(ctx context.Context) ([]byte, error) { return c.src.Blob(ctx, repo, dgst, limit) })
	if err == nil {
		err = checkContent(b, dgst, limit)
	}
	return b, err
}

// checkContent: bytes cached by digest (here or, through the shared
// cache, by another replica) hash to it and are within limit.
func checkContent(b []byte, dgst v1.Hash, limit int64) error {
	if limit > 0 && int64(len(b)) > limit {
		return fmt.Errorf("%s is %d bytes, %w of %d bytes", dgst, len(b), upstream.ErrTooLarge, limit)
	}
	var h hash.Hash
	switch dgst.Algorithm {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return nil // the source verified what it could
	}
	h.Write(b)
	if got := hex.EncodeToString(h.Sum(nil)); got != dgst.Hex {
		return fmt.Errorf("cached content for %s hashes to %s:%s", dgst, dgst.Algorithm, got)
	}
	return nil
}

// Invalidate drops what is cached about repo's tags (after a push or delete
// through the proxy), so the next read sees the change. A fetch already
// under way when it is called is neither stored nor shared with later
// readers.
func (c *Cache) Invalidate(repo string) {
	c.forget(repo)
	if sp := c.tags.sh; sp.usable() {
		// Every replica forgets at once: the repository's shared keys
		// move, and the others drop their local answers.
		ctx, cancel := context.WithTimeout(context.Background(), c.o.FetchTimeout)
		defer cancel()
		if err := sp.s.Incr(ctx, epochKey(c.o.SharedPrefix, repo)); err != nil {
			sp.failed(ctx, err)
		} else if err := sp.s.Publish(ctx, c.o.SharedPrefix+"invalidate", repo); err != nil {
			sp.failed(ctx, err)
		}
	}
}

// Close stops listening to the other replicas' invalidations.
func (c *Cache) Close() {
	if c.unsubscribe != nil {
		c.unsubscribe()
	}
}

// forget drops what this replica's cache knows about repo's tags.
func (c *Cache) forget(repo string) {
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
	lru *lru.Cache[string, *entry[V]]
	o   CacheOptions
	sf  flight.Group[*entry[V]]
	// sh, when set, is the shared cache of these answers.
	sh    *sharedSpace
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
	fresh, err := m.refresh(ctx, key, gen, current, fetch)
	if err != nil {
		if ok && e.err == nil && now.Sub(e.at) < m.o.TTL+m.o.StaleIfError {
			m.stats.StaleIfError.Add(1)
			recordStale(ctx)
			return e.v, nil
		}
		var zero V
		return zero, err
	}
	if m.keep {
		recordFresh(ctx, fresh.at.Add(m.o.TTL))
	}
	return fresh.v, fresh.err
}

// refresh fetches key once for all concurrent callers (internal/flight):
// the fetch runs detached from any one caller (a client hanging up must not
// fail the others), bounded by FetchTimeout, and is cancelled when every
// caller waiting for it has gone. The error is a failure (network, 5xx,
// 429); a definitive answer (a 404) is the entry's err.
func (m *memo[V]) refresh(ctx context.Context, key string, gen uint64, current func() bool, fetch func(context.Context) (V, error)) (*entry[V], error) {
	return m.sf.Do(ctx, key+"\x00"+strconv.FormatUint(gen, 10), func(ctx context.Context) (*entry[V], error) {
		fctx, cancel := context.WithTimeout(ctx, m.o.FetchTimeout)
		defer cancel()
		e, err := m.fetchEntry(fctx, key, fetch)
		if err == nil && m.keep && (current == nil || current()) {
			m.lru.Add(key, e)
		}
		return e, err
	})
}

// fetchEntry fetches key: from the shared cache when another replica
// fetched it within the TTL, else from the upstream — by this replica when
// it holds the fleet-wide lock for key (and then for every replica), or
// after waiting for the holder's answer. A shared cache that fails is left
// alone for a while: the upstream answers, as for a single replica.
func (m *memo[V]) fetchEntry(ctx context.Context, key string, fetch func(context.Context) (V, error)) (*entry[V], error) {
	if !m.sh.usable() {
		return m.fetchUpstream(ctx, fetch)
	}
	skey, err := m.sh.key(ctx, key)
	if err != nil {
		m.sh.failed(ctx, err)
		return m.fetchUpstream(ctx, fetch)
	}
	if e, ok := m.sharedGet(ctx, skey); ok {
		return e, nil
	}
	unlock, got, err := m.sh.s.Lock(ctx, skey+":lock", m.o.FetchTimeout)
	if err != nil {
		m.sh.failed(ctx, err)
		return m.fetchUpstream(ctx, fetch)
	}
	if !got {
		m.sh.stats.Waits.Add(1)
		if e, ok := m.waitShared(ctx, skey); ok {
			return e, nil
		}
		return m.fetchUpstream(ctx, fetch)
	}
	defer unlock()
	// The holder before may have stored its answer and let go between the
	// read above and this lock: read again before fetching.
	if e, ok := m.sharedGet(ctx, skey); ok {
		return e, nil
	}
	e, err := m.fetchUpstream(ctx, fetch)
	if err == nil {
		if b, ok := encodeShared(e); ok {
			if err := m.sh.s.Set(ctx, skey, b, m.o.TTL+max(m.o.StaleWhileRevalidate, m.o.StaleIfError)); err != nil {
				m.sh.failed(ctx, err)
			}
		}
	}
	return e, err
}

func (m *memo[V]) fetchUpstream(ctx context.Context, fetch func(context.Context) (V, error)) (*entry[V], error) {
	m.stats.Fetches.Add(1)
	at := m.o.Now()
	v, err := fetch(ctx)
	if err != nil && !upstream.IsDefinitive(err) {
		return nil, err
	}
	return &entry[V]{v: v, at: at, err: err}, nil
}

// sharedGet reads key's answer from the shared cache, if one is there and
// inside the TTL.
func (m *memo[V]) sharedGet(ctx context.Context, skey string) (*entry[V], bool) {
	b, ok, err := m.sh.s.Get(ctx, skey)
	if err != nil {
		m.sh.failed(ctx, err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	e, ok := decodeShared[V](b)
	if !ok || m.o.Now().Sub(e.at) >= m.o.TTL {
		return nil, false
	}
	m.sh.stats.Hits.Add(1)
	return e, true
}

// sharedPoll is how often a replica that left a fetch to another looks for
// its answer.
const sharedPoll = 10 * time.Millisecond

// waitShared waits for the lock holder's answer, until ctx ends (the fetch
// timeout) or the lock is gone without an answer.
func (m *memo[V]) waitShared(ctx context.Context, skey string) (*entry[V], bool) {
	t := time.NewTicker(sharedPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, false
		case <-t.C:
		}
		if e, ok := m.sharedGet(ctx, skey); ok {
			return e, true
		}
		if !m.sh.usable() {
			return nil, false
		}
		// The lock is free: the holder answered since the read above, or
		// gave up (its fetch failed), and then this replica fetches.
		if unlock, got, err := m.sh.s.Lock(ctx, skey+":lock", m.o.FetchTimeout); err == nil && got {
			e, ok := m.sharedGet(ctx, skey)
			unlock()
			return e, ok
		}
	}
}

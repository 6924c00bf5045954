package resolve

import (
	"context"
	"sync"
	"time"

	"github.com/manifold-proxy/manifold/internal/lru"
)

// A resolution is a pure function of the cached answers it reads (the tag
// list, the tags' descriptors, facts by digest, which never change). So it
// can be kept and served again, without re-running grouping and synthesis,
// exactly as long as every answer it read would be served from the cache
// unchanged: until the earliest of their TTL expiries, and while the
// repository's invalidation generation (pushes and deletes through the
// proxy) has not moved. This is the hot path: a bare tag inside its TTL is
// a map lookup.

// Versioned is a Source whose answers can be reused until they change
// (Cache).
type Versioned interface {
	// Generation is repo's invalidation generation.
	Generation(repo string) uint64
	// Now is the source's clock.
	Now() time.Time
}

// freshness records, while a resolution runs, until when the cached answers
// it read stay what they are.
type freshness struct {
	mu    sync.Mutex
	until time.Time
	never bool // an answer was stale (served past its TTL): keep nothing
}

type freshnessKey struct{}

func withFreshness(ctx context.Context) (context.Context, *freshness) {
	f := &freshness{}
	return context.WithValue(ctx, freshnessKey{}, f), f
}

// recordFresh notes an answer of the resolution in ctx valid until t.
func recordFresh(ctx context.Context, t time.Time) {
	if f, ok := ctx.Value(freshnessKey{}).(*freshness); ok {
		f.mu.Lock()
		if f.until.IsZero() || t.Before(f.until) {
			f.until = t
		}
		f.mu.Unlock()
	}
}

// recordStale notes an answer served past its TTL.
func recordStale(ctx context.Context) {
	if f, ok := ctx.Value(freshnessKey{}).(*freshness); ok {
		f.mu.Lock()
		f.never = true
		f.mu.Unlock()
	}
}

// readyEntry is a kept resolution.
type readyEntry struct {
	g     *Group
	gen   uint64
	until time.Time
}

// readyBytes bounds the kept resolutions (a Group holds its index bytes).
const readyBytes = 64 << 20

func newReady() *lru.Sized[string, readyEntry] { return lru.New[string, readyEntry](readyBytes, nil) }

// ready returns the kept resolution of key, if still exact.
func (r *Resolver) ready(key, repo string) (*Group, bool) {
	v, ok := r.src.(Versioned)
	if !ok {
		return nil, false
	}
	e, ok := r.kept.Get(key)
	if !ok || e.gen != v.Generation(repo) || !v.Now().Before(e.until) {
		return nil, false
	}
	return e.g, true
}

// keep keeps g, resolved from answers valid per f, read at generation gen.
func (r *Resolver) keep(key, repo string, g *Group, gen uint64, f *freshness) {
	v, ok := r.src.(Versioned)
	if !ok || f.never || f.until.IsZero() || v.Generation(repo) != gen {
		return
	}
	r.kept.Remove(key)
	cost := int64(512)
	if g.Result != nil {
		cost += int64(2 * len(g.Result.Bytes))
	}
	r.kept.Add(key, readyEntry{g: g, gen: gen, until: f.until}, cost)
}

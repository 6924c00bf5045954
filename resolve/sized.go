package resolve

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
)

// sizedLRU is an LRU bounded by the total cost (bytes) of its values: a
// parsed member index can be megabytes, so counting entries bounds nothing.
type sizedLRU[K comparable, V any] struct {
	mu    sync.Mutex
	l     *lru.Cache[K, sized[V]]
	total int64
	max   int64
}

type sized[V any] struct {
	v    V
	cost int64
}

func newSizedLRU[K comparable, V any](maxBytes int64) *sizedLRU[K, V] {
	s := &sizedLRU[K, V]{max: maxBytes}
	s.l, _ = lru.NewWithEvict[K, sized[V]](1<<30, func(_ K, v sized[V]) { s.total -= v.cost })
	return s
}

func (s *sizedLRU[K, V]) Get(k K) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.l.Get(k)
	return e.v, ok
}

// Add stores v at cost bytes, evicting the least recently used entries
// while over the bound. A value costlier than the whole bound is not kept.
func (s *sizedLRU[K, V]) Add(k K, v V, cost int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cost > s.max || s.l.Contains(k) {
		return
	}
	s.l.Add(k, sized[V]{v, cost})
	s.total += cost
	for s.total > s.max {
		s.l.RemoveOldest()
	}
}

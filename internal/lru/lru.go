package lru

import (
	"sync"

	hlru "github.com/hashicorp/golang-lru/v2"
)

// Sized is an LRU bounded by the total cost (bytes) of its values. It is
// safe for concurrent use.
type Sized[K comparable, V any] struct {
	mu       sync.Mutex
	l        *hlru.Cache[K, sized[V]]
	total    int64
	max      int64
	onEvict  func(K, V)
	removing bool // Remove is under way: not an eviction
}

type sized[V any] struct {
	v    V
	cost int64
}

// New holds at most maxBytes of values. onEvict, when not nil, is called
// (under the cache's lock) for each value evicted to stay under the bound;
// not for Remove, whose caller knows what it removed (a cache of files
// deletes an evicted file and counts the eviction, and must not count a
// deletion it was asked for).
func New[K comparable, V any](maxBytes int64, onEvict func(K, V)) *Sized[K, V] {
	s := &Sized[K, V]{max: maxBytes, onEvict: onEvict}
	// The byte bound does the work; the entry count is only a ceiling.
	s.l, _ = hlru.NewWithEvict[K, sized[V]](1<<30, func(k K, v sized[V]) {
		s.total -= v.cost
		if s.onEvict != nil && !s.removing {
			s.onEvict(k, v.v)
		}
	})
	return s
}

// Get returns the value of k and marks it recently used.
func (s *Sized[K, V]) Get(k K) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.l.Get(k)
	return e.v, ok
}

// Contains reports whether k is held, without marking it used.
func (s *Sized[K, V]) Contains(k K) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.l.Contains(k)
}

// Add stores v at cost bytes, evicting the least recently used entries
// while over the bound. A value costlier than the whole bound is not kept,
// and a key already held keeps its value (values are immutable per key).
// It reports whether v was stored.
func (s *Sized[K, V]) Add(k K, v V, cost int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cost > s.max || s.l.Contains(k) {
		return false
	}
	s.l.Add(k, sized[V]{v, cost})
	s.total += cost
	for s.total > s.max {
		s.l.RemoveOldest()
	}
	return true
}

// Remove drops k (without calling onEvict).
func (s *Sized[K, V]) Remove(k K) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removing = true
	s.l.Remove(k)
	s.removing = false
}

// Keys returns the keys held, from the least to the most recently used.
func (s *Sized[K, V]) Keys() []K {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.l.Keys()
}

// Len is the number of entries held.
func (s *Sized[K, V]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.l.Len()
}

// Bytes is the total cost held.
func (s *Sized[K, V]) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

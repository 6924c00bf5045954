package lru_test

import (
	"testing"

	"github.com/manifold-proxy/manifold/internal/lru"
)

func TestSized(t *testing.T) {
	t.Parallel()
	var evicted []string
	s := lru.New[string, int](100, func(k string, _ int) { evicted = append(evicted, k) })
	s.Add("a", 1, 40)
	s.Add("b", 2, 40)
	if _, ok := s.Get("a"); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	s.Add("c", 3, 40) // over 100: b, the least recently used, goes
	if k := s.Keys(); len(k) != 2 || k[0] != "a" || k[1] != "c" {
		t.Errorf("keys %v, want [a c] (oldest first)", k)
	}
	if _, ok := s.Get("b"); ok {
		t.Error("b kept past the bound")
	}
	if v, ok := s.Get("a"); !ok || v != 1 {
		t.Error("a evicted instead of b")
	}
	if s.Add("huge", 4, 101) || s.Contains("huge") || s.Bytes() != 80 {
		t.Errorf("a value over the bound must not be kept (total %d)", s.Bytes())
	}
	if s.Add("a", 9, 1) {
		t.Error("a held key was replaced")
	}
	s.Remove("a")
	// Remove is not an eviction: onEvict saw only b.
	if s.Len() != 1 || s.Bytes() != 40 || len(evicted) != 1 || evicted[0] != "b" {
		t.Errorf("len %d, bytes %d, evicted %v", s.Len(), s.Bytes(), evicted)
	}
}

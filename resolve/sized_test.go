package resolve

import "testing"

func TestSizedLRU(t *testing.T) {
	s := newSizedLRU[string, int](100)
	s.Add("a", 1, 40)
	s.Add("b", 2, 40)
	if _, ok := s.Get("a"); !ok { // a is now the most recently used
		t.Fatal("a missing")
	}
	s.Add("c", 3, 40) // over 100: b, the least recently used, goes
	if _, ok := s.Get("b"); ok {
		t.Error("b kept past the bound")
	}
	if v, ok := s.Get("a"); !ok || v != 1 {
		t.Error("a evicted instead of b")
	}
	s.Add("huge", 4, 101)
	if _, ok := s.Get("huge"); ok || s.total != 80 {
		t.Errorf("a value over the bound must not be kept (total %d)", s.total)
	}
}

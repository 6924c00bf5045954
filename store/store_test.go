package store_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/manifold-proxy/manifold/store"
)

func TestMemoryEvictsByBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := store.NewMemory(100)
	for i, k := range []string{"a", "b", "c"} {
		if err := m.Put(ctx, k, bytes.Repeat([]byte{byte(i)}, 40)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("oldest entry kept past the byte bound: %v", err)
	}
	if b, err := m.Get(ctx, "c"); err != nil || len(b) != 40 {
		t.Errorf("newest entry: %v", err)
	}
	if err := m.Put(ctx, "huge", make([]byte, 101)); err != nil || m.Len() != 2 {
		t.Errorf("an entry larger than the bound must not evict everything: len %d", m.Len())
	}
}

func TestDriverAndTiered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	d := store.NewDriver(filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 10}))
	key := "registry.example/app@sha256:" + strings.Repeat("a", 64)
	if _, err := d.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty driver: %v", err)
	}
	replica1 := store.Tiered{store.NewMemory(0), d}
	if err := replica1.Put(ctx, key, []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	// Another replica sharing only the backend finds it, and caches it.
	mem2 := store.NewMemory(0)
	replica2 := store.Tiered{mem2, store.NewDriver(filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 10}))}
	b, err := replica2.Get(ctx, key)
	if err != nil || string(b) != `{"x":1}` {
		t.Fatalf("second replica: %q %v", b, err)
	}
	if _, err := mem2.Get(ctx, key); err != nil {
		t.Errorf("backend hit not cached in memory: %v", err)
	}
}

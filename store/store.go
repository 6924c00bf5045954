// Package store keeps the bytes of synthesized indexes by digest, so an
// index served under a tag stays fetchable by its digest — on this replica
// from memory, on every replica from a shared storage driver backend
// (filesystem, s3, gcs, azure: distribution's storage drivers). A replica
// that has never seen a digest recomputes it (deterministic synthesis);
// the store makes that rare and makes old digests survive upstream changes
// for as long as the backend keeps them.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	lru "github.com/hashicorp/golang-lru/v2"
)

// ErrNotFound is returned by Get for an unknown key.
var ErrNotFound = errors.New("not found in index store")

// Store maps keys (upstream/repository@digest) to index bytes. Values are
// immutable: a key always maps to the same bytes.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, b []byte) error
}

// Memory is an LRU bounded by the total bytes it holds.
type Memory struct {
	mu       sync.Mutex
	lru      *lru.Cache[string, []byte]
	bytes    int64
	maxBytes int64
}

var _ Store = (*Memory)(nil)

// NewMemory holds at most maxBytes of index bytes (default 64 MiB when
// maxBytes <= 0).
func NewMemory(maxBytes int64) *Memory {
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	m := &Memory{maxBytes: maxBytes}
	// The entry bound is the byte bound's job; the count is only a ceiling.
	m.lru, _ = lru.NewWithEvict[string, []byte](1<<30, func(_ string, v []byte) { m.bytes -= int64(len(v)) })
	return m
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.lru.Get(key); ok {
		return b, nil
	}
	return nil, ErrNotFound
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, key string, b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lru.Contains(key) || int64(len(b)) > m.maxBytes {
		return nil
	}
	m.lru.Add(key, b)
	m.bytes += int64(len(b))
	for m.bytes > m.maxBytes {
		m.lru.RemoveOldest()
	}
	return nil
}

// Len is the number of entries held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// Driver stores index bytes through a distribution storage driver under
// /manifold/indexes/<key>.
type Driver struct {
	d storagedriver.StorageDriver
}

var _ Store = (*Driver)(nil)

// NewDriver wraps a storage driver.
func NewDriver(d storagedriver.StorageDriver) *Driver { return &Driver{d: d} }

// path maps a key (host[:port]/repo@algo:hex) to a storage driver path,
// whose characters are limited to [A-Za-z0-9._-/]:
// /manifold/indexes/host_port/repo/algo/hex.
func (s *Driver) path(key string) string {
	prefix, dgst, _ := strings.Cut(key, "@")
	return "/manifold/indexes/" + strings.ReplaceAll(prefix, ":", "_") + "/" + strings.ReplaceAll(dgst, ":", "/")
}

// Get implements Store.
func (s *Driver) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.d.GetContent(ctx, s.path(key))
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("index store (%s): %w", s.d.Name(), err)
	}
	return b, nil
}

// Put implements Store.
func (s *Driver) Put(ctx context.Context, key string, b []byte) error {
	if err := s.d.PutContent(ctx, s.path(key), b); err != nil {
		return fmt.Errorf("index store (%s): %w", s.d.Name(), err)
	}
	return nil
}

// Tiered reads from the first tier that has a key, fills the faster tiers
// on the way back, and writes through to every tier.
type Tiered []Store

var _ Store = Tiered(nil)

// Get implements Store.
func (t Tiered) Get(ctx context.Context, key string) ([]byte, error) {
	for i, s := range t {
		b, err := s.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, faster := range t[:i] {
			_ = faster.Put(ctx, key, b) // a cache fill; the slow tier has it
		}
		return b, nil
	}
	return nil, ErrNotFound
}

// Put implements Store. A tier that already has the key is not written
// again, so serving a hot index costs no backend writes.
func (t Tiered) Put(ctx context.Context, key string, b []byte) error {
	if len(t) > 0 {
		if _, err := t[0].Get(ctx, key); err == nil {
			return nil
		}
	}
	for _, s := range t {
		if err := s.Put(ctx, key, b); err != nil {
			return err
		}
	}
	return nil
}

package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/internal/lru"
)

// DefaultMemoryBytes bounds the memory tier when no bound is given: 64 MiB.
const DefaultMemoryBytes = 64 << 20

// ErrNotFound is returned by Get for an unknown key.
var ErrNotFound = errors.New("not found in index store")

// Key names an index: the upstream registry (host[:port]), the repository
// there, and the digest.
type Key struct {
	Registry, Repository string
	Digest               v1.Hash
}

// String is registry/repository@digest.
func (k Key) String() string { return k.Registry + "/" + k.Repository + "@" + k.Digest.String() }

// Entry is a stored index: its media type and its exact bytes.
type Entry struct {
	MediaType types.MediaType
	Bytes     []byte
}

// Store maps keys to entries. Values are immutable: a key always maps to
// the same bytes.
type Store interface {
	Get(ctx context.Context, key Key) (Entry, error)
	Put(ctx context.Context, key Key, e Entry) error
}

// Memory is an LRU bounded by the total bytes it holds.
type Memory struct {
	lru *lru.Sized[Key, Entry]
}

var _ Store = (*Memory)(nil)

// NewMemory holds at most maxBytes of index bytes (DefaultMemoryBytes when
// maxBytes <= 0).
func NewMemory(maxBytes int64) *Memory {
	if maxBytes <= 0 {
		maxBytes = DefaultMemoryBytes
	}
	return &Memory{lru: lru.New[Key, Entry](maxBytes, nil)}
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key Key) (Entry, error) {
	if e, ok := m.lru.Get(key); ok {
		return e, nil
	}
	return Entry{}, ErrNotFound
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, key Key, e Entry) error {
	m.lru.Add(key, e, int64(len(e.Bytes)+len(e.MediaType)))
	return nil
}

// Contains reports whether key is held.
func (m *Memory) Contains(key Key) bool { return m.lru.Contains(key) }

// Len is the number of entries held.
func (m *Memory) Len() int { return m.lru.Len() }

// Driver stores indexes through a distribution storage driver, one object
// per index: its media type on the first line, then its bytes.
type Driver struct {
	d storagedriver.StorageDriver
}

var _ Store = (*Driver)(nil)

// NewDriver wraps a storage driver.
func NewDriver(d storagedriver.StorageDriver) *Driver { return &Driver{d: d} }

// path maps a key to a storage driver path, whose characters are limited to
// [A-Za-z0-9._-/]: /manifold/indexes/v2/<host_port>/<repo>/<algo>/<hex>.
// (v2: objects carry their media type; objects of the first layout, under
// /manifold/indexes/<host_port>, are not read: a miss recomputes them.)
func (s *Driver) path(k Key) string {
	return "/manifold/indexes/v2/" + strings.ReplaceAll(k.Registry, ":", "_") + "/" + k.Repository + "/" + k.Digest.Algorithm + "/" + k.Digest.Hex
}

// Get implements Store.
func (s *Driver) Get(ctx context.Context, key Key) (Entry, error) {
	b, err := s.d.GetContent(ctx, s.path(key))
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, fmt.Errorf("index store (%s): %w", s.d.Name(), err)
	}
	mt, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return Entry{}, fmt.Errorf("index store (%s): %s: no media type line", s.d.Name(), key)
	}
	return Entry{MediaType: types.MediaType(mt), Bytes: body}, nil
}

// Put implements Store.
func (s *Driver) Put(ctx context.Context, key Key, e Entry) error {
	if strings.ContainsAny(string(e.MediaType), "\r\n") {
		return fmt.Errorf("index store: media type %q has a line break", e.MediaType)
	}
	b := make([]byte, 0, len(e.MediaType)+1+len(e.Bytes))
	b = append(append(append(b, e.MediaType...), '\n'), e.Bytes...)
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
func (t Tiered) Get(ctx context.Context, key Key) (Entry, error) {
	for i, s := range t {
		e, err := s.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Entry{}, err
		}
		for _, faster := range t[:i] {
			_ = faster.Put(ctx, key, e) // a cache fill; the slow tier has it
		}
		return e, nil
	}
	return Entry{}, ErrNotFound
}

// Put implements Store. A tier that already has the key is not written
// again, so serving a hot index costs no backend writes.
func (t Tiered) Put(ctx context.Context, key Key, e Entry) error {
	if len(t) > 0 {
		if _, err := t[0].Get(ctx, key); err == nil {
			return nil
		}
	}
	for _, s := range t {
		if err := s.Put(ctx, key, e); err != nil {
			return err
		}
	}
	return nil
}

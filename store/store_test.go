package store_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/store"
)

func TestMemoryEvictsByBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := store.NewMemory(100)
	for i, k := range []string{"a", "b", "c"} {
		if err := m.Put(ctx, key(k), store.Entry{Bytes: bytes.Repeat([]byte{byte(i)}, 40)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Get(ctx, key("a")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("oldest entry kept past the byte bound: %v", err)
	}
	if e, err := m.Get(ctx, key("c")); err != nil || len(e.Bytes) != 40 {
		t.Errorf("newest entry: %v", err)
	}
	if err := m.Put(ctx, key("huge"), store.Entry{Bytes: make([]byte, 101)}); err != nil || m.Len() != 2 {
		t.Errorf("an entry larger than the bound must not evict everything: len %d", m.Len())
	}
}

func TestDriverAndTiered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	d := store.NewDriver(filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 10}))
	k := store.Key{Registry: "registry.example:5000", Repository: "team/app", Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}}
	if _, err := d.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty driver: %v", err)
	}
	replica1 := store.Tiered{store.NewMemory(0), d}
	want := store.Entry{MediaType: types.OCIImageIndex, Bytes: []byte("{\"x\":1}\n{}")}
	if err := replica1.Put(ctx, k, want); err != nil {
		t.Fatal(err)
	}
	// Another replica sharing only the backend finds it, and caches it.
	mem2 := store.NewMemory(0)
	replica2 := store.Tiered{mem2, store.NewDriver(filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 10}))}
	got, err := replica2.Get(ctx, k)
	if err != nil || got.MediaType != want.MediaType || !bytes.Equal(got.Bytes, want.Bytes) {
		t.Fatalf("second replica: %+v %v", got, err)
	}
	if _, err := mem2.Get(ctx, k); err != nil {
		t.Errorf("backend hit not cached in memory: %v", err)
	}
}

func key(s string) store.Key {
	return store.Key{Registry: "r", Repository: "app", Digest: v1.Hash{Algorithm: "sha256", Hex: s}}
}

// TestS3Backend: the index store on a real S3-API server (versitygw,
// distribution's s3 driver): what one replica put, another one reads.
func TestS3Backend(t *testing.T) {
	t.Parallel()
	s3 := regtest.StartS3(t)
	ctx := context.Background()
	newDriver := func() *store.Driver {
		d, err := factory.Create(ctx, "s3", s3.Parameters("/indexes"))
		if err != nil {
			t.Fatal(err)
		}
		return store.NewDriver(d)
	}
	k := store.Key{Registry: "registry.example:5000", Repository: "team/app", Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}}
	want := store.Entry{MediaType: types.DockerManifestList, Bytes: []byte(`{"schemaVersion":2}`)}
	if _, err := newDriver().Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty bucket: %v", err)
	}
	if err := (store.Tiered{store.NewMemory(0), newDriver()}).Put(ctx, k, want); err != nil {
		t.Fatal(err)
	}
	got, err := (store.Tiered{store.NewMemory(0), newDriver()}).Get(ctx, k)
	if err != nil || got.MediaType != want.MediaType || !bytes.Equal(got.Bytes, want.Bytes) {
		t.Fatalf("another replica reads %+v %v", got, err)
	}
	s3.Stop()
	if _, err := newDriver().Get(ctx, k); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("S3 down must be an error, not a miss: %v", err)
	}
}

package resolve_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/upstream"
)

// countingSource answers Tags with a list that changes on every fetch, or
// with err when set.
type countingSource struct {
	calls atomic.Int64
	err   atomic.Pointer[error]
}

func (s *countingSource) Tags(context.Context, string) ([]string, error) {
	n := s.calls.Add(1)
	if e := s.err.Load(); e != nil {
		return nil, *e
	}
	return []string{string(rune('a' + n))}, nil
}
func (s *countingSource) Head(context.Context, string, string) (v1.Descriptor, error) {
	return v1.Descriptor{}, nil
}
func (s *countingSource) Manifest(context.Context, string, v1.Hash, int64) ([]byte, types.MediaType, error) {
	return nil, "", nil
}
func (s *countingSource) Blob(context.Context, string, v1.Hash, int64) ([]byte, error) {
	return nil, nil
}

type statusErr int

func (e statusErr) Error() string   { return "status" }
func (e statusErr) StatusCode() int { return int(e) }

func TestCacheTTLAndStaleModes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(0, 0)
	src := &countingSource{}
	c := resolve.NewCache(src, resolve.CacheOptions{
		TTL: 10 * time.Second, StaleWhileRevalidate: 5 * time.Second, StaleIfError: time.Minute,
		Now: func() time.Time { return now },
	})
	get := func() string {
		tags, err := c.Tags(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		return tags[0]
	}
	if get() != "b" || get() != "b" || src.calls.Load() != 1 {
		t.Fatalf("within TTL: %d fetches", src.calls.Load())
	}
	// Stale-while-revalidate: the old answer now, a fresh one after the
	// background refresh.
	now = now.Add(12 * time.Second)
	if got := get(); got != "b" {
		t.Errorf("within stale-while-revalidate: %s", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for src.calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	if got := get(); got != "c" {
		t.Errorf("after revalidation: %s", got)
	}
	// Stale-if-error: upstream fails; the last good answer stays within the
	// window, and the failure shows after it.
	e := error(statusErr(503))
	src.err.Store(&e)
	now = now.Add(30 * time.Second)
	if got := get(); got != "c" {
		t.Errorf("stale-if-error: %s", got)
	}
	now = now.Add(2 * time.Minute)
	if _, err := c.Tags(ctx, "r"); err == nil {
		t.Error("past stale-if-error the failure must show")
	}
	// A definitive answer (404) is cached for the TTL like a value.
	nf := error(statusErr(404))
	src.err.Store(&nf)
	before := src.calls.Load()
	for range 3 {
		if _, err := c.Tags(ctx, "other"); !upstream.IsNotFound(err) {
			t.Fatalf("404 not reported: %v", err)
		}
	}
	if src.calls.Load() != before+1 {
		t.Errorf("404 fetched %d times, want once", src.calls.Load()-before)
	}
	if !errors.Is(error(statusErr(404)), statusErr(404)) {
		t.Fatal("sanity")
	}
}

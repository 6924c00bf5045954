package resolve_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/store"
	"github.com/manifold-proxy/manifold/upstream"
)

// reg is an in-process registry (go-containerregistry's) behind a counter.
type reg struct {
	host     string
	requests atomic.Int64
	mu       sync.Mutex
	paths    []string
	res      *resolve.Resolver
	store    *store.Memory
}

func newReg(t *testing.T) *reg {
	t.Helper()
	r := &reg{}
	h := registry.New()
	srv := httptest.NewServer(countHandler(h, &r.requests, func(p string) {
		r.mu.Lock()
		r.paths = append(r.paths, p)
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	c, err := upstream.New(upstream.Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	r.store = store.NewMemory(0)
	r.res = resolve.New(resolve.NewCache(c, resolve.CacheOptions{}), resolve.Options{Store: r.store, Registry: c.Host()})
	return r
}

func (r *reg) push(t *testing.T, tag, plat string) v1.Hash {
	t.Helper()
	img := regtest.PlatformImage(t, plat, true)
	ref, err := name.ParseReference(r.host+"/app:"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

func TestResolveOutcomes(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	ctx := context.Background()
	r.push(t, "1.0-linux-amd64", "linux/amd64")
	r.push(t, "1.0-linux-arm64", "linux/arm64/v8")
	r.push(t, "2.0-linux-arm64", "linux/amd64") // mislabeled: the only member is excluded
	r.push(t, "3.0-linux-amd64", "linux/amd64")
	bare := r.push(t, "4.0", "linux/amd64")
	r.push(t, "4.0-linux-arm64", "linux/arm64")
	arm, _ := platform.Parse("linux/arm64")
	require := index.Rule{Policy: index.Merge, Require: []v1.Platform{arm}}
	for _, tc := range []struct {
		base string
		rule index.Rule
		want resolve.Outcome
	}{
		{"1.0", index.Rule{}, resolve.Index},
		{"1.0", index.Rule{Policy: index.Off}, resolve.Upstream},
		{"2.0", index.Rule{}, resolve.Empty},
		{"3.0", require, resolve.Incomplete},
		{"4.0", require, resolve.Index},
		{"4.0", index.Rule{Policy: index.Fallback}, resolve.Upstream},
		{"nothing", index.Rule{}, resolve.Upstream},
	} {
		g, err := r.res.Resolve(ctx, "app", tc.base, tc.rule)
		if err != nil {
			t.Fatalf("%s %+v: %v", tc.base, tc.rule, err)
		}
		if g.Outcome != tc.want {
			t.Errorf("%s %+v: outcome %s, want %s", tc.base, tc.rule, g.Outcome, tc.want)
		}
		switch g.Outcome {
		case resolve.Index:
			if _, err := r.store.Get(ctx, store.Key{Registry: r.host, Repository: "app", Digest: g.Result.Digest}); err != nil {
				t.Errorf("%s: a served index is not in the store: %v", tc.base, err)
			}
		case resolve.Empty:
			if len(g.Excluded) != 1 || !strings.Contains(g.Excluded[0].Reason, "config says linux/amd64") {
				t.Errorf("%s: excluded %+v", tc.base, g.Excluded)
			}
		case resolve.Incomplete:
			if len(g.Missing) != 1 || platform.String(g.Missing[0]) != "linux/arm64/v8" {
				t.Errorf("%s: missing %v", tc.base, g.Missing)
			}
		}
	}
	// merge lists the bare image with its config platform.
	g, _ := r.res.Resolve(ctx, "app", "4.0", index.Rule{})
	if len(g.Result.Entries) != 2 || g.Result.Entries[0].Descriptor.Digest != bare {
		t.Errorf("merge: %+v", g.Result.Entries)
	}
}

// TestFindIndex: a digest is found from the repository's groups; a second
// search of the same tag list costs no upstream request; a digest evicted
// from the store is still found; an unknown digest is not.
func TestFindIndex(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	ctx := context.Background()
	for _, b := range []string{"a", "b", "c"} {
		r.push(t, b+"-linux-amd64", "linux/amd64")
		r.push(t, b+"-linux-arm64", "linux/arm64")
	}
	// Another resolver over the same registry: a replica that never
	// served anything.
	c, _ := upstream.New(upstream.Options{URL: "http://" + r.host})
	other := resolve.New(resolve.NewCache(c, resolve.CacheOptions{}), resolve.Options{})
	g, err := r.res.Resolve(ctx, "app", "b", index.Rule{})
	if err != nil || g.Outcome != resolve.Index {
		t.Fatal(g, err)
	}
	want := g.Result.Digest
	res, err := other.FindIndex(ctx, "app", index.Rule{}, want)
	if err != nil || res == nil || res.Digest != want {
		t.Fatalf("FindIndex: %v %v", res, err)
	}
	before := r.requests.Load()
	unknown := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	for range 3 {
		if res, err := other.FindIndex(ctx, "app", index.Rule{}, unknown); res != nil || err != nil {
			t.Fatalf("unknown digest: %v %v", res, err)
		}
	}
	// Found again (its group alone, from cached answers) though the other
	// resolver has no store to remember it in.
	if res, err := other.FindIndex(ctx, "app", index.Rule{}, want); err != nil || res == nil || res.Digest != want {
		t.Fatalf("FindIndex again: %v %v", res, err)
	}
	if n := r.requests.Load() - before; n != 0 {
		t.Errorf("searching a searched tag list again cost %d upstream requests", n)
	}
}

// TestH1_RandomDigestBounded: one GET of a random digest resolved every
// tag group of the repository, and the next one started over (20k tags:
// 20,002 upstream requests per request). The search is now shared,
// remembered per tag list, linear in the tags, and refused beyond
// MaxSearchGroups.
func TestH1_RandomDigestBounded(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	ctx := context.Background()
	const bases = 40
	for i := range bases {
		b := "b" + strconv.Itoa(i)
		r.push(t, b+"-linux-amd64", "linux/amd64")
		r.push(t, b+"-linux-arm64", "linux/arm64")
	}
	c, _ := upstream.New(upstream.Options{URL: "http://" + r.host})
	res := resolve.New(resolve.NewCache(c, resolve.CacheOptions{}), resolve.Options{})
	random := func(i int) v1.Hash {
		return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i)}
	}
	before := r.requests.Load()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if found, err := res.FindIndex(ctx, "app", index.Rule{}, random(i)); found != nil || err != nil {
				t.Errorf("random digest: %v %v", found, err)
			}
		})
	}
	wg.Wait()
	first := r.requests.Load() - before
	// One tag list, and per member at most a HEAD, a manifest and a config.
	if limit := int64(1 + 2*bases*3 + 2); first > limit {
		t.Errorf("20 concurrent random digests cost %d upstream requests, over one search (%d)", first, limit)
	}
	for i := range 100 {
		_, _ = res.FindIndex(ctx, "app", index.Rule{}, random(100+i))
	}
	if again := r.requests.Load() - before - first; again != 0 {
		t.Errorf("100 more random digests cost %d upstream requests, want 0", again)
	}
	small := resolve.New(resolve.NewCache(c, resolve.CacheOptions{}), resolve.Options{MaxSearchGroups: bases - 1})
	if _, err := small.FindIndex(ctx, "app", index.Rule{}, random(1)); !errors.Is(err, resolve.ErrSearchTooLarge) {
		t.Errorf("over MaxSearchGroups: %v", err)
	}
}

// TestReadyResolution: a resolution is answered again, without reading the
// cache, exactly while the answers it read are unchanged: inside the TTL;
// not after an invalidation (a push through the proxy), not past the TTL.
func TestReadyResolution(t *testing.T) {
	t.Parallel()
	r := newReg(t)
	ctx := context.Background()
	r.push(t, "1.0-linux-amd64", "linux/amd64")
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	c, _ := upstream.New(upstream.Options{URL: "http://" + r.host})
	cache := resolve.NewCache(c, resolve.CacheOptions{TTL: time.Minute, Now: clock})
	res := resolve.New(cache, resolve.Options{})
	entries := func() int {
		g, err := res.Resolve(ctx, "app", "1.0", index.Rule{})
		if err != nil || g.Outcome != resolve.Index {
			t.Fatal(g, err)
		}
		return len(g.Result.Entries)
	}
	if n := entries(); n != 1 {
		t.Fatalf("%d entries", n)
	}
	hits := cache.Stats.Hits.Load()
	r.push(t, "1.0-linux-arm64", "linux/arm64")
	now.Add(int64(30 * time.Second))
	if n := entries(); n != 1 || cache.Stats.Hits.Load() != hits {
		t.Errorf("inside the TTL: %d entries, %d cache reads (want 1 entry, served as kept)", n, cache.Stats.Hits.Load()-hits)
	}
	now.Add(int64(31 * time.Second))
	if n := entries(); n != 2 {
		t.Errorf("past the TTL: %d entries, want the new member", n)
	}
	r.push(t, "1.0-linux-s390x", "linux/s390x")
	cache.Invalidate("app")
	if n := entries(); n != 3 {
		t.Errorf("after an invalidation: %d entries, want 3", n)
	}
}

// count is the number of upstream requests whose path contains sub.
func (r *reg) count(sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.paths {
		if strings.Contains(p, sub) {
			n++
		}
	}
	return n
}

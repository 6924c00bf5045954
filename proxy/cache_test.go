package proxy_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
)

// TestCachedIndexNoUpstream: within the TTL a synthesized index is served
// with zero upstream requests; after it, members are re-resolved with HEADs
// only (config facts are cached for good).
func TestCachedIndexNoUpstream(t *testing.T) {
	t.Parallel()
	now := time.Now()
	e := newEnv(t, func(o *proxy.Options) {
		o.Cache = resolve.CacheOptions{TTL: 30 * time.Second, Now: func() time.Time { return now }}
	})
	for _, p := range platforms {
		pl, _ := index.ParsePlatform(p)
		e.push("app:1-"+index.FormatSuffix(pl), platformImage(t, p, false))
	}
	if resp, _ := e.do(http.MethodGet, "/v2/app/manifests/1"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	e.resetRequests()
	for range 50 {
		if resp, _ := e.do(http.MethodGet, "/v2/app/manifests/1"); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
		if resp, _ := e.do(http.MethodHead, "/v2/app/manifests/1"); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
	}
	if reqs := e.upstreamRequests(); len(reqs) != 0 {
		t.Fatalf("cached index went upstream %d times: %v", len(reqs), reqs)
	}

	now = now.Add(31 * time.Second)
	if resp, _ := e.do(http.MethodGet, "/v2/app/manifests/1"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	for _, r := range e.upstreamRequests() {
		if strings.HasPrefix(r, "GET /v2/app/manifests/sha256:") || strings.Contains(r, "/blobs/") {
			t.Errorf("after the TTL only tags and HEADs are needed, got %s", r)
		}
	}
	if n := len(e.upstreamRequests()); n != 1+len(platforms) {
		t.Errorf("refresh made %d upstream requests, want %d (tag list + one HEAD per member): %v", n, 1+len(platforms), e.upstreamRequests())
	}
}

// TestSingleflight: many clients asking for a cold index at once cause one
// upstream fetch per resource.
func TestSingleflight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range platforms[:4] {
		pl, _ := index.ParsePlatform(p)
		e.push("app:1-"+index.FormatSuffix(pl), platformImage(t, p, false))
	}
	e.resetRequests()
	e.delay.Store(int64(20 * time.Millisecond))
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, body := e.do(http.MethodGet, "/v2/app/manifests/1"); resp.StatusCode != 200 {
				t.Errorf("%d %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for _, r := range e.upstreamRequests() {
		seen[r]++
	}
	for r, n := range seen {
		if n > 1 && r != "GET /v2/" {
			t.Errorf("%s fetched %d times by 20 concurrent clients", r, n)
		}
	}
}

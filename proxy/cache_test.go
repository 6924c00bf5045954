package proxy_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/platform"
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
		pl, _ := platform.Parse(p)
		e.push("app:1-"+index.FormatSuffix(pl), regtest.PlatformImage(t, p, false))
	}
	if resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	e.reg.Reset()
	for range 50 {
		if resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1"); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
		if resp, _ := regtest.Get(t, http.MethodHead, e.proxy.URL+"/v2/app/manifests/1"); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
	}
	if reqs := e.reg.Requests(); len(reqs) != 0 {
		t.Fatalf("cached index went upstream %d times: %v", len(reqs), reqs)
	}

	now = now.Add(31 * time.Second)
	if resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	for _, r := range e.reg.Requests() {
		if strings.HasPrefix(r, "GET /v2/app/manifests/sha256:") || strings.Contains(r, "/blobs/") {
			t.Errorf("after the TTL only tags and HEADs are needed, got %s", r)
		}
	}
	if n := len(e.reg.Requests()); n != 1+len(platforms) {
		t.Errorf("refresh made %d upstream requests, want %d (tag list + one HEAD per member): %v", n, 1+len(platforms), e.reg.Requests())
	}
}

// TestSingleflight: many clients asking for a cold index at once cause one
// upstream fetch per resource.
func TestSingleflight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range platforms[:4] {
		pl, _ := platform.Parse(p)
		e.push("app:1-"+index.FormatSuffix(pl), regtest.PlatformImage(t, p, false))
	}
	e.reg.Reset()
	e.reg.SetDelay(20 * time.Millisecond)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1"); resp.StatusCode != 200 {
				t.Errorf("%d %s", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	seen := map[string]int{}
	for _, r := range e.reg.Requests() {
		seen[r]++
	}
	for r, n := range seen {
		if n > 1 && r != "GET /v2/" {
			t.Errorf("%s fetched %d times by 20 concurrent clients", r, n)
		}
	}
}

// TestInvalidationWinsOverInflightFetch: a tag list fetched before a push
// through the proxy, and answered after it, is not what readers see next.
func TestInvalidationWinsOverInflightFetch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	var slow atomic.Bool
	slow.Store(true)
	e.reg.SetFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		if strings.HasSuffix(r.URL.Path, "/tags/list") && slow.CompareAndSwap(true, false) {
			time.Sleep(300 * time.Millisecond) // taken before the push, answered after it
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"name":"app","tags":["1-linux-amd64"]}`))
			return true
		}
		return false
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1") }()
	time.Sleep(100 * time.Millisecond)
	if err := remote.Write(regtest.Ref(t, e.host+"/app:1-linux-arm64"), regtest.PlatformImage(t, "linux/arm64", false)); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, b := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1"); !strings.Contains(string(b), `"arm64"`) {
		t.Errorf("after a push through the proxy the index still lacks arm64: %s", b)
	}
}

// TestRandomDigestsAreCheap: digests nobody synthesized cost one
// recomputation per tag set, not one per request.
func TestRandomDigestsAreCheap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 20 {
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			e.push(fmt.Sprintf("app:v%d-%s", i, strings.ReplaceAll(p, "/", "-")), regtest.PlatformImage(t, p, false))
		}
	}
	if resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+fmt.Sprintf("/v2/app/manifests/sha256:%064x", 1)); resp.StatusCode != 404 {
		t.Fatal(resp.StatusCode)
	}
	e.reg.Reset()
	for i := range 20 {
		if resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+fmt.Sprintf("/v2/app/manifests/sha256:%064x", i+2)); resp.StatusCode != 404 {
			t.Fatal(resp.StatusCode)
		}
	}
	// One HEAD per digest (is it upstream's?) and the final pass-through
	// 404; no member is resolved again.
	for _, r := range e.reg.Requests() {
		if strings.Contains(r, "-linux-") || strings.HasSuffix(r, "/tags/list") {
			t.Errorf("a random digest resolved groups again: %s", r)
			break
		}
	}
	if n := len(e.reg.Requests()); n > 2*20 {
		t.Errorf("20 random digests cost %d upstream requests", n)
	}
}

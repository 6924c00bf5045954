package proxy_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// TestTagsList: synthesized bare tags are listed with upstream's, and the
// proxy paginates with n, last and Link — across upstream's own pages.
func TestTagsList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := regtest.PlatformImage(t, "linux/amd64", false)
	var want []string
	for _, base := range []string{"1.0", "1.1", "2.0-rc1"} {
		for _, suffix := range []string{"linux-amd64", "linux-arm64"} {
			e.push("app:"+base+"-"+suffix, img)
			want = append(want, base+"-"+suffix)
		}
		want = append(want, base)
	}
	e.push("app:latest", img)
	want = append(want, "latest")
	slices.Sort(want)

	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/tags/list")
	var all tagList
	if err := json.Unmarshal(body, &all); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if all.Name != "app" || !slices.Equal(all.Tags, want) {
		t.Fatalf("tags %v, want %v", all.Tags, want)
	}

	// Walk the pages as a client does, following Link.
	var got []string
	path := "/v2/app/tags/list?n=4"
	for pages := 0; path != ""; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+path)
		var page tagList
		if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if len(page.Tags) > 4 {
			t.Fatalf("page of %d > n=4", len(page.Tags))
		}
		got = append(got, page.Tags...)
		path = ""
		if link := resp.Header.Get("Link"); link != "" {
			if !strings.HasSuffix(link, `>; rel="next"`) {
				t.Fatalf("Link %q", link)
			}
			path = link[1:strings.Index(link, ">")]
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged tags %v, want %v", got, want)
	}

	// ggcr's lister follows Link too.
	listed, err := remote.List(regtest.Ref(t, e.host+"/app:x").Context(), remote.WithPageSize(3))
	if err != nil || !slices.Equal(listed, want) {
		t.Errorf("remote.List through the proxy: %v %v", listed, err)
	}

	for _, bad := range []string{"n=-1", "n=abc"} {
		resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/tags/list?"+bad)
		if resp.StatusCode != 400 || ociError(t, body) != "PAGINATION_NUMBER_INVALID" {
			t.Errorf("%s: %d %s", bad, resp.StatusCode, body)
		}
	}
}

// TestTagsFollowUpstreamPages: the proxy reads every page upstream has.
func TestTagsFollowUpstreamPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := regtest.PlatformImage(t, "linux/amd64", false)
	for i := range 30 {
		e.push("app:"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+"-linux-amd64", img)
	}
	// Force small upstream pages: rewrite every tags/list request to n=7.
	e.reg.SetFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		if strings.HasSuffix(r.URL.Path, "/tags/list") {
			q := r.URL.Query()
			q.Set("n", "7")
			r.URL.RawQuery = q.Encode()
		}
		return false
	})
	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/tags/list")
	var all tagList
	if err := json.Unmarshal(body, &all); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// 30 members + their bases.
	if len(all.Tags) != 60 {
		t.Errorf("got %d tags, want 60 (30 members, 30 bases): upstream pages not followed", len(all.Tags))
	}
	if pages := e.reg.CountPath("/tags/list"); pages < 5 {
		t.Errorf("upstream tags/list requested %d times, want >= 5 pages", pages)
	}
}

func TestCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := regtest.PlatformImage(t, "linux/amd64", false)
	for _, repo := range []string{"a/one", "b/two", "c"} {
		e.push(repo+":x", img)
	}
	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/_catalog?n=2")
	var page struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if !slices.Equal(page.Repositories, []string{"a/one", "b/two"}) || !strings.Contains(resp.Header.Get("Link"), "last=b%2Ftwo") {
		t.Errorf("catalog page %v, Link %q", page.Repositories, resp.Header.Get("Link"))
	}
}

// TestL5_CatalogSharedAndStale: concurrent catalog requests queued behind
// one mutex, each crawling again (the second waited 360 s), and a failing
// upstream failed the catalog. Concurrent requests now share one crawl,
// and the last good catalog is served while the upstream fails.
func TestL5_CatalogSharedAndStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *proxy.Options) {
		o.Cache = resolve.CacheOptions{TTL: time.Millisecond, StaleIfError: time.Hour}
	})
	e.push("a/one:x", regtest.PlatformImage(t, "linux/amd64", false))
	e.reg.Reset()
	e.reg.SetDelay(200 * time.Millisecond)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/_catalog"); resp.StatusCode != 200 || !strings.Contains(string(body), "a/one") {
				t.Errorf("catalog: %d %s", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	e.reg.SetDelay(0)
	if crawls := e.reg.CountPath("/_catalog"); crawls != 1 {
		t.Errorf("10 concurrent catalog requests crawled %d times, want 1", crawls)
	}
	time.Sleep(5 * time.Millisecond) // past the TTL
	catalog := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/_catalog") }
	e.reg.SetFault(regtest.Refuse(catalog, http.StatusServiceUnavailable, "", ""))
	if resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/_catalog"); resp.StatusCode != 200 || !strings.Contains(string(body), "a/one") {
		t.Errorf("catalog with the upstream failing: %d %s", resp.StatusCode, body)
	}
}

package proxy_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dauth "github.com/distribution/distribution/v3/registry/auth"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
)

// TestContentNoCrossRepositoryLeak: a blob cached through repository a is
// served through b only once the upstream confirmed b has it (a HEAD,
// remembered); never through a repository that does not have it, and not
// through an unconfirmed one when the upstream cannot answer.
func TestContentNoCrossRepositoryLeak(t *testing.T) {
	t.Parallel()
	e, _, _ := contentEnv(t, 0)
	d, want := pushLayer(t, e, "a", 10000)
	if resp, _ := e.get(http.MethodGet, "/v2/a/blobs/"+d.String()); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	// b does not have it upstream.
	e.reg.Reset()
	resp, body := e.get(http.MethodGet, "/v2/b/blobs/"+d.String())
	if resp.StatusCode != 404 || ociError(t, body) != "BLOB_UNKNOWN" {
		t.Fatalf("a blob cached through a, asked through b (which lacks it): %d %s", resp.StatusCode, body)
	}
	if reqs := e.reg.Requests(); countRequests(reqs, "HEAD /v2/b/blobs/"+d.String()) != 1 {
		t.Errorf("want the upstream asked once whether b has it: %v", reqs)
	}
	// Now b has it: one HEAD, no GET, the bytes from the store.
	if err := remote.WriteLayer(regtest.Ref(t, e.reg.Host+"/"+"b:x").Context(), mustLayer(t, e, "a", d)); err != nil {
		t.Fatal(err)
	}
	e.reg.Reset()
	for range 3 {
		resp, body = e.get(http.MethodGet, "/v2/b/blobs/"+d.String())
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Fatalf("through b once it has it: %d", resp.StatusCode)
		}
	}
	reqs := e.reg.Requests()
	if countRequests(reqs, "HEAD /v2/b/blobs/"+d.String()) != 1 || len(contentRequests(reqs)) != 1 {
		t.Errorf("want one HEAD for b and nothing else: %v", reqs)
	}
	// Upstream down: a and b (confirmed) still pull; c (never confirmed)
	// does not get a's bytes.
	e.setFault(faults["down"])
	for _, repo := range []string{"a", "b"} {
		if resp, _ := e.get(http.MethodGet, "/v2/"+repo+"/blobs/"+d.String()); resp.StatusCode != 200 {
			t.Errorf("through %s with the upstream down: %d", repo, resp.StatusCode)
		}
	}
	if resp, body := e.get(http.MethodGet, "/v2/c/blobs/"+d.String()); resp.StatusCode == 200 || bytes.Equal(body, want) {
		t.Errorf("through c, never confirmed, with the upstream down: %d (%d bytes)", resp.StatusCode, len(body))
	}
}

// mustLayer is blob d of repo upstream, to copy to another repository.
func mustLayer(t *testing.T, e *env, repo string, d v1.Hash) v1.Layer {
	t.Helper()
	r, err := name.NewDigest(e.reg.Host+"/"+repo+"@"+d.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	l, err := remote.Layer(r)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestContentAccessRules: the client's rules apply to every (repository,
// digest): a cached blob does not open a repository the user may not read.
func TestContentAccessRules(t *testing.T) {
	t.Parallel()
	ctl, err := dauth.GetAccessController("htpasswd", map[string]any{"realm": "manifold", "path": regtest.Htpasswd(t, map[string]string{"alice": "a", "bob": "b"})})
	if err != nil {
		t.Fatal(err)
	}
	e, c, _ := contentEnv(t, 0, func(o *proxy.Options) {
		o.Access = &proxy.Access{Controller: ctl, Rules: []proxy.AccessRule{
			{Pattern: "shared", Read: []string{"alice", "bob"}, Write: []string{"alice"}},
			{Pattern: "private", Read: []string{"alice"}, Write: []string{"alice"}},
		}}
	})
	d, _ := pushLayer(t, e, "private", 1000)
	if err := remote.WriteLayer(regtest.Ref(t, e.reg.Host+"/"+"shared:x").Context(), mustLayer(t, e, "private", d)); err != nil {
		t.Fatal(err)
	}
	get := func(user, pw, method, path string) int {
		req, _ := http.NewRequest(method, e.proxy.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, _ := regtest.Do(t, req)
		return resp.StatusCode
	}
	if s := get("alice", "a", http.MethodGet, "/v2/private/blobs/"+d.String()); s != 200 {
		t.Fatalf("alice, private: %d", s)
	}
	waitStoredBlob(t, c, d)
	for _, tc := range []struct {
		user, pw, method, path string
		want                   int
	}{
		{"bob", "b", http.MethodGet, "/v2/private/blobs/" + d.String(), 403},
		{"bob", "b", http.MethodHead, "/v2/private/blobs/" + d.String(), 403},
		{"", "", http.MethodGet, "/v2/private/blobs/" + d.String(), 401},
		{"bob", "b", http.MethodGet, "/v2/shared/blobs/" + d.String(), 200},
		// Purging needs delete (write) access to the repository.
		{"", "", http.MethodDelete, "/_manifold/content/shared", 401},
		{"bob", "b", http.MethodDelete, "/_manifold/content/shared", 403},
		{"alice", "a", http.MethodDelete, "/_manifold/content/shared", 202},
	} {
		if s := get(tc.user, tc.pw, tc.method, tc.path); s != tc.want {
			t.Errorf("%s %s as %q: %d, want %d", tc.method, tc.path, tc.user, s, tc.want)
		}
	}
}

// TestContentDeleteAndPurge: a delete through the proxy drops the digest;
// purging a repository makes its content need the upstream's word again;
// purging a digest drops it for everyone.
func TestContentDeleteAndPurge(t *testing.T) {
	t.Parallel()
	e, c, _ := contentEnv(t, 0)
	ctx := context.Background()
	d, _ := pushLayer(t, e, "app", 1000)
	blobPath := "/v2/app/blobs/" + d.String()
	fetch := func(path string) int {
		resp, _ := e.get(http.MethodGet, path)
		return resp.StatusCode
	}
	if fetch(blobPath) != 200 {
		t.Fatal("first GET")
	}
	waitStoredBlob(t, c, d)
	if resp, _ := e.get(http.MethodDelete, blobPath); resp.StatusCode != 202 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if _, ok := c.Stat(ctx, content.Blob, d); ok {
		t.Error("a blob deleted through the proxy is still stored")
	}
	if s := fetch(blobPath); s != 404 {
		t.Errorf("GET after DELETE: %d", s)
	}

	d2, _ := pushLayer(t, e, "app", 1000)
	path2 := "/v2/app/blobs/" + d2.String()
	fetch(path2)
	waitStoredBlob(t, c, d2)
	if resp, body := e.get(http.MethodDelete, "/_manifold/content/app"); resp.StatusCode != 202 {
		t.Fatalf("purge app: %d %s", resp.StatusCode, body)
	}
	e.setFault(faults["down"])
	if s := fetch(path2); s == 200 {
		t.Error("after purging the repository, its content was served without the upstream's word")
	}
	e.setFault(nil)
	if s := fetch(path2); s != 200 {
		t.Errorf("after the upstream confirmed again: %d", s)
	}
	if resp, body := e.get(http.MethodDelete, "/_manifold/content/app?digest="+d2.String()); resp.StatusCode != 202 {
		t.Fatalf("purge digest: %d %s", resp.StatusCode, body)
	}
	if _, ok := c.Stat(ctx, content.Blob, d2); ok {
		t.Error("a purged digest is still stored")
	}
	if resp, body := e.get(http.MethodDelete, "/_manifold/content/app?digest=sha256:nope"); resp.StatusCode != 400 || ociError(t, body) != "DIGEST_INVALID" {
		t.Errorf("purge of a bad digest: %d %s", resp.StatusCode, body)
	}
	plain := newEnv(t)
	if resp, body := plain.get(http.MethodDelete, "/_manifold/content/app"); resp.StatusCode != 405 && ociError(t, body) != "UNSUPPORTED" {
		t.Errorf("purge without a content cache: %d %s", resp.StatusCode, body)
	}
}

// TestContentTagsAndManifests: manifests by digest and tags the proxy does
// not synthesize are served from the store, headers identical to the
// upstream's; a second pull costs only the tag's revalidation.
func TestContentTagsAndManifests(t *testing.T) {
	t.Parallel()
	e, c, clk := contentEnv(t, 0)
	img := regtest.PlatformImage(t, "linux/arm64", true)
	d := e.push("app:1-linux-arm64", img)
	accept := string(types.OCIManifestSchema1)
	upGet, upBody := regtest.Get(t, http.MethodGet, e.reg.URL+"/v2/app/manifests/1-linux-arm64", accept)
	for _, path := range []string{"/v2/app/manifests/1-linux-arm64", "/v2/app/manifests/" + d.String()} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodGet} {
			resp, body := e.get(m, path, accept)
			if resp.StatusCode != 200 || (m == http.MethodGet && !bytes.Equal(body, upBody)) {
				t.Fatalf("%s %s: %d", m, path, resp.StatusCode)
			}
			for _, h := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest"} {
				if resp.Header.Get(h) != upGet.Header.Get(h) {
					t.Errorf("%s %s: %s %q, upstream %q", m, path, h, resp.Header.Get(h), upGet.Header.Get(h))
				}
			}
		}
	}
	if _, ok := c.Stat(context.Background(), content.Manifest, d); !ok {
		t.Error("the manifest is not stored")
	}
	// A second pull within the TTL: nothing upstream. After it: only the
	// tag's HEAD.
	if _, err := pull(e.host, "app:1-linux-arm64", "linux/arm64"); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		ld, _ := l.Digest()
		waitStoredBlob(t, c, ld)
	}
	e.reg.Reset()
	if _, err := pull(e.host, "app:1-linux-arm64", "linux/arm64"); err != nil {
		t.Fatal(err)
	}
	if reqs := e.reg.Requests(); len(reqs) != 0 {
		t.Errorf("second pull within the TTL: %v", reqs)
	}
	clk.advance(time.Minute)
	if _, err := pull(e.host, "app:1-linux-arm64", "linux/arm64"); err != nil {
		t.Fatal(err)
	}
	if reqs := e.reg.Requests(); len(reqs) != 1 || reqs[0] != "HEAD /v2/app/manifests/1-linux-arm64" {
		t.Errorf("second pull after the TTL: %v; want only the tag's HEAD", reqs)
	}
	// A client that does not name the media type gets upstream's own
	// negotiation.
	if resp, body := e.get(http.MethodGet, "/v2/app/manifests/1-linux-arm64", string(types.DockerManifestSchema2)); resp.StatusCode != 404 {
		t.Errorf("an OCI manifest to a Docker-only client: %d %s (distribution answers 404)", resp.StatusCode, body)
	}
}

// TestContentMetrics: hits, misses, bytes by source, evictions, fills.
func TestContentMetrics(t *testing.T) {
	t.Parallel()
	e, c, _ := contentEnv(t, 0)
	d, _ := pushLayer(t, e, "app", 5000)
	e.get(http.MethodGet, "/v2/app/blobs/"+d.String())
	waitStoredBlob(t, c, d)
	for i := 0; i < 100 && c.Stats.FillsInFlight.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond) // the fill ends just after its commit
	}
	e.get(http.MethodGet, "/v2/app/blobs/"+d.String())
	resp, err := http.Get(e.proxy.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`manifold_content_hits_total{kind="blob"} 1`,
		`manifold_content_misses_total{kind="blob"} 1`,
		`manifold_content_bytes_total{source="store"} 5000`,
		`manifold_content_bytes_total{source="upstream"} 5000`,
		`manifold_content_evictions_total 0`,
		`manifold_content_fills_in_flight 0`,
		`manifold_content_stored_bytes 5000`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

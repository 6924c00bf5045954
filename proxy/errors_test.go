package proxy_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/upstream"
)

// TestBadInput (and TestL3_NamesOfThePathGrammar, its name rows): bad input
// gets a clear OCI error and never reaches the upstream.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		method, path string
		accept       []string
		status       int
		code         string
	}{
		{"GET", "/v2/UPPER/manifests/1", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/a..b/tags/list", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/" + strings.Repeat("a/", 130) + "x/manifests/1", nil, 400, "NAME_INVALID"},
		// L3: names of the reference grammar that are no repository path:
		// a domain with a port, an IPv6 literal, uppercase components.
		{"GET", "/v2/registry.example:5000/app/manifests/1", nil, 400, "NAME_INVALID"},
		{"POST", "/v2/localhost:5000/app/blobs/uploads/", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/[::1]/app/tags/list", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/Team/App/manifests/1", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/a/-b/manifests/1", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/a___b/manifests/1", nil, 400, "NAME_INVALID"},
		{"GET", "/v2/app/manifests/-bad", nil, 400, "TAG_INVALID"},
		{"GET", "/v2/app/manifests/" + strings.Repeat("t", 129), nil, 400, "TAG_INVALID"},
		{"GET", "/v2/app/manifests/sha256:abc", nil, 400, "DIGEST_INVALID"},
		{"HEAD", "/v2/app/manifests/md5:abc", nil, 400, ""},
		{"GET", "/v2/app/blobs/notadigest", nil, 400, "DIGEST_INVALID"},
		{"GET", "/v2/app/referrers/nope", nil, 400, "DIGEST_INVALID"},
		{"POST", "/v2/app/blobs/uploads/?mount=bad&from=x", nil, 400, "DIGEST_INVALID"},
		{"GET", "/v2/app/nothing/here", nil, 404, "UNSUPPORTED"},
		{"PATCH", "/v2/app/manifests/1", nil, 405, "UNSUPPORTED"},
		{"GET", "/v2/app/manifests/nope", []string{"text/html;q=abc, ,,, */*;q=2, a/b/c"}, 404, "MANIFEST_UNKNOWN"},
	}
	for _, tt := range tests {
		resp, body := regtest.Get(t, tt.method, e.proxy.URL+tt.path, tt.accept...)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: status %d, want %d: %s", tt.method, tt.path, resp.StatusCode, tt.status, body)
			continue
		}
		if tt.method == "HEAD" {
			continue
		}
		if code := ociError(t, body); code != tt.code {
			t.Errorf("%s %s: code %s, want %s", tt.method, tt.path, code, tt.code)
		}
	}
}

// TestUnreachableUpstream: a dead upstream is 502 UNAVAILABLE at once,
// never a hang or a panic.
func TestUnreachableUpstream(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	c, _ := upstream.New(upstream.Options{URL: "http://" + dead, Retry: upstream.Retry{Attempts: 2, Backoff: 10 * time.Millisecond}})
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}})
	for _, path := range []string{"/v2/app/manifests/1", "/v2/app/manifests/1-linux-amd64", "/v2/app/tags/list", "/v2/app/blobs/sha256:" + strings.Repeat("a", 64)} {
		start := time.Now()
		resp, body := regtest.Get(t, http.MethodGet, srv.URL+path)
		if resp.StatusCode != http.StatusBadGateway || ociError(t, body) != "UNAVAILABLE" {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %s", path, d)
		}
	}
	if resp, _ := regtest.Get(t, http.MethodGet, srv.URL+"/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with a dead upstream: %d", resp.StatusCode)
	}
}

// TestUpstreamErrorsKept: upstream's status and codes reach the client.
func TestUpstreamErrorsKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	tagList := func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/tags/list") }
	e.reg.SetFault(regtest.Refuse(tagList, http.StatusTooManyRequests, "TOOMANYREQUESTS", "slow down"))
	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1")
	if resp.StatusCode != http.StatusTooManyRequests || ociError(t, body) != "TOOMANYREQUESTS" || !strings.Contains(string(body), "slow down") {
		t.Errorf("429 upstream: %d %s", resp.StatusCode, body)
	}
}

// TestStaleIfError: once an index was served, an upstream outage past the
// TTL still serves it (within the stale-if-error window).
func TestStaleIfError(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := func() time.Time { return now }
	e := newEnv(t, func(o *proxy.Options) {
		o.Cache = resolve.CacheOptions{TTL: 30 * time.Second, StaleIfError: 5 * time.Minute, Now: clock}
	})
	e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	e.push("app:1-linux-arm64", regtest.PlatformImage(t, "linux/arm64", false))
	first, body1 := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1")
	if first.StatusCode != 200 {
		t.Fatal(first.StatusCode)
	}
	notPing := func(r *http.Request) bool { return r.URL.Path != "/v2/" }
	e.reg.SetFault(regtest.Refuse(notPing, http.StatusServiceUnavailable, "", ""))
	now = now.Add(2 * time.Minute)
	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1")
	if resp.StatusCode != 200 || !bytes.Equal(body, body1) {
		t.Errorf("within stale-if-error: %d %s", resp.StatusCode, body)
	}
	now = now.Add(10 * time.Minute)
	resp, body = regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("past stale-if-error: %d %s", resp.StatusCode, body)
	}
}

// TestOversizeAndMalformedMembers: a member manifest over 4 MiB and a
// member whose config is not JSON are excluded with a reason; the rest is
// served. go-containerregistry's registry is the upstream: it takes
// manifests of any size, which distribution refuses.
func TestOversizeAndMalformedMembers(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer up.Close()
	host := strings.TrimPrefix(up.URL, "http://")
	good := regtest.PlatformImage(t, "linux/amd64", false)
	if err := remote.Write(regtest.Ref(t, host+"/app:1-linux-amd64"), good); err != nil {
		t.Fatal(err)
	}
	repo, _ := name.NewRepository(host+"/app", name.Insecure)

	// A 5 MiB manifest: an image manifest padded with a huge annotation.
	cfg := static.NewLayer([]byte(`{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), types.DockerConfigJSON)
	if err := remote.WriteLayer(repo, cfg); err != nil {
		t.Fatal(err)
	}
	cd, _ := cfg.Digest()
	cs, _ := cfg.Size()
	huge, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1,
		"config":      map[string]any{"mediaType": types.OCIConfigJSON, "digest": cd, "size": cs},
		"layers":      []any{},
		"annotations": map[string]string{"pad": strings.Repeat("x", 5<<20)},
	})
	putManifest(t, up.URL+"/v2/app/manifests/1-linux-arm64", string(types.OCIManifestSchema1), huge)

	// A manifest whose config blob is not JSON.
	bad := static.NewLayer([]byte("this is not json"), types.DockerConfigJSON)
	if err := remote.WriteLayer(repo, bad); err != nil {
		t.Fatal(err)
	}
	bd, _ := bad.Digest()
	bs, _ := bad.Size()
	m, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": types.DockerManifestSchema2,
		"config": map[string]any{"mediaType": types.DockerConfigJSON, "digest": bd, "size": bs},
		"layers": []any{},
	})
	putManifest(t, up.URL+"/v2/app/manifests/1-linux-s390x", string(types.DockerManifestSchema2), m)

	c, _ := upstream.New(upstream.Options{URL: up.URL})
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}})
	resp, body := regtest.Get(t, http.MethodGet, srv.URL+"/v2/app/manifests/1")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	idx, _ := v1.ParseIndexManifest(bytes.NewReader(body))
	if fmtPlatforms(idx) != "linux/amd64/:" || idx.Manifests[0].Digest != mustDigest(t, good) {
		t.Errorf("entries %s", fmtPlatforms(idx))
	}
	// Only the bad ones: nothing left to serve, and the reasons say why.
	del, _ := name.NewTag(host+"/app:1-linux-amd64", name.Insecure)
	if err := remote.Delete(del); err != nil {
		t.Fatal(err)
	}
	c2, _ := upstream.New(upstream.Options{URL: up.URL})
	srv2 := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c2}}})
	resp, body = regtest.Get(t, http.MethodGet, srv2.URL+"/v2/app/manifests/1")
	if resp.StatusCode != 404 || ociError(t, body) != "MANIFEST_UNKNOWN" ||
		!strings.Contains(string(body), "over the 4194304-byte limit") || !strings.Contains(string(body), "malformed image config") {
		t.Errorf("all bad members: %d %s", resp.StatusCode, body)
	}
}

func putManifest(t *testing.T, url, mediaType string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	if resp, _ := regtest.Do(t, req); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %d", url, resp.StatusCode)
	}
}

// TestL7_UpstreamErrorsWithoutEnvelope: a bare 503 or a text/plain 404
// from the upstream (a load balancer, a CDN) reached clients without OCI
// error JSON or Retry-After. They now get both, with the status kept.
func TestL7_UpstreamErrorsWithoutEnvelope(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.reg.SetFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		switch {
		case strings.Contains(r.URL.Path, "/blobs/"):
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.HasSuffix(r.URL.Path, "/manifests/1.0-linux-amd64"):
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("404 page not found\n"))
		case strings.HasSuffix(r.URL.Path, "/manifests/real"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"upstream's own words"}]}`))
		default:
			return false
		}
		return true
	})
	for _, tc := range []struct {
		path, code, message string
		status              int
		retryAfter          bool
	}{
		{"/v2/app/blobs/sha256:" + strings.Repeat("a", 64), "UNAVAILABLE", "upstream answered 503", 503, true},
		{"/v2/app/manifests/1.0-linux-amd64", "MANIFEST_UNKNOWN", "upstream answered 404", 404, false},
		{"/v2/app/manifests/real", "MANIFEST_UNKNOWN", "upstream's own words", 404, false},
	} {
		resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+tc.path)
		var env struct {
			Errors []struct{ Code, Message string }
		}
		if resp.StatusCode != tc.status || json.Unmarshal(body, &env) != nil || len(env.Errors) != 1 ||
			env.Errors[0].Code != tc.code || env.Errors[0].Message != tc.message || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if got := resp.Header.Get("Retry-After") != ""; got != tc.retryAfter {
			t.Errorf("%s: Retry-After %q", tc.path, resp.Header.Get("Retry-After"))
		}
	}
}

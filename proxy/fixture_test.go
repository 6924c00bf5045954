package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/upstream"
)

// env is a real distribution v3 registry (in-process, in-memory storage)
// with a manifold proxy in front of it. Requests reaching the registry are
// counted, and a test can inject faults around it.
type env struct {
	t        testing.TB
	upstream string // host:port of the registry
	proxy    *httptest.Server
	host     string // host:port of the proxy

	mu       sync.Mutex
	requests []string // "METHOD path" seen by the registry
	fault    atomic.Pointer[func(http.ResponseWriter, *http.Request) bool]
	delay    atomic.Int64 // added latency per upstream request, ns
}

func newEnv(t testing.TB, opts ...func(*proxy.Options)) *env {
	t.Helper()
	e := &env{t: t}
	reg, err := embedded.Start(context.Background(), embedded.Options{Wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.mu.Lock()
			e.requests = append(e.requests, r.Method+" "+r.URL.Path)
			e.mu.Unlock()
			if d := e.delay.Load(); d > 0 {
				time.Sleep(time.Duration(d))
			}
			if f := e.fault.Load(); f != nil && (*f)(w, r) {
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close(context.Background()) })
	e.upstream = strings.TrimPrefix(reg.URL, "http://")
	e.proxy = e.newProxy(opts...)
	e.host = strings.TrimPrefix(e.proxy.URL, "http://")
	return e
}

// newProxy starts another proxy instance on the same upstream: a fresh
// process as far as caches and stores go.
func (e *env) newProxy(opts ...func(*proxy.Options)) *httptest.Server {
	e.t.Helper()
	srv := httptest.NewServer(e.newProxyHandler(opts...))
	e.t.Cleanup(srv.Close)
	return srv
}

// newProxyHandler builds a proxy on the env's upstream without serving it.
func (e *env) newProxyHandler(opts ...func(*proxy.Options)) *proxy.Proxy {
	e.t.Helper()
	c, err := upstream.New(upstream.Options{URL: "http://" + e.upstream})
	if err != nil {
		e.t.Fatal(err)
	}
	o := proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}, Cache: resolve.CacheOptions{TTL: time.Minute}}
	for _, f := range opts {
		f(&o)
	}
	p, err := proxy.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) upstreamRequests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.requests...)
}

func (e *env) resetRequests() {
	e.mu.Lock()
	e.requests = nil
	e.mu.Unlock()
}

func (e *env) setFault(f func(http.ResponseWriter, *http.Request) bool) {
	if f == nil {
		e.fault.Store(nil)
		return
	}
	e.fault.Store(&f)
}

// ref names repo:tag (or repo@digest) on host.
func ref(t testing.TB, host, repoRef string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(host+"/"+repoRef, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// push writes img upstream (not through the proxy) under repo:tag.
func (e *env) push(repoTag string, img v1.Image) v1.Hash {
	e.t.Helper()
	if err := remote.Write(ref(e.t, e.upstream, repoTag), img); err != nil {
		e.t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) pushIndex(repoTag string, idx v1.ImageIndex) v1.Hash {
	e.t.Helper()
	if err := remote.WriteIndex(ref(e.t, e.upstream, repoTag), idx); err != nil {
		e.t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// platformImage is a small random image whose config says the platform.
func platformImage(t testing.TB, platform string, oci bool) v1.Image {
	t.Helper()
	return regtest.PlatformImage(t, platform, oci)
}

// get sends a request to the proxy with the given Accept header lines.
func (e *env) do(method, path string, accept ...string) (*http.Response, []byte) {
	e.t.Helper()
	return do(e.t, e.proxy.URL, method, path, accept...)
}

func do(t testing.TB, base, method, path string, accept ...string) (*http.Response, []byte) {
	t.Helper()
	return regtest.Get(t, method, base+path, accept...)
}

// ociError decodes an error envelope and returns its first code.
func ociError(t testing.TB, b []byte) string {
	t.Helper()
	var env struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(b, &env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("not an OCI error envelope: %s", b)
	}
	return env.Errors[0].Code
}

func mustDigest(t testing.TB, x interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// attestationIndex is what buildx pushes for one platform: an index with
// the image and an attestation manifest that references it.
func attestationIndex(t testing.TB, img v1.Image, platform string) v1.ImageIndex {
	t.Helper()
	p, _ := v1.ParsePlatform(platform)
	// buildx's attestation manifests say unknown/unknown in their config.
	att := platformImage(t, "unknown/unknown", true)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{
				"vnd.docker.reference.type":   "attestation-manifest",
				"vnd.docker.reference.digest": mustDigest(t, img).String(),
			},
		}},
	)
	return idx
}

func fmtPlatforms(m *v1.IndexManifest) string {
	var s []string
	for _, d := range m.Manifests {
		s = append(s, fmt.Sprintf("%s/%s/%s:%s", d.Platform.OS, d.Platform.Architecture, d.Platform.Variant, d.Platform.OSVersion))
	}
	return strings.Join(s, " ")
}

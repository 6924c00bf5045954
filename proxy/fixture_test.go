package proxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
)

// env is a real distribution v3 registry (in-process, in-memory storage,
// regtest.Registry: requests counted, faults injected around it) with a
// manifold proxy in front of it.
type env struct {
	t     testing.TB
	reg   *regtest.Registry // the upstream
	proxy *httptest.Server
	host  string // host:port of the proxy
}

func newEnv(t testing.TB, opts ...func(*proxy.Options)) *env {
	t.Helper()
	e := &env{t: t, reg: regtest.NewRegistry(t)}
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
	o := proxy.Options{Upstreams: []proxy.Upstream{{Client: e.reg.Client(e.t)}}, Cache: resolve.CacheOptions{TTL: time.Minute}}
	for _, f := range opts {
		f(&o)
	}
	p, err := proxy.New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// push writes img (an image or an index) upstream, not through the proxy,
// under "repo:tag".
func (e *env) push(repoTag string, img any) v1.Hash {
	e.t.Helper()
	repo, tag, _ := strings.Cut(repoTag, ":")
	return e.reg.Push(e.t, repo, tag, img)
}

// get sends a request to the proxy with the given Accept header lines.
func (e *env) get(method, path string, accept ...string) (*http.Response, []byte) {
	e.t.Helper()
	return regtest.Get(e.t, method, e.proxy.URL+path, accept...)
}

// setFault has the upstream answer the requests f takes (nil: none).
func (e *env) setFault(f func(http.ResponseWriter, *http.Request) bool) {
	if f == nil {
		e.reg.SetFault(nil)
		return
	}
	e.reg.SetFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool { return f(w, r) })
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

func fmtPlatforms(m *v1.IndexManifest) string {
	var s []string
	for _, d := range m.Manifests {
		s = append(s, fmt.Sprintf("%s/%s/%s:%s", d.Platform.OS, d.Platform.Architecture, d.Platform.Variant, d.Platform.OSVersion))
	}
	return strings.Join(s, " ")
}

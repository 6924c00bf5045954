package proxy

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"

	"github.com/manifold-proxy/manifold/upstream"
)

func routeProxy(t testing.TB) *Proxy {
	t.Helper()
	c, err := upstream.New(upstream.Options{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Upstreams: []Upstream{{Client: c}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkPullRoute: whenever the scan routes a path, the router picks the
// same route with the same variables.
func checkPullRoute(t *testing.T, p *Proxy, path string) {
	route, vars, ok := pullRoute(path)
	if !ok {
		return
	}
	req := httptest.NewRequest(http.MethodGet, "http://proxy.test/", nil)
	req.URL.Path = path
	var m mux.RouteMatch
	if !p.router.Match(req, &m) || m.Route == nil || m.MatchErr != nil {
		t.Fatalf("%q: the scan routes it, the router matches nothing (%v)", path, m.MatchErr)
	}
	if m.Route.GetName() != route || !maps.Equal(vars, m.Vars) {
		t.Fatalf("%q: the scan gives %v, the router route %q with %v", path, vars, m.Route.GetName(), m.Vars)
	}
}

func TestPullRouteIsTheRouters(t *testing.T) {
	t.Parallel()
	p := routeProxy(t)
	for _, path := range pullRouteSeeds {
		checkPullRoute(t, p, path)
	}
	for path, want := range map[string]bool{
		"/v2/app/manifests/1.0": true, "/v2/a/b/blobs/sha256:00": true, "/v2/a/blobs/uploads/x": false,
		"/v2/a/manifests/": false, "/v2//manifests/x": false, "/v2/a/../b/manifests/x": false, "/v2/a/tags/list": false,
	} {
		if _, _, ok := pullRoute(path); ok != want {
			t.Errorf("pullRoute(%q) = %v, want %v", path, ok, want)
		}
	}
}

var pullRouteSeeds = []string{
	"/v2/app/manifests/1.0", "/v2/a/b/c/manifests/latest", "/v2/a/manifests/b/manifests/c", "/v2/a/blobs/sha256:abc",
	"/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/u", "/v2/a/blobs/uploads", "/v2/manifests/manifests/x", "/v2/x/tags/list",
	"/v2/a/manifests/x/blobs/y", "/v2/a/blobs/x/manifests/y", "/v2/_catalog/manifests/x", "/v2/a/referrers/sha256:1",
	"/v2//a/manifests/x", "/v2/a/./manifests/x", "/v2/a/manifests/x/", "/v2/%2e/manifests/x", "/v2/a b/manifests/x",
}

// FuzzPullRoute: for any path, the scan agrees with the router.
func FuzzPullRoute(f *testing.F) {
	for _, s := range pullRouteSeeds {
		f.Add(s)
	}
	p := routeProxy(f)
	f.Fuzz(func(t *testing.T, path string) {
		checkPullRoute(t, p, path)
	})
}

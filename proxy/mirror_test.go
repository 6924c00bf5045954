package proxy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	dauth "github.com/distribution/distribution/v3/registry/auth"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// mirrorEnv: a proxy with two upstreams, hub (the default, mirroring
// docker.io) and gh (prefix gh, mirroring ghcr.io), each a real registry
// holding per-platform tags under 1.0.
type mirrorEnv struct {
	hub, gh *regtest.Registry
	proxy   *httptest.Server
	queries *queryLog // the raw queries the upstreams received
}

type queryLog struct {
	mu sync.Mutex
	q  []string
}

func (l *queryLog) fault(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
	l.mu.Lock()
	l.q = append(l.q, r.URL.RawQuery)
	l.mu.Unlock()
	return false
}

func (l *queryLog) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.q, "&")
}

func newMirrorEnv(t *testing.T, opts ...func(*proxy.Options)) *mirrorEnv {
	t.Helper()
	e := &mirrorEnv{hub: regtest.NewRegistry(t), gh: regtest.NewRegistry(t), queries: &queryLog{}}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		e.hub.Push(t, "library/app", "1.0-"+strings.ReplaceAll(p, "/", "-"), regtest.PlatformImage(t, p, false))
	}
	for _, p := range []string{"linux/amd64", "linux/s390x"} {
		e.gh.Push(t, "org/app", "1.0-"+strings.ReplaceAll(p, "/", "-"), regtest.PlatformImage(t, p, false))
	}
	e.hub.SetFault(e.queries.fault)
	e.gh.SetFault(e.queries.fault)
	o := proxy.Options{Upstreams: []proxy.Upstream{
		{Client: e.hub.Client(t), MirrorOf: []string{"docker.io"}},
		{Prefix: "gh", Client: e.gh.Client(t), MirrorOf: []string{"ghcr.io"}},
	}}
	for _, f := range opts {
		f(&o)
	}
	e.proxy = regtest.StartProxy(t, o)
	return e
}

// manifest GETs name's 1.0 with query, and returns the status, the
// digest and the error code (if any).
func (e *mirrorEnv) manifest(t *testing.T, name, query string, user ...string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.proxy.URL+"/v2/"+name+"/manifests/1.0"+query, nil)
	for _, a := range regtest.AllManifestTypes {
		req.Header.Add("Accept", a)
	}
	if len(user) == 2 {
		req.SetBasicAuth(user[0], user[1])
	}
	resp, body := regtest.Do(t, req)
	code := ""
	if resp.StatusCode >= 400 {
		code = ociError(t, body)
	}
	return resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), code
}

// TestMirrorRouting: containerd's ?ns=<registry> chooses the upstream that
// mirrors that registry, under that registry's name for the repository;
// Docker Hub's library/ rule applies to docker.io's names and to requests
// without ns on the upstream that mirrors docker.io (dockerd's
// registry-mirrors); an ns that no upstream mirrors is 404 NAME_UNKNOWN
// without any upstream request, and never another registry's content.
func TestMirrorRouting(t *testing.T) {
	t.Parallel()
	e := newMirrorEnv(t)
	host := strings.TrimPrefix(e.proxy.URL, "http://")
	_, hubIdx, _ := e.manifest(t, "library/app", "?ns=docker.io")
	_, ghIdx, _ := e.manifest(t, "gh/org/app", "")
	if hubIdx == "" || ghIdx == "" || hubIdx == ghIdx {
		t.Fatalf("indexes: hub %q, gh %q", hubIdx, ghIdx)
	}
	for _, c := range []struct {
		name, query string
		status      int
		digest      string // "" for an error
		code        string
	}{
		{"library/app", "?ns=docker.io", 200, hubIdx, ""},
		{"app", "?ns=docker.io", 200, hubIdx, ""},               // Docker Hub's library/ rule
		{"app", "?ns=index.docker.io", 200, hubIdx, ""},         // one registry, three hosts
		{"app", "", 200, hubIdx, ""},                            // dockerd's registry-mirrors: no ns
		{"library/app", "", 200, hubIdx, ""},                    //
		{"org/app", "?ns=ghcr.io", 200, ghIdx, ""},              // the upstream that mirrors ghcr.io
		{"gh/org/app", "", 200, ghIdx, ""},                      // the same, by the proxy's own name
		{"org/app", "?ns=" + host, 404, "", "MANIFEST_UNKNOWN"}, // ns names the proxy: its own names (default upstream)
		{"gh/org/app", "?ns=" + host, 200, ghIdx, ""},           //
		{"org/app", "?ns=docker.io", 404, "", "MANIFEST_UNKNOWN"},
		{"org/app", "?ns=quay.io", 404, "", "NAME_UNKNOWN"},
		{"org/app", "?ns=registry.example.test%3A5000", 404, "", "NAME_UNKNOWN"},
		{"org/app", "?ns=not%20a%20registry", 404, "", "NAME_UNKNOWN"},
		{"org/app", "?n=1&ns=quay.io", 404, "", "NAME_UNKNOWN"},
	} {
		e.hub.Reset()
		e.gh.Reset()
		status, digest, code := e.manifest(t, c.name, c.query)
		if status != c.status || digest != c.digest || code != c.code {
			t.Errorf("GET /v2/%s/manifests/1.0%s: %d %q %s; want %d %q %s", c.name, c.query, status, digest, code, c.status, c.digest, c.code)
		}
		if c.code == "NAME_UNKNOWN" && len(e.hub.Requests())+len(e.gh.Requests()) > 0 {
			t.Errorf("%s%s: an unmirrored ns reached upstreams: %v %v", c.name, c.query, e.hub.Requests(), e.gh.Requests())
		}
	}
	if q := e.queries.all(); strings.Contains(q, "ns=") {
		t.Errorf("an upstream was sent ns: %s", q)
	}
}

// TestMirrorBlobsAndChildren: what containerd fetches after the tag —
// the child manifest and blobs by digest, each with ns — comes from the
// mirroring upstream.
func TestMirrorBlobsAndChildren(t *testing.T) {
	t.Parallel()
	e := newMirrorEnv(t)
	req, _ := http.NewRequest(http.MethodGet, e.proxy.URL+"/v2/org/app/manifests/1.0?ns=ghcr.io", nil)
	_, body := regtest.Do(t, req)
	var idx v1.IndexManifest
	if err := json.Unmarshal(body, &idx); err != nil || len(idx.Manifests) != 2 {
		t.Fatalf("index: %v %s", err, body)
	}
	child := idx.Manifests[1].Digest.String()
	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/org/app/manifests/"+child+"?ns=ghcr.io", regtest.AllManifestTypes...)
	var m v1.Manifest
	if resp.StatusCode != 200 || json.Unmarshal(body, &m) != nil {
		t.Fatalf("child %s: %d %s", child, resp.StatusCode, body)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/org/app/blobs/"+d.Digest.String()+"?ns=ghcr.io"); resp.StatusCode != 200 {
			t.Errorf("blob %s with ns=ghcr.io: %d", d.Digest, resp.StatusCode)
		}
		if resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/org/app/blobs/"+d.Digest.String()+"?ns=docker.io"); resp.StatusCode != 404 {
			t.Errorf("ghcr.io's blob %s served as docker.io's: %d", d.Digest, resp.StatusCode)
		}
	}
	if q := e.queries.all(); strings.Contains(q, "ns=") {
		t.Errorf("an upstream was sent ns: %s", q)
	}
}

// TestMirrorPoliciesAndAccess: policies and access rules match the
// repository's one name (prefix + upstream path), so a mirror request
// meets the rules of the proxy's own name for it.
func TestMirrorPoliciesAndAccess(t *testing.T) {
	t.Parallel()
	htpasswd := regtest.Htpasswd(t, map[string]string{"alice": "a-pw", "bob": "b-pw"})
	ctl, err := dauth.GetAccessController("htpasswd", map[string]any{"realm": "manifold", "path": htpasswd})
	if err != nil {
		t.Fatal(err)
	}
	e := newMirrorEnv(t, func(o *proxy.Options) {
		o.Policies = index.Rules{{Pattern: "library/*", Policy: index.Off}}
		o.Access = &proxy.Access{Controller: ctl, AnonymousRead: true, Rules: []proxy.AccessRule{
			{Pattern: "gh/org/*", Read: []string{"alice"}},
		}}
	})
	for _, c := range []struct {
		name, query string
		user        []string
		status      int
	}{
		{"library/app", "?ns=docker.io", nil, 404}, // policy off: no index
		{"app", "?ns=docker.io", nil, 404},
		{"app", "", nil, 404},
		{"org/app", "?ns=ghcr.io", nil, 401}, // gh/org/*: alice only
		{"org/app", "?ns=ghcr.io", []string{"bob", "b-pw"}, 403},
		{"org/app", "?ns=ghcr.io", []string{"alice", "a-pw"}, 200},
		{"gh/org/app", "", []string{"bob", "b-pw"}, 403},
		{"gh/org/app", "", []string{"alice", "a-pw"}, 200},
	} {
		if status, _, _ := e.manifest(t, c.name, c.query, c.user...); status != c.status {
			t.Errorf("%v GET /v2/%s/manifests/1.0%s: %d, want %d", c.user, c.name, c.query, status, c.status)
		}
	}
}

// TestMirrorAny: an upstream that mirrors "*" takes every ns no other
// upstream mirrors; an upstream whose url is the registry serves it
// before "*" does; and dockerd's names (no ns) with no default upstream
// go to docker.io's mirror, "*" included.
func TestMirrorAny(t *testing.T) {
	t.Parallel()
	anyReg, own := regtest.NewRegistry(t), regtest.NewRegistry(t)
	img := regtest.PlatformImage(t, "linux/arm64", false)
	anyReg.Push(t, "org/app", "1.0-linux-arm64", img)
	anyReg.Push(t, "library/app", "1.0-linux-arm64", img)
	ownImg := regtest.PlatformImage(t, "linux/amd64", false)
	own.Push(t, "org/app", "1.0-linux-amd64", ownImg)
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{
		{Prefix: "any", Client: anyReg.Client(t), MirrorOf: []string{"*"}},
		{Prefix: "own", Client: own.Client(t)},
	}})
	for query, want := range map[string]string{
		"?ns=quay.io":         "linux/arm64",
		"?ns=docker.io":       "linux/arm64", // ...also for docker.io, library/ rule included
		"?ns=" + own.Host:     "linux/amd64", // the registry the upstream is
		"":                    "linux/arm64", // no prefix, no default upstream: a Docker Hub name (dockerd), to docker.io's mirror
		"?ns=registry.test:1": "linux/arm64",
	} {
		name := "org/app"
		if query == "?ns=docker.io" {
			name = "app"
		}
		resp, body := regtest.Get(t, http.MethodGet, srv.URL+"/v2/"+name+"/manifests/1.0"+query, regtest.AllManifestTypes...)
		var idx v1.IndexManifest
		_ = json.Unmarshal(body, &idx)
		if resp.StatusCode != 200 || len(idx.Manifests) != 1 || idx.Manifests[0].Platform.Architecture != strings.Split(want, "/")[1] {
			t.Errorf("%s%s: %d %s, want the index of %s", name, query, resp.StatusCode, body, want)
		}
	}
}

// TestMirrorOfValidation: a registry has one mirror; entries are registry
// names.
func TestMirrorOfValidation(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	c := func() *upstream.Client { return reg.Client(t) }
	for _, ups := range [][]proxy.Upstream{
		{{Client: c(), MirrorOf: []string{"docker.io"}}, {Prefix: "b", Client: c(), MirrorOf: []string{"registry-1.docker.io"}}},
		{{Client: c(), MirrorOf: []string{"*"}}, {Prefix: "b", Client: c(), MirrorOf: []string{"*"}}},
		{{Client: c(), MirrorOf: []string{"https://ghcr.io"}}},
		{{Client: c(), MirrorOf: []string{"ghcr.io/org"}}},
	} {
		if _, err := proxy.New(proxy.Options{Upstreams: ups}); err == nil {
			t.Errorf("%+v accepted", ups)
		}
	}
}

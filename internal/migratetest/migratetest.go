package migratetest

import (
	"net/http"
	"testing"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// Proxy is a manifold proxy in front of a registry (not the registry's
// wrapper: it talks to the backend, so its requests are neither counted
// nor faulted).
type Proxy struct {
	URL string
}

// StartProxy starts proxy.New on reg with policies.
func StartProxy(t testing.TB, reg *regtest.Registry, policies index.Rules) *Proxy {
	t.Helper()
	c, err := upstream.New(upstream.Options{URL: reg.Backend})
	if err != nil {
		t.Fatal(err)
	}
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}, Policies: policies})
	return &Proxy{URL: srv.URL}
}

// Get fetches repo's manifest ref through the proxy, accepting every
// manifest type: the digest it reports, its bytes and HTTP status.
func (p *Proxy) Get(t testing.TB, repo, ref string) (string, []byte, int) {
	t.Helper()
	resp, b := regtest.Get(t, http.MethodGet, p.URL+"/v2/"+repo+"/manifests/"+ref, regtest.AllManifestTypes...)
	return resp.Header.Get("Docker-Content-Digest"), b, resp.StatusCode
}

// Legacy is the repository the tests migrate, and what was pushed.
type Legacy struct {
	Repo string
	// Digests of every pushed tag.
	Digests map[string]string
}

// SeedLegacy pushes a repository of legacy per-arch tags into repo, then
// resets reg's request log:
//   - 1.0-rc1: a base with a dash, three platforms (amd64, arm64, arm/v7);
//   - legacy: a single-platform bare tag (linux/amd64) and legacy-linux-arm64;
//   - 2.0: 2.0-linux-amd64 and 2.0-linux-arm64, whose config says amd64
//     (mislabeled: left out);
//   - solo: a group of one, solo-linux-amd64;
//   - 3.0: 3.0-linux-amd64 is a buildx index with an attestation,
//     3.0-linux-arm64 a plain image.
func SeedLegacy(t testing.TB, reg *regtest.Registry, repo string) *Legacy {
	t.Helper()
	l := &Legacy{Repo: repo, Digests: map[string]string{}}
	push := func(tag string, img any) {
		l.Digests[tag] = reg.Push(t, repo, tag, img).String()
	}
	image := func(platform string) any { return regtest.PlatformImage(t, platform, false) }
	push("1.0-rc1-linux-amd64", image("linux/amd64"))
	push("1.0-rc1-linux-arm64", image("linux/arm64/v8"))
	push("1.0-rc1-linux-arm-v7", image("linux/arm/v7"))
	push("legacy", image("linux/amd64"))
	push("legacy-linux-arm64", image("linux/arm64"))
	push("2.0-linux-amd64", image("linux/amd64"))
	push("2.0-linux-arm64", image("linux/amd64"))
	push("solo-linux-amd64", image("linux/amd64"))
	push("3.0-linux-amd64", regtest.BuildxIndex(t, regtest.PlatformImage(t, "linux/amd64", true), "linux/amd64"))
	push("3.0-linux-arm64", image("linux/arm64"))
	reg.Reset()
	return l
}

package proxy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// TestUpstreamPrefixes: repositories are routed to upstreams by prefix;
// names, Locations and the catalog carry the prefix, upstreams never see it.
func TestUpstreamPrefixes(t *testing.T) {
	t.Parallel()
	defURL, otherURL := regtest.NewRegistry(t).URL, regtest.NewRegistry(t).URL
	def, _ := upstream.New(upstream.Options{URL: defURL})
	other, _ := upstream.New(upstream.Options{URL: otherURL})
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: def}, {Prefix: "mirror", Client: other}}})
	host := strings.TrimPrefix(srv.URL, "http://")

	onDefault := regtest.PlatformImage(t, "linux/amd64", false)
	onOther := regtest.PlatformImage(t, "linux/arm64", false)
	if err := remote.Write(regtest.Ref(t, host+"/team/app:1-linux-amd64"), onDefault); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(regtest.Ref(t, host+"/mirror/team/app:1-linux-arm64"), onOther); err != nil {
		t.Fatal(err)
	}
	// Each upstream got its own image under the unprefixed name.
	if _, err := remote.Head(regtest.Ref(t, strings.TrimPrefix(otherURL, "http://")+"/team/app:1-linux-arm64")); err != nil {
		t.Errorf("prefixed push did not reach its upstream: %v", err)
	}
	if _, err := remote.Head(regtest.Ref(t, strings.TrimPrefix(defURL, "http://")+"/team/app:1-linux-arm64")); err == nil {
		t.Error("prefixed push leaked to the default upstream")
	}
	for repo, want := range map[string]v1.Image{"team/app:1": onDefault, "mirror/team/app:1": onOther} {
		idx, err := remote.Index(regtest.Ref(t, host+"/"+repo))
		if err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
		m, _ := idx.IndexManifest()
		if len(m.Manifests) != 1 || m.Manifests[0].Digest != mustDigest(t, want) {
			t.Errorf("%s: %s", repo, fmtPlatforms(m))
		}
	}
	resp, body := regtest.Get(t, http.MethodGet, srv.URL+"/v2/_catalog")
	var cat struct{ Repositories []string }
	_ = json.Unmarshal(body, &cat)
	if resp.StatusCode != 200 || strings.Join(cat.Repositories, " ") != "mirror/team/app team/app" {
		t.Errorf("catalog: %d %s", resp.StatusCode, body)
	}
	resp, _ = regtest.Get(t, http.MethodPost, srv.URL+"/v2/mirror/x/blobs/uploads/")
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/v2/mirror/x/blobs/uploads/") {
		t.Errorf("upload Location on a prefixed upstream: %q", loc)
	}
}

// TestL6_OneRegistryUnderTwoPrefixes: the same registry under two
// prefixes passed validation, then crashed at start (a duplicate metrics
// collector). It now serves under both.
func TestL6_OneRegistryUnderTwoPrefixes(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	a, _ := upstream.New(upstream.Options{URL: reg.URL})
	b, _ := upstream.New(upstream.Options{URL: reg.URL})
	p, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Prefix: "one", Client: a}, {Prefix: "two", Client: b}}})
	if err != nil {
		t.Fatalf("one registry under two prefixes: %v", err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img := regtest.PlatformImage(t, "linux/amd64", false)
	if err := remote.Write(regtest.Ref(t, host+"/one/app:1-linux-amd64"), img); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Index(regtest.Ref(t, host+"/two/app:1")); err != nil {
		t.Errorf("the same repository under the other prefix: %v", err)
	}
	resp, body := regtest.Get(t, http.MethodGet, srv.URL+"/metrics")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `prefix="two"`) {
		t.Errorf("metrics: %d", resp.StatusCode)
	}
}

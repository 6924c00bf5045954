package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// TestUpstreamCredentials: an upstream that requires a login is read and
// written with the proxy's static credentials; clients of the proxy need
// none, and a proxy with wrong credentials says so.
func TestUpstreamCredentials(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := embedded.Start(context.Background(), embedded.Options{Htpasswd: htpasswd})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close(context.Background())
	host := strings.TrimPrefix(reg.URL, "http://")
	ci := authn.FromConfig(authn.AuthConfig{Username: "ci", Password: "s3cret"})

	img := platformImage(t, "linux/arm64", false)
	r, _ := name.NewTag(host+"/private/app:1-linux-arm64", name.Insecure)
	if err := remote.Write(r, img); err != nil == false {
		t.Fatal("the upstream must refuse anonymous pushes")
	}
	if err := remote.Write(r, img, remote.WithAuth(ci)); err != nil {
		t.Fatal(err)
	}

	serve := func(auth authn.Authenticator) string {
		c, err := upstream.New(upstream.Options{URL: reg.URL, Auth: auth})
		if err != nil {
			t.Fatal(err)
		}
		p, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(p)
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	good := serve(ci)
	got, err := remote.Image(ref(t, good, "private/app:1"), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatalf("pull through a proxy with credentials: %v", err)
	}
	if mustDigest(t, got) != mustDigest(t, img) {
		t.Error("wrong image")
	}
	// Pushes through the proxy use its credentials too.
	if err := remote.Write(ref(t, good, "private/app:1-linux-amd64"), platformImage(t, "linux/amd64", false)); err != nil {
		t.Errorf("push through a proxy with credentials: %v", err)
	}

	bad := serve(authn.FromConfig(authn.AuthConfig{Username: "ci", Password: "wrong"}))
	resp, body := do(t, "http://"+bad, http.MethodGet, "/v2/private/app/manifests/1")
	if resp.StatusCode != http.StatusForbidden || ociError(t, body) != "UNAUTHORIZED" || !strings.Contains(string(body), "upstream refused the proxy's credentials") {
		t.Errorf("wrong upstream credentials: %d %s", resp.StatusCode, body)
	}
}

package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
)

// TestPushThroughProxyThenPull: a publisher pushes per-platform tags
// through the proxy (blob uploads, chunked and monolithic, manifest PUTs)
// and immediately pulls the bare tag through it.
func TestPushThroughProxyThenPull(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := map[string]v1.Hash{}
	for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} {
		img := regtest.PlatformImage(t, p, true)
		pl, _ := v1.ParsePlatform(p)
		tag := "1.0-" + strings.ReplaceAll(p, "/", "-")
		if err := remote.Write(regtest.Ref(t, e.host+"/team/app:"+tag), img); err != nil {
			t.Fatalf("push %s through proxy: %v", tag, err)
		}
		want[pl.String()] = mustDigest(t, img)
	}
	for p, d := range want {
		pl, _ := v1.ParsePlatform(p)
		img, err := remote.Image(regtest.Ref(t, e.host+"/team/app:1.0"), remote.WithPlatform(*pl))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if mustDigest(t, img) != d {
			t.Errorf("%s: pulled %s, pushed %s", p, mustDigest(t, img), d)
		}
	}
	// What was pushed is upstream, under the same names.
	if _, err := remote.Head(regtest.Ref(t, e.reg.Host+"/team/app:1.0-linux-arm-v7")); err != nil {
		t.Errorf("pushed tag not upstream: %v", err)
	}

	// A cross-repository mount through the proxy.
	img := regtest.PlatformImage(t, "linux/amd64", false)
	if err := remote.Write(regtest.Ref(t, e.host+"/team/src:x"), img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	resp, body := regtest.Get(t, http.MethodPost, e.proxy.URL+"/v2/team/dst/blobs/uploads/?mount="+ld.String()+"&from=team/src")
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") != "/v2/team/dst/blobs/"+ld.String() {
		t.Errorf("mount: %d Location %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	// A new tag is visible through the proxy at once (cache invalidated).
	if err := remote.Write(regtest.Ref(t, e.host+"/team/app:1.0-linux-s390x"), regtest.PlatformImage(t, "linux/s390x", true)); err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(regtest.Ref(t, e.host+"/team/app:1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := idx.IndexManifest(); len(m.Manifests) != 4 {
		t.Errorf("after pushing s390x through the proxy: %s", fmtPlatforms(m))
	}
}

// TestUploadLocationRewritten: upload sessions are the proxy's URLs.
func TestUploadLocationRewritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, body := regtest.Get(t, http.MethodPost, e.proxy.URL+"/v2/some/repo/blobs/uploads/")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "/v2/some/repo/blobs/uploads/") || strings.Contains(loc, e.reg.Host) {
		t.Fatalf("start upload: %d Location %q %s", resp.StatusCode, loc, body)
	}
	resp, _ = regtest.Get(t, http.MethodGet, e.proxy.URL+loc)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("upload status through the proxy: %d", resp.StatusCode)
	}
	resp, _ = regtest.Get(t, http.MethodDelete, e.proxy.URL+loc)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("cancel upload: %d", resp.StatusCode)
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *proxy.Options) { o.ReadOnly = true })
	e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	img, _ := random.Image(10, 1)
	err := remote.Write(regtest.Ref(t, e.host+"/app:2-linux-amd64"), img)
	if err == nil || !strings.Contains(err.Error(), "UNSUPPORTED") {
		t.Errorf("push to a read-only proxy: %v", err)
	}
	for _, req := range []struct{ method, path string }{
		{http.MethodPost, "/v2/app/blobs/uploads/"},
		{http.MethodPut, "/v2/app/manifests/x"},
		{http.MethodDelete, "/v2/app/manifests/1-linux-amd64"},
		{http.MethodDelete, "/v2/app/blobs/sha256:" + strings.Repeat("a", 64)},
	} {
		resp, body := regtest.Get(t, req.method, e.proxy.URL+req.path)
		if resp.StatusCode != http.StatusMethodNotAllowed || ociError(t, body) != "UNSUPPORTED" {
			t.Errorf("%s %s: %d %s", req.method, req.path, resp.StatusCode, body)
		}
	}
	// Reads still work.
	if _, err := remote.Index(regtest.Ref(t, e.host+"/app:1")); err != nil {
		t.Errorf("read-only proxy must still serve: %v", err)
	}
}

func TestDeleteThroughProxy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	e.push("app:1-linux-arm64", regtest.PlatformImage(t, "linux/arm64", false))
	if _, err := remote.Index(regtest.Ref(t, e.host+"/app:1")); err != nil {
		t.Fatal(err)
	}
	d, err := name.NewTag(e.host+"/app:1-linux-arm64", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(d); err != nil {
		t.Fatalf("delete through proxy: %v", err)
	}
	idx, err := remote.Index(regtest.Ref(t, e.host+"/app:1"))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := idx.IndexManifest(); fmtPlatforms(m) != "linux/amd64/:" {
		t.Errorf("after deleting arm64: %s", fmtPlatforms(m))
	}
}

// TestL8_ManifestCapOnTheBytes: the manifest size cap checked only a
// declared Content-Length: a chunked 10 MB PUT was streamed upstream. The
// bytes are counted now; over the cap is 413 and the upstream sees nothing.
func TestL8_ManifestCapOnTheBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *proxy.Options) { o.MaxManifestBytes = 1 << 20 })
	e.reg.Reset()
	for name, length := range map[string]int64{"chunked": -1, "declared": 10 << 20} {
		body := io.MultiReader(strings.NewReader(`{"schemaVersion":2,"x":"`), strings.NewReader(strings.Repeat("a", 10<<20)))
		req, _ := http.NewRequest(http.MethodPut, e.proxy.URL+"/v2/app/manifests/big", body)
		req.ContentLength = length
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, b := regtest.Do(t, req)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "MANIFEST_INVALID") {
			t.Errorf("%s 10 MB manifest: %d %s", name, resp.StatusCode, b)
		}
	}
	for _, r := range e.reg.Requests() {
		if strings.Contains(r, "/manifests/") {
			t.Errorf("an oversized manifest reached the upstream: %s", r)
		}
	}
	// Under the cap, chunked or not, it still goes through.
	img := regtest.PlatformImage(t, "linux/amd64", true)
	if err := remote.Write(regtest.Ref(t, e.host+"/app:small"), img); err != nil {
		t.Errorf("a normal push: %v", err)
	}
}

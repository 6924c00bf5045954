package proxy_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/store"
	"github.com/manifold-proxy/manifold/upstream"
)

// arm64 images say "v8" in their config, as buildx and dockerd write it.
var platforms = []string{"linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/arm/v6", "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64"}

const (
	dockerAccept = "application/vnd.docker.distribution.manifest.v2+json"
	listAccept   = "application/vnd.docker.distribution.manifest.list.v2+json"
	ociManifest  = "application/vnd.oci.image.manifest.v1+json"
	ociIndex     = "application/vnd.oci.image.index.v1+json"
)

// TestPullEveryPlatform: per-platform tags upstream, one bare tag through
// the proxy, and each platform's client gets exactly the image pushed for
// it.
func TestPullEveryPlatform(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := map[string]v1.Hash{}
	for _, p := range platforms {
		pl, _ := platform.Parse(p)
		want[p] = e.push("app:1.4-rc1-"+index.FormatSuffix(pl), regtest.PlatformImage(t, p, false))
	}
	// A look-alike that is not a member, and another group.
	e.push("app:my-linux-tool", regtest.PlatformImage(t, "linux/amd64", false))
	e.push("app:2.0-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))

	idx, err := remote.Index(regtest.Ref(t, e.host+"/app:1.4-rc1"))
	if err != nil {
		t.Fatalf("pull index through proxy: %v", err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("synthesized index does not validate: %v", err)
	}
	m, _ := idx.IndexManifest()
	if m.MediaType != types.DockerManifestList || len(m.Manifests) != len(platforms) {
		t.Fatalf("index: %s with %d entries, want Docker list of %d: %s", m.MediaType, len(m.Manifests), len(platforms), fmtPlatforms(m))
	}
	for _, p := range platforms {
		pl, _ := v1.ParsePlatform(p)
		img, err := remote.Image(regtest.Ref(t, e.host+"/app:1.4-rc1"), remote.WithPlatform(*pl))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if got := mustDigest(t, img); got != want[p] {
			t.Errorf("%s: got %s, pushed %s", p, got, want[p])
		}
		cf, _ := img.ConfigFile()
		if cf.OS+"/"+cf.Architecture != pl.OS+"/"+pl.Architecture {
			t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
		}
	}
}

// TestDigestOnAnotherReplica: containerd resolves the tag with HEAD, then
// GETs the digest — possibly on another replica that never saw the tag.
func TestDigestOnAnotherReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range platforms[:3] {
		pl, _ := platform.Parse(p)
		e.push("app:1.0-"+index.FormatSuffix(pl), regtest.PlatformImage(t, p, true))
	}
	accept := "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*"
	head, _ := regtest.Get(t, http.MethodHead, e.proxy.URL+"/v2/app/manifests/1.0", accept)
	if head.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %d", head.StatusCode)
	}
	dgst := head.Header.Get("Docker-Content-Digest")
	if head.Header.Get("Content-Type") != ociIndex {
		t.Errorf("OCI members must give an OCI index, got %s", head.Header.Get("Content-Type"))
	}

	second := e.newProxy()
	resp, body := regtest.Get(t, http.MethodGet, second.URL+"/v2/app/manifests/"+dgst, accept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET by digest on a second proxy: %d %s", resp.StatusCode, body)
	}
	h, _, _ := v1.SHA256(bytes.NewReader(body))
	if h.String() != dgst || resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Errorf("second replica served %s (header %s), HEAD said %s", h, resp.Header.Get("Docker-Content-Digest"), dgst)
	}
	// And once computed, it is served from the store: no upstream traffic.
	e.reg.Reset()
	if resp, _ := regtest.Get(t, http.MethodGet, second.URL+"/v2/app/manifests/"+dgst); resp.StatusCode != http.StatusOK {
		t.Fatalf("second GET by digest: %d", resp.StatusCode)
	}
	if reqs := e.reg.Requests(); len(reqs) != 0 {
		t.Errorf("stored index still went upstream: %v", reqs)
	}
	// An unknown digest is MANIFEST_UNKNOWN, from any replica.
	resp, body = regtest.Get(t, http.MethodGet, second.URL+"/v2/app/manifests/sha256:"+strings.Repeat("ab", 32))
	if resp.StatusCode != http.StatusNotFound || ociError(t, body) != "MANIFEST_UNKNOWN" {
		t.Errorf("unknown digest: %d %s", resp.StatusCode, body)
	}
}

// TestHeadGetHeaders: HEAD and GET agree, and the body is what was hashed.
func TestHeadGetHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push("app:v-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	e.push("app:v-linux-arm64", regtest.PlatformImage(t, "linux/arm64", false))
	for _, path := range []string{"/v2/app/manifests/v", "/v2/app/manifests/v-linux-arm64"} {
		head, hb := regtest.Get(t, http.MethodHead, e.proxy.URL+path)
		get, body := regtest.Get(t, http.MethodGet, e.proxy.URL+path)
		if head.StatusCode != 200 || get.StatusCode != 200 || len(hb) != 0 {
			t.Fatalf("%s: HEAD %d (%d body bytes), GET %d", path, head.StatusCode, len(hb), get.StatusCode)
		}
		for _, h := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Etag"} {
			if head.Header.Get(h) != get.Header.Get(h) {
				t.Errorf("%s: %s differs: HEAD %q GET %q", path, h, head.Header.Get(h), get.Header.Get(h))
			}
		}
		d, _, _ := v1.SHA256(bytes.NewReader(body))
		if get.Header.Get("Docker-Content-Digest") != d.String() || get.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("%s: headers do not describe the body", path)
		}
	}
}

// TestAcceptNegotiation covers dockerd's multi-line Accept, containerd's
// comma-joined one, no Accept at all, and clients that cannot read lists.
func TestAcceptNegotiation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	amd64 := e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	e.push("app:1-linux-arm64", regtest.PlatformImage(t, "linux/arm64", false))
	e.push("oci:1-linux-arm64", regtest.PlatformImage(t, "linux/arm64", true))

	tests := []struct {
		name, path string
		accept     []string
		status     int
		mediaType  string
		digest     string
	}{
		{"no accept gets the index", "/v2/app/manifests/1", nil, 200, listAccept, ""},
		{"dockerd multi-line", "/v2/app/manifests/1", []string{ociIndex, dockerAccept, listAccept, ociManifest}, 200, listAccept, ""},
		{"containerd one line", "/v2/app/manifests/1", []string{dockerAccept + ", " + listAccept + ", " + ociManifest + ", " + ociIndex + ", */*"}, 200, listAccept, ""},
		{"q-values", "/v2/app/manifests/1", []string{"application/vnd.docker.distribution.manifest.list.v2+json;q=0.5, application/vnd.docker.distribution.manifest.v2+json;q=0.9"}, 200, listAccept, ""},
		{"list refused with q=0", "/v2/app/manifests/1", []string{"*/*, " + listAccept + ";q=0"}, 200, dockerAccept, amd64.String()},
		{"schema2 only gets the amd64 child", "/v2/app/manifests/1", []string{dockerAccept}, 200, dockerAccept, amd64.String()},
		{"OCI-only client cannot read a Docker list or child", "/v2/app/manifests/1", []string{ociManifest}, 404, "", ""},
		{"no amd64 member for a list-blind client", "/v2/oci/manifests/1", []string{ociManifest}, 404, "", ""},
		{"garbage accept is ignored", "/v2/app/manifests/1", []string{";;;, /, a/b/c"}, 200, listAccept, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+tt.path, tt.accept...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status != 200 {
				if code := ociError(t, body); code != "MANIFEST_UNKNOWN" {
					t.Errorf("code %s", code)
				}
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tt.mediaType {
				t.Errorf("Content-Type %s, want %s", got, tt.mediaType)
			}
			if tt.digest != "" && resp.Header.Get("Docker-Content-Digest") != tt.digest {
				t.Errorf("digest %s, want %s", resp.Header.Get("Docker-Content-Digest"), tt.digest)
			}
		})
	}
}

func TestDefaultPlatformOption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	arm := e.push("app:1-linux-arm-v6", regtest.PlatformImage(t, "linux/arm/v6", false))
	e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	srv := e.newProxy(func(o *proxy.Options) {
		o.DefaultPlatform = &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}
	})
	resp, body := regtest.Get(t, http.MethodGet, srv.URL+"/v2/app/manifests/1", dockerAccept)
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != arm.String() {
		t.Fatalf("default platform arm/v6: %d %s %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), body)
	}
}

// TestAttestationMember: a buildx member (image + attestation in an index)
// is flattened; the attestation follows its image; no nested index.
func TestAttestationMember(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := regtest.PlatformImage(t, "linux/arm64/v8", true)
	e.push("app:2-linux-arm64", regtest.BuildxIndex(t, img, "linux/arm64/v8"))
	e.push("app:2-linux-amd64", regtest.PlatformImage(t, "linux/amd64", true))

	idx, err := remote.Index(regtest.Ref(t, e.host+"/app:2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate: %v", err)
	}
	m, _ := idx.IndexManifest()
	if got := fmtPlatforms(m); got != "linux/amd64/: linux/arm64/v8: unknown/unknown/:" {
		t.Fatalf("entries %s", got)
	}
	if m.Manifests[1].Digest != mustDigest(t, img) || m.Manifests[2].Annotations["vnd.docker.reference.digest"] != mustDigest(t, img).String() {
		t.Errorf("attestation does not follow its image: %+v", m.Manifests)
	}
	for _, d := range m.Manifests {
		if d.MediaType.IsIndex() {
			t.Errorf("nested index %s", d.Digest)
		}
	}
}

// TestWindowsOSVersions: two windows/amd64 images that differ in os.version
// are both listed, with os.version from their configs.
func TestWindowsOSVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ltsc2019 := regtest.PlatformImage(t, "windows/amd64:10.0.17763.6659", false)
	ltsc2022 := regtest.PlatformImage(t, "windows/amd64:10.0.20348.2966", false)
	win := mutateIndex(t, ltsc2022, ltsc2019)
	e.push("app:3-windows-amd64", win)
	e.push("app:3-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))

	idx, err := remote.Index(regtest.Ref(t, e.host+"/app:3"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	if got := fmtPlatforms(m); got != "linux/amd64/: windows/amd64/:10.0.17763.6659 windows/amd64/:10.0.20348.2966" {
		t.Fatalf("entries %s", got)
	}
	for _, osv := range []string{"10.0.17763.6659", "10.0.20348.2966"} {
		img, err := remote.Image(regtest.Ref(t, e.host+"/app:3"), remote.WithPlatform(v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: osv}))
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.OSVersion != osv {
			t.Errorf("asked for %s, got %s", osv, cf.OSVersion)
		}
	}
}

// TestMislabeledMember: a member whose config contradicts its tag is left
// out; when nothing is left, the bare tag is MANIFEST_UNKNOWN naming why.
func TestMislabeledMember(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push("app:4-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	e.push("app:4-linux-arm64", regtest.PlatformImage(t, "linux/amd64", false)) // wrong arch inside
	e.push("app:4-linux-arm-v6", regtest.PlatformImage(t, "linux/arm/v7", false))

	idx, err := remote.Index(regtest.Ref(t, e.host+"/app:4"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	if got := fmtPlatforms(m); got != "linux/amd64/:" {
		t.Errorf("mislabeled members must be excluded: %s", got)
	}

	e.push("bad:1-linux-arm64", regtest.PlatformImage(t, "linux/amd64", false))
	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/bad/manifests/1")
	if resp.StatusCode != 404 || ociError(t, body) != "MANIFEST_UNKNOWN" || !strings.Contains(string(body), "1-linux-arm64") || !strings.Contains(string(body), "config says linux/amd64") {
		t.Errorf("all excluded: %d %s", resp.StatusCode, body)
	}
}

// TestMergePolicy: a legacy bare amd64 image joins the index; an explicit
// suffixed amd64 tag beats it; other policies behave as configured.
func TestMergePolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *proxy.Options) {
		o.Policies = index.Rules{
			{Pattern: "override/*", Policy: index.Override},
			{Pattern: "fallback/*", Policy: index.Fallback},
			{Pattern: "off/*", Policy: index.Off},
		}
	})
	legacy := regtest.PlatformImage(t, "linux/amd64", false)
	arm := regtest.PlatformImage(t, "linux/arm64", false)
	for _, repo := range []string{"merge/app", "override/app", "fallback/app", "off/app"} {
		e.push(repo+":1.0", legacy)
		e.push(repo+":1.0-linux-arm64", arm)
	}
	check := func(repo, want string) {
		t.Helper()
		resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/"+repo+"/manifests/1.0")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", repo, resp.StatusCode, body)
		}
		got := "image:" + resp.Header.Get("Docker-Content-Digest")
		if mt := resp.Header.Get("Content-Type"); mt == listAccept || mt == ociIndex {
			m, _ := v1.ParseIndexManifest(bytes.NewReader(body))
			got = fmtPlatforms(m)
		}
		if got != want {
			t.Errorf("%s: got %s, want %s", repo, got, want)
		}
	}
	check("merge/app", "linux/amd64/: linux/arm64/v8:")
	check("override/app", "linux/arm64/v8:")
	check("fallback/app", "image:"+mustDigest(t, legacy).String())
	check("off/app", "image:"+mustDigest(t, legacy).String())

	// A suffixed amd64 member wins over the bare image.
	fresh := e.push("merge/app:1.0-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	srv := e.newProxy()
	img, err := remote.Image(regtest.Ref(t, strings.TrimPrefix(srv.URL, "http://")+"/merge/app:1.0"), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	if mustDigest(t, img) != fresh {
		t.Errorf("suffixed amd64 must beat the bare image")
	}

	// A real index under the bare tag passes through untouched.
	real := mutateIndex(t, arm)
	want := e.push("merge/real:2", real)
	e.push("merge/real:2-linux-amd64", legacy)
	resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/merge/real/manifests/2")
	if resp.Header.Get("Docker-Content-Digest") != want.String() {
		t.Errorf("real index not passed through: %s", resp.Header.Get("Docker-Content-Digest"))
	}
}

// TestPassThrough: member tags, plain tags and unknown tags are upstream's
// answers, byte for byte.
func TestPassThrough(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	member := e.push("app:5-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	plain := e.push("app:latest", regtest.PlatformImage(t, "linux/amd64", false))
	for tag, want := range map[string]v1.Hash{"5-linux-amd64": member, "latest": plain} {
		resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/"+tag, dockerAccept)
		d, _, _ := v1.SHA256(bytes.NewReader(body))
		if resp.StatusCode != 200 || d != want {
			t.Errorf("%s: %d %s, want %s", tag, resp.StatusCode, d, want)
		}
	}
	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/nope")
	if resp.StatusCode != 404 || ociError(t, body) != "MANIFEST_UNKNOWN" {
		t.Errorf("unknown tag: %d %s", resp.StatusCode, body)
	}
	resp, body = regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/nothere/tags/list")
	if resp.StatusCode != 404 || ociError(t, body) != "NAME_UNKNOWN" {
		t.Errorf("unknown repository: %d %s", resp.StatusCode, body)
	}
}

// TestReferrersOfSynthesized: nothing refers to an index nobody pushed.
func TestReferrersOfSynthesized(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push("app:6-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	resp, _ := regtest.Get(t, http.MethodHead, e.proxy.URL+"/v2/app/manifests/6")
	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/referrers/"+resp.Header.Get("Docker-Content-Digest"))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ociIndex {
		t.Fatalf("referrers: %d %s", resp.StatusCode, body)
	}
	m, err := v1.ParseIndexManifest(bytes.NewReader(body))
	if err != nil || len(m.Manifests) != 0 {
		t.Errorf("referrers of a synthesized index: %s", body)
	}
}

// mutateIndex is a Docker-typed index (go-containerregistry's empty.Index)
// of imgs, each listed with the platform its config says.
func mutateIndex(t *testing.T, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	for _, img := range imgs {
		cf, _ := img.ConfigFile()
		mt, _ := img.MediaType()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{MediaType: mt, Platform: cf.Platform()}})
	}
	return idx
}

// TestRequiredPlatforms: while a CI is still pushing arches, an index
// missing a required platform is not served.
func TestRequiredPlatforms(t *testing.T) {
	t.Parallel()
	amd, _ := platform.Parse("linux/amd64")
	arm, _ := platform.Parse("linux/arm64")
	e := newEnv(t, func(o *proxy.Options) {
		o.Policies = index.Rules{{Pattern: "ci/*", Policy: index.Merge, Require: []v1.Platform{amd, arm}}}
	})
	e.push("ci/app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/ci/app/manifests/1")
	if resp.StatusCode != 404 || ociError(t, body) != "MANIFEST_UNKNOWN" || !strings.Contains(string(body), "linux/arm64") {
		t.Errorf("incomplete group: %d %s", resp.StatusCode, body)
	}
	legacy := e.push("ci/app:2", regtest.PlatformImage(t, "linux/amd64", false))
	e.push("ci/app:2-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	resp, _ = regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/ci/app/manifests/2", dockerAccept)
	if resp.Header.Get("Docker-Content-Digest") != legacy.String() {
		t.Errorf("incomplete group with a bare tag must serve upstream's image")
	}
	e.push("ci/app:1-linux-arm64", regtest.PlatformImage(t, "linux/arm64", false))
	srv := e.newProxy(func(o *proxy.Options) {
		o.Policies = index.Rules{{Pattern: "ci/*", Policy: index.Merge, Require: []v1.Platform{amd, arm}}}
	})
	if resp, body := regtest.Get(t, http.MethodGet, srv.URL+"/v2/ci/app/manifests/1"); resp.StatusCode != 200 {
		t.Errorf("complete group: %d %s", resp.StatusCode, body)
	}
}

// TestSynthesisOff: with Manifold-Synthesis: off a client sees exactly
// what upstream holds (inspect and migrate rely on it).
func TestSynthesisOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	off := func(method, path string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, e.proxy.URL+path, nil)
		req.Header.Set(upstream.HeaderSynthesis, "off")
		return regtest.Do(t, req)
	}
	if resp, body := off(http.MethodGet, "/v2/app/manifests/1"); resp.StatusCode != 404 || ociError(t, body) != "MANIFEST_UNKNOWN" {
		t.Errorf("bare tag with synthesis off: %d %s", resp.StatusCode, body)
	}
	if _, body := off(http.MethodGet, "/v2/app/tags/list"); string(body) != `{"name":"app","tags":["1-linux-amd64"]}` {
		t.Errorf("tags with synthesis off: %s", body)
	}
	resp, _ := regtest.Get(t, http.MethodHead, e.proxy.URL+"/v2/app/manifests/1")
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	if resp, _ := off(http.MethodGet, "/v2/app/manifests/"+resp.Header.Get("Docker-Content-Digest")); resp.StatusCode != 404 {
		t.Errorf("synthesized digest with synthesis off: %d", resp.StatusCode)
	}
}

// TestM5_EvictedIndexStillFound: after one digest miss, an index evicted
// from the memory store answered 404 by digest for up to 10 minutes (the
// search memo said "searched: not there"). The memo now remembers which
// bare tag gave which digest, and resolves that one again.
func TestM5_EvictedIndexStillFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, b := range []string{"1.0", "2.0"} {
		for _, p := range platforms[:2] {
			pl, _ := platform.Parse(p)
			e.push("app:"+b+"-"+index.FormatSuffix(pl), regtest.PlatformImage(t, p, true))
		}
	}
	// A store that holds one index at most: each new one evicts the other.
	srv := e.newProxy(func(o *proxy.Options) { o.Store = store.NewMemory(700) })
	digest := func(tag string) string {
		resp, _ := regtest.Get(t, http.MethodHead, srv.URL+"/v2/app/manifests/"+tag)
		return resp.Header.Get("Docker-Content-Digest")
	}
	one := digest("1.0")
	if r, b := regtest.Get(t, http.MethodGet, srv.URL+"/v2/app/manifests/1.0"); len(b) > 700 || len(b) < 350 {
		t.Fatalf("the index is %d bytes (%d): the store must hold one, not two", len(b), r.StatusCode)
	}
	// A miss makes the proxy search the repository and remember it.
	if resp, _ := regtest.Get(t, http.MethodGet, srv.URL+"/v2/app/manifests/sha256:"+strings.Repeat("0", 64)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("random digest: %d", resp.StatusCode)
	}
	digest("2.0") // evicts 1.0's index from the store
	resp, body := regtest.Get(t, http.MethodGet, srv.URL+"/v2/app/manifests/"+one)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != one {
		t.Errorf("an evicted index by digest after a miss: %d %s", resp.StatusCode, body)
	}
}

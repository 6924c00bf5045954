// Package migratetest gives the tests of migrate and of the proxy's inspect
// and migrate commands a real registry to work on: distribution v3 in
// process (package embedded), behind a front that counts requests and can
// inject faults, seeded with go-containerregistry's random images.
package migratetest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// Fault intercepts a request to the registry; it returns true when it
// answered the request itself.
type Fault func(w http.ResponseWriter, r *http.Request, next http.Handler) bool

// Registry is a running test registry.
type Registry struct {
	// URL is the front's http://127.0.0.1:<port>; Host its host:port.
	URL, Host string
	// Backend is the embedded registry's own URL, without the front.
	Backend string

	mu     sync.Mutex
	counts map[string]int
	fault  Fault
}

// Start starts an in-memory distribution v3 and its front; both stop when
// the test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	ctx := context.Background()
	reg, err := embedded.Start(ctx, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = reg.Close(sctx)
	})
	u, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Backend: reg.URL, counts: map[string]int{}}
	next := httputil.NewSingleHostReverseProxy(u)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.counts[req.Method]++
		f := r.fault
		r.mu.Unlock()
		if f != nil && f(w, req, next) {
			return
		}
		next.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	r.URL = front.URL
	r.Host = strings.TrimPrefix(front.URL, "http://")
	return r
}

// SetFault installs f (nil removes it).
func (r *Registry) SetFault(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// Requests counts the requests of method since the last ResetCounts.
func (r *Registry) Requests(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[method]
}

// ResetCounts zeroes the request counts.
func (r *Registry) ResetCounts() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = map[string]int{}
}

// Client is an upstream client for the registry (through the front).
func (r *Registry) Client(t testing.TB) *upstream.Client {
	t.Helper()
	c, err := upstream.New(upstream.Options{URL: r.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Image is a small random image whose config says os/arch/variant.
func Image(t testing.TB, os, arch, variant string) v1.Image {
	t.Helper()
	return regtest.PlatformImage(t, strings.TrimSuffix(os+"/"+arch+"/"+variant, "/"), false)
}

// BuildxIndex is what `docker buildx build --provenance` pushes for one
// platform: an OCI index with the image and an attestation manifest that
// references it.
func BuildxIndex(t testing.TB, os, arch, variant string) v1.ImageIndex {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(Image(t, os, arch, variant), types.OCIManifestSchema1), types.OCIConfigJSON)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	att := mutate.ConfigMediaType(mutate.MediaType(Image(t, "unknown", "unknown", ""), types.OCIManifestSchema1), types.OCIConfigJSON)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os, Architecture: arch, Variant: variant}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{
				index.AnnotationReferenceType:   "attestation-manifest",
				index.AnnotationReferenceDigest: d.String(),
			},
		}},
	)
}

func (r *Registry) ref(t testing.TB, repo, tag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// Push writes img (a v1.Image or v1.ImageIndex) under repo:tag and returns
// its digest.
func (r *Registry) Push(t testing.TB, repo, tag string, img any) v1.Hash {
	t.Helper()
	ref := r.ref(t, repo, tag)
	var d v1.Hash
	var err error
	switch x := img.(type) {
	case v1.Image:
		err = remote.Write(ref, x)
		if err == nil {
			d, err = x.Digest()
		}
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, x)
		if err == nil {
			d, err = x.Digest()
		}
	default:
		t.Fatalf("push %T", img)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Head is the digest under repo:ref ("" when absent).
func (r *Registry) Head(t testing.TB, repo, ref string) string {
	t.Helper()
	d, err := r.Client(t).Head(context.Background(), repo, ref)
	if upstream.Status(err) == http.StatusNotFound {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}

// Tags lists repo's tags.
func (r *Registry) Tags(t testing.TB, repo string) []string {
	t.Helper()
	tags, err := r.Client(t).Tags(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

// Snapshot maps every tag of repo to its digest.
func (r *Registry) Snapshot(t testing.TB, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tag := range r.Tags(t, repo) {
		out[tag] = r.Head(t, repo, tag)
	}
	return out
}

// Proxy is a manifold proxy in front of the registry (not the front's
// fault injection: it talks to the backend).
type Proxy struct {
	URL string
}

// StartProxy starts proxy.New on the registry with policies.
func (r *Registry) StartProxy(t testing.TB, policies index.Rules) *Proxy {
	t.Helper()
	c, err := upstream.New(upstream.Options{URL: r.Backend})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}, Policies: policies})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return &Proxy{URL: srv.URL}
}

// Get fetches repo's manifest ref through the proxy, accepting every
// manifest type: the digest it reports, its bytes and HTTP status.
func (p *Proxy) Get(t testing.TB, repo, ref string) (string, []byte, int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.URL+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range []types.MediaType{types.OCIImageIndex, types.DockerManifestList, types.OCIManifestSchema1, types.DockerManifestSchema2} {
		req.Header.Add("Accept", string(mt))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Get("Docker-Content-Digest"), b, resp.StatusCode
}

// Legacy is the repository the tests migrate, and what was pushed.
type Legacy struct {
	Repo string
	// Digests of every pushed tag.
	Digests map[string]string
}

// SeedLegacy pushes a repository of legacy per-arch tags into repo:
//   - 1.0-rc1: a base with a dash, three platforms (amd64, arm64, arm/v7);
//   - legacy: a single-platform bare tag (linux/amd64) and legacy-linux-arm64;
//   - 2.0: 2.0-linux-amd64 and 2.0-linux-arm64, whose config says amd64
//     (mislabeled: left out);
//   - solo: a group of one, solo-linux-amd64;
//   - 3.0: 3.0-linux-amd64 is a buildx index with an attestation,
//     3.0-linux-arm64 a plain image.
func (r *Registry) SeedLegacy(t testing.TB, repo string) *Legacy {
	t.Helper()
	l := &Legacy{Repo: repo, Digests: map[string]string{}}
	push := func(tag string, img any) {
		l.Digests[tag] = r.Push(t, repo, tag, img).String()
	}
	push("1.0-rc1-linux-amd64", Image(t, "linux", "amd64", ""))
	push("1.0-rc1-linux-arm64", Image(t, "linux", "arm64", "v8"))
	push("1.0-rc1-linux-arm-v7", Image(t, "linux", "arm", "v7"))
	push("legacy", Image(t, "linux", "amd64", ""))
	push("legacy-linux-arm64", Image(t, "linux", "arm64", ""))
	push("2.0-linux-amd64", Image(t, "linux", "amd64", ""))
	push("2.0-linux-arm64", Image(t, "linux", "amd64", ""))
	push("solo-linux-amd64", Image(t, "linux", "amd64", ""))
	push("3.0-linux-amd64", BuildxIndex(t, "linux", "amd64", ""))
	push("3.0-linux-arm64", Image(t, "linux", "arm64", ""))
	r.ResetCounts()
	return l
}

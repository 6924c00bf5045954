package ui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/ui"
	"golang.org/x/sync/errgroup"
)

// The fixture repository of the issue: 8 linux platforms and windows, a
// mislabeled member, a merged legacy bare tag, and a member whose tag is
// markup.
var linux8 = []string{"linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/arm/v6", "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64"}

const xss = `<script>alert(1)</script>`

// site is a proxy with the status page in front of a real registry.
type site struct {
	reg *regtest.Registry
	srv *httptest.Server
}

func newSite(t testing.TB, o proxy.Options) *site {
	t.Helper()
	s := &site{reg: regtest.NewRegistry(t)}
	o.Upstreams = []proxy.Upstream{{Client: s.reg.Client(t)}}
	if o.Cache.TTL == 0 {
		o.Cache = resolve.CacheOptions{TTL: time.Minute}
	}
	p, err := proxy.New(o)
	if err != nil {
		t.Fatal(err)
	}
	page, err := ui.New(ui.Options{Proxy: p})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(mount(page, p))
	t.Cleanup(s.srv.Close)
	return s
}

// seedFixture pushes the fixture repository as team/app.
func (s *site) seedFixture(t testing.TB) {
	t.Helper()
	for _, p := range linux8 {
		pl, _ := platform.Parse(p)
		s.reg.Push(t, "team/app", "1.0-"+index.FormatSuffix(pl), regtest.PlatformImage(t, p, false))
	}
	s.reg.Push(t, "team/app", "1.0-windows-amd64", regtest.PlatformImage(t, "windows/amd64:10.0.20348.2966", false))
	// Mislabeled: the tag says arm64, the config says amd64.
	s.reg.Push(t, "team/app", "2.0-linux-arm64", regtest.PlatformImage(t, "linux/amd64", false))
	s.reg.Push(t, "team/app", "2.0-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	// A legacy bare tag (amd64) that the merge policy lists with arm64.
	s.reg.Push(t, "team/app", "legacy", regtest.PlatformImage(t, "linux/amd64", false))
	s.reg.Push(t, "team/app", "legacy-linux-arm64", regtest.PlatformImage(t, "linux/arm64/v8", false))
	s.reg.Push(t, "other/repo", "x-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
}

// mount puts the page at /ui/ and the registry API everywhere else, as
// `proxy serve` does.
func mount(page, api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ui/", page)
	mux.Handle("/", api)
	return mux
}

// annotated is a member index listing img with an annotation of value.
func annotated(img v1.Image, value string) v1.ImageIndex {
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{
		Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"},
			Annotations: map[string]string{"org.opencontainers.image.title": value}},
	})
}

// access lets alice read team/*, everyone else the rest.
func access(t testing.TB, htpasswd string) *proxy.Access {
	t.Helper()
	ctl, err := auth.GetAccessController("htpasswd", map[string]any{"realm": "test", "path": htpasswd})
	if err != nil {
		t.Fatal(err)
	}
	return &proxy.Access{Controller: ctl, Rules: []proxy.AccessRule{{Pattern: "team/*", Read: []string{"alice"}, Write: []string{"alice"}}}}
}

// tagMany gives the repository "big" n member tags: n/2 bare tags of an
// amd64 and an arm64 member.
func tagMany(t testing.TB, s *site, n int) {
	t.Helper()
	amd := s.reg.Push(t, "big", "seed-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	arm := s.reg.Push(t, "big", "seed-linux-arm64", regtest.PlatformImage(t, "linux/arm64/v8", false))
	var eg errgroup.Group
	eg.SetLimit(32)
	for i := range n/2 - 1 {
		for suffix, d := range map[string]v1.Hash{"linux-amd64": amd, "linux-arm64": arm} {
			eg.Go(func() error {
				desc, err := remote.Get(regtest.Ref(t, s.reg.Host+"/big@"+d.String()))
				if err != nil {
					return err
				}
				return remote.Tag(regtest.Ref(t, fmt.Sprintf("%s/big:%d-%s", s.reg.Host, i, suffix)).(name.Tag), desc)
			})
		}
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
}

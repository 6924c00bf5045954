package crossbuild_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"debug/pe"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/crossbuild"
	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// The registry and the binary cache are shared by every test of the
// package: compiling for a platform is the expensive part, and the cache
// lets later builds reuse the binaries of the first.
var (
	registryURL string
	cacheDir    string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		ctx := context.Background()
		reg, err := embedded.Start(ctx, embedded.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer reg.Close(ctx) //nolint:errcheck // test teardown
		registryURL = reg.URL
		if cacheDir, err = os.MkdirTemp("", "manifold-build-test-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(cacheDir)
		return m.Run()
	}())
}

// newFront is a counting reverse proxy before the shared registry: it tells
// how many requests, and how many writes, a build made.
func newFront(t *testing.T) *regtest.Registry {
	t.Helper()
	u, err := url.Parse(registryURL)
	if err != nil {
		t.Fatal(err)
	}
	return regtest.Serve(t, httputil.NewSingleHostReverseProxy(u))
}

// helloPlatforms are the platforms of the main build: every variant
// mechanism (GOARM, GOAMD64, GOARM64) and 32- and 64-bit ELF. Each needs
// its own build of the standard library on a cold Go cache, so the list
// stays short; the benchmark builds 8 others.
var helloPlatforms = []string{
	"linux/amd64", "linux/amd64/v3", "linux/arm64", "linux/arm/v6", "linux/arm/v7", "linux/386",
}

// epoch is the SOURCE_DATE_EPOCH of the main build.
const epoch = 1700000000

func helloOptions(repo string) crossbuild.Options {
	return crossbuild.Options{
		Repo:      repo,
		Tags:      []string{"v1", "stable"},
		Platforms: helloPlatforms,
		Package:   "./testdata/hello",
		Adds:      []string{"testdata/hello/static:/srv/static"},
		CacheDir:  cacheDir,
		Env:       append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch)),
		Keychain:  authn.NewMultiKeychain(), // anonymous: no docker config in tests
	}
}

// mainBuild is the build most tests inspect, run once.
var mainBuild = sync.OnceValues(func() (*mainFixture, error) {
	f := &mainFixture{}
	u, _ := url.Parse(registryURL)
	f.repo = u.Host + "/hello"
	start := time.Now()
	res, err := crossbuild.Run(context.Background(), helloOptions(f.repo))
	f.took = time.Since(start)
	f.res = res
	return f, err
})

type mainFixture struct {
	repo string
	res  *crossbuild.Build
	took time.Duration
}

func hello(t *testing.T) *mainFixture {
	t.Helper()
	f, err := mainBuild()
	if err != nil {
		var ce *crossbuild.CompileError
		if errors.As(err, &ce) {
			t.Fatalf("main build: %v\n%s", err, ce.Output)
		}
		t.Fatalf("main build: %v", err)
	}
	return f
}

func TestBuildImages(t *testing.T) {
	f := hello(t)
	t.Logf("built %d platforms in %v", len(f.res.Images), f.took)
	if got, want := f.res.Platforms(), []string{
		"linux/386", "linux/amd64", "linux/amd64/v3", "linux/arm/v7", "linux/arm/v6", "linux/arm64/v8",
	}; !slices.Equal(got, want) {
		t.Fatalf("platforms = %v, want %v", got, want)
	}
	tests := []struct {
		platform, suffix string
		variant          string // in the config
		machine          elf.Machine
		class            elf.Class
		setting, value   string // recorded in the build info
	}{
		{"linux/386", "linux-386", "", elf.EM_386, elf.ELFCLASS32, "GO386", ""},
		{"linux/amd64", "linux-amd64", "", elf.EM_X86_64, elf.ELFCLASS64, "GOAMD64", "v1"},
		{"linux/amd64/v3", "linux-amd64-v3", "v3", elf.EM_X86_64, elf.ELFCLASS64, "GOAMD64", "v3"},
		{"linux/arm/v6", "linux-arm-v6", "v6", elf.EM_ARM, elf.ELFCLASS32, "GOARM", "6"},
		{"linux/arm/v7", "linux-arm-v7", "v7", elf.EM_ARM, elf.ELFCLASS32, "GOARM", "7"},
		{"linux/arm64/v8", "linux-arm64", "v8", elf.EM_AARCH64, elf.ELFCLASS64, "GOARM64", "v8.0"},
	}
	for _, tc := range tests {
		t.Run(tc.suffix, func(t *testing.T) {
			t.Parallel()
			for _, base := range []string{"v1", "stable"} {
				img := pull(t, f.repo+":"+base+"-"+tc.suffix)
				d, _ := img.Digest()
				if !slices.ContainsFunc(f.res.Images, func(im crossbuild.BuiltImage) bool { return im.Descriptor.Digest == d }) {
					t.Errorf("%s-%s is %s, not an image of the result", base, tc.suffix, d)
				}
			}
			img := pull(t, f.repo+":v1-"+tc.suffix)
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			p := strings.Split(tc.platform, "/")
			if cf.OS != p[0] || cf.Architecture != p[1] || cf.Variant != tc.variant {
				t.Errorf("config platform = %s/%s/%s, want %s/%s/%s", cf.OS, cf.Architecture, cf.Variant, p[0], p[1], tc.variant)
			}
			if !slices.Equal(cf.Config.Entrypoint, []string{"/hello"}) || cf.Config.Cmd != nil {
				t.Errorf("entrypoint %q cmd %q, want [/hello] and no cmd", cf.Config.Entrypoint, cf.Config.Cmd)
			}
			if !cf.Created.IsZero() {
				t.Errorf("created = %v, want no timestamp", cf.Created)
			}
			for _, h := range cf.History {
				if !h.Created.IsZero() {
					t.Errorf("history has a timestamp: %+v", h)
				}
			}
			if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
				t.Errorf("media type %s, want OCI", mt)
			}

			files := layerFiles(t, img)
			bin := files["hello"]
			if bin == nil {
				t.Fatalf("no /hello in the layer (have %v)", keys(files))
			}
			ef, err := elf.NewFile(bytes.NewReader(bin.data))
			if err != nil {
				t.Fatalf("binary is not ELF: %v", err)
			}
			if ef.Machine != tc.machine || ef.Class != tc.class {
				t.Errorf("ELF %v %v, want %v %v", ef.Machine, ef.Class, tc.machine, tc.class)
			}
			if ef.OSABI != elf.ELFOSABI_NONE && ef.OSABI != elf.ELFOSABI_LINUX {
				t.Errorf("ELF OS ABI %v", ef.OSABI)
			}
			bi, err := buildinfo.Read(bytes.NewReader(bin.data))
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range bi.Settings {
				settings[s.Key] = s.Value
			}
			want := map[string]string{"GOOS": p[0], "GOARCH": p[1], "CGO_ENABLED": "0", "-trimpath": "true"}
			if tc.value != "" {
				want[tc.setting] = tc.value
			}
			for k, v := range want {
				if settings[k] != v {
					t.Errorf("build info %s=%q, want %q", k, settings[k], v)
				}
			}
			if bi.Path != "github.com/manifold-proxy/manifold/crossbuild/testdata/hello" {
				t.Errorf("build info path %q", bi.Path)
			}
		})
	}
}

func TestBuildLayer(t *testing.T) {
	f := hello(t)
	img := pull(t, f.repo+":v1-linux-arm64")
	files := layerFiles(t, img)
	var names []string
	for _, e := range files {
		names = append(names, e.hdr.Name)
	}
	slices.Sort(names)
	want := []string{"hello", "srv/", "srv/static/", "srv/static/css/", "srv/static/css/site.css", "srv/static/index.html"}
	if !slices.Equal(names, want) {
		t.Fatalf("layer entries %q, want %q", names, want)
	}
	// In the order written: sorted.
	var order []string
	forEachEntry(t, img, func(h *tar.Header, _ []byte) { order = append(order, h.Name) })
	if !slices.IsSorted(order) {
		t.Errorf("entries not sorted: %q", order)
	}
	for _, e := range files {
		h := e.hdr
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s owned by %d:%d (%q:%q)", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != epoch || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s times %v %v %v, want mtime %d only", h.Name, h.ModTime, h.AccessTime, h.ChangeTime, epoch)
		}
		wantMode := int64(0o644)
		if h.Typeflag == tar.TypeDir || h.Name == "hello" {
			wantMode = 0o755
		}
		if h.Mode != wantMode {
			t.Errorf("%s mode %o, want %o", h.Name, h.Mode, wantMode)
		}
	}
	src, err := os.ReadFile("testdata/hello/static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if got := files["srv/static/index.html"].data; !bytes.Equal(got, src) {
		t.Errorf("srv/static/index.html = %q", got)
	}
}

// TestReproducible rebuilds from scratch (a new binary cache: every
// platform is relinked and recompressed) and expects the same digests,
// and a registry left untouched.
func TestReproducible(t *testing.T) {
	f := hello(t)
	fr := newFront(t)
	o := helloOptions(fr.Host + "/hello")
	o.CacheDir = t.TempDir()
	res, err := crossbuild.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for i, im := range res.Images {
		if want := f.res.Images[i].Descriptor.Digest; im.Descriptor.Digest != want {
			t.Errorf("%s: rebuild %s, first build %s", platform.String(im.Platform), im.Descriptor.Digest, want)
		}
		if im.Status != crossbuild.StatusUnchanged {
			t.Errorf("%s: status %s, want unchanged", platform.String(im.Platform), im.Status)
		}
	}
	if res.Index.Descriptor.Digest != f.res.Index.Descriptor.Digest {
		t.Errorf("index %s, first build %s", res.Index.Descriptor.Digest, f.res.Index.Descriptor.Digest)
	}
	if n := fr.Writes(); n != 0 {
		t.Errorf("a no-change rebuild sent %d writes", n)
	}
}

// TestIndex checks the promise of --index: the pushed index is the one the
// proxy serves for the same tags.
func TestIndex(t *testing.T) {
	f := hello(t)
	ctx := context.Background()

	// Before any index is pushed, the proxy synthesizes one from the
	// suffixed tags.
	served, servedDigest := proxyGet(t, "hello", "v1")
	if servedDigest != f.res.Index.Descriptor.Digest.String() || !bytes.Equal(served, f.res.Index.Bytes) {
		t.Fatalf("proxy serves %s\n%s\nbuild computed %s\n%s", servedDigest, served, f.res.Index.Descriptor.Digest, f.res.Index.Bytes)
	}

	// A bare tag that held an image is replaced, and the result says so.
	old := pushRandom(t, f.repo+":stable")
	fr := newFront(t)
	o := helloOptions(fr.Host + "/hello")
	o.Index = true
	var notes []string
	o.Progress = func(e crossbuild.Event) {
		if e.Stage == crossbuild.StageNote {
			notes = append(notes, e.Message)
		}
	}
	res, err := crossbuild.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Index.Descriptor.Digest != f.res.Index.Descriptor.Digest {
		t.Errorf("pushed index %s, want %s", res.Index.Descriptor.Digest, f.res.Index.Descriptor.Digest)
	}
	byTag := map[string]crossbuild.IndexTag{}
	for _, it := range res.Index.Tags {
		byTag[it.Tag] = it
	}
	if it := byTag["v1"]; it.Status != crossbuild.StatusPushed {
		t.Errorf("v1: %+v, want pushed", it)
	}
	if it := byTag["stable"]; it.Status != crossbuild.StatusReplaced || it.Previous == nil || it.Previous.Digest != old {
		t.Errorf("stable: %+v, want replaced %s", it, old)
	}
	if !slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, "stable: replacing image "+old.String()) }) {
		t.Errorf("no note about replacing stable: %q", notes)
	}
	for _, tag := range []string{"v1", "stable"} {
		d, err := remote.Head(regtest.Ref(t, f.repo+":"+tag))
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest != f.res.Index.Descriptor.Digest {
			t.Errorf("registry %s = %s, want the index %s", tag, d.Digest, f.res.Index.Descriptor.Digest)
		}
		if _, got := proxyGet(t, "hello", tag); got != f.res.Index.Descriptor.Digest.String() {
			t.Errorf("proxy %s = %s after --index", tag, got)
		}
	}
	idx, err := remote.Index(regtest.Ref(t, f.repo+":v1"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var plats []string
	for _, d := range im.Manifests {
		plats = append(plats, platform.String(*d.Platform))
	}
	if want := f.res.Platforms(); !slices.Equal(plats, want) {
		t.Errorf("index platforms %v, want %v", plats, want)
	}

	// Again: nothing to send.
	fr.Reset()
	res, err = crossbuild.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range res.Index.Tags {
		if it.Status != crossbuild.StatusUnchanged {
			t.Errorf("second --index run: %+v", it)
		}
	}
	if n := fr.Writes(); n != 0 {
		t.Errorf("second --index run sent %d writes", n)
	}
}

// TestIndexThroughProxy: --index pushed through `proxy serve` is stored in
// the registry behind it (the proxy's synthesized index under the bare tag
// does not make it look already there).
func TestIndexThroughProxy(t *testing.T) {
	f := hello(t)
	o := helloOptions(strings.TrimPrefix(startProxy(t).URL, "http://") + "/through")
	o.Index = true
	res, err := crossbuild.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Index.Descriptor.Digest != f.res.Index.Descriptor.Digest {
		t.Errorf("index %s, want %s", res.Index.Descriptor.Digest, f.res.Index.Descriptor.Digest)
	}
	u, _ := url.Parse(registryURL)
	d, err := remote.Head(regtest.Ref(t, u.Host+"/through:v1"))
	if err != nil || d.Digest != res.Index.Descriptor.Digest || !d.MediaType.IsIndex() {
		t.Errorf("registry behind the proxy has %v (%v), want the index %s", d, err, res.Index.Descriptor.Digest)
	}
}

func TestDryRun(t *testing.T) {
	f := hello(t)
	fr := newFront(t)
	o := helloOptions(fr.Host + "/dry")
	o.DryRun = true
	res, err := crossbuild.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fr.Requests()); n != 0 {
		t.Errorf("a dry run sent %d requests to the registry", n)
	}
	if _, err := remote.List(regtest.Ref(t, f.repo).Context()); err != nil {
		t.Fatal(err)
	}
	if tags, err := remote.List(regtest.Ref(t, registryHost()+"/dry").Context()); err == nil {
		t.Errorf("dry run created tags %v", tags)
	}
	for _, im := range res.Images {
		if im.Status != crossbuild.StatusBuilt {
			t.Errorf("%s: status %s", platform.String(im.Platform), im.Status)
		}
	}
	// The index it prints is the one a real run pushes.
	if !bytes.Equal(res.Index.Bytes, f.res.Index.Bytes) {
		t.Errorf("dry-run index\n%s\nreal index\n%s", res.Index.Bytes, f.res.Index.Bytes)
	}
}

func TestCompileErrorPushesNothing(t *testing.T) {
	fr := newFront(t)
	o := crossbuild.Options{
		Repo: fr.Host + "/broken", Tags: []string{"v1"}, Package: "./testdata/broken",
		Platforms: []string{"linux/amd64", "linux/arm64"}, CacheDir: cacheDir, Keychain: authn.NewMultiKeychain(),
	}
	_, err := crossbuild.Run(context.Background(), o)
	var ce *crossbuild.CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a CompileError", err)
	}
	if ce.Platform != "linux/arm64/v8" || !strings.Contains(ce.Output, `cannot use "not a number"`) {
		t.Errorf("CompileError platform %q output %q", ce.Platform, ce.Output)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	if n := len(fr.Requests()); n != 0 {
		t.Errorf("a failed build sent %d requests to the registry", n)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		platforms []string
		bases     []string
		want      string
	}{
		{[]string{"darwin/arm64"}, nil, "platform darwin/arm64: no container runtime runs darwin images"},
		{[]string{"linux/amd64,ios/arm64"}, nil, "platform ios/arm64: no container runtime runs ios images"},
		{[]string{"android/arm64"}, nil, "platform android/arm64: Android runs apps, not container images"},
		{[]string{"js/wasm"}, nil, "platform js/wasm: js/wasm runs in a browser or Node.js"},
		{[]string{"wasip1/wasm"}, nil, "platform wasip1/wasm: WebAssembly modules are not os/arch container images"},
		{[]string{"plan9/amd64"}, nil, "platform plan9/amd64: no container runtime runs Plan 9 binaries"},
		{[]string{"freebsd/amd64"}, nil, "platform freebsd/amd64: FreeBSD's OCI runtimes"},
		{[]string{"solaris/amd64"}, nil, "platform solaris/amd64: no OCI container runtime runs solaris images"},
		{[]string{"windows/amd64"}, nil, "platform windows/amd64: needs a Windows base image"},
		{[]string{"windows/arm64"}, []string{"linux/amd64=alpine"}, "platform windows/arm64/v8: needs a Windows base image"},
		{[]string{"windows/386"}, []string{"example.com/win"}, "platform windows/386: Windows container images exist for amd64 and arm64 only"},
		{[]string{"linux/arm/v8"}, nil, "platform linux/arm/v8: Go cannot build 32-bit arm/v8"},
		{[]string{"linux/sparc64"}, nil, `platform "linux/sparc64": linux/sparc64 is not a known os/arch pair`},
		{[]string{"linux/amd64/v9"}, nil, `platform "linux/amd64/v9": "v9" is not a variant of amd64`},
		{[]string{"nacl/amd64p32"}, nil, `not a known os/arch pair`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.platforms, ","), func(t *testing.T) {
			t.Parallel()
			o := crossbuild.Options{Repo: "127.0.0.1:1/refused", Tags: []string{"v1"}, Platforms: tc.platforms, Bases: tc.bases, Package: "./testdata/hello", CacheDir: cacheDir}
			_, err := crossbuild.Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*crossbuild.Options)
		want string
	}{
		{"no repo", func(o *crossbuild.Options) { o.Repo = "" }, "no repository"},
		{"suffixed tag", func(o *crossbuild.Options) { o.Tags = []string{"1.0-linux-amd64"} }, `tag "1.0-linux-amd64" already ends in the platform suffix of linux/amd64; give the bare tag (1.0)`},
		{"bad tag", func(o *crossbuild.Options) { o.Tags = []string{"-x"} }, `tag "-x" is not a valid tag`},
		{"bad add", func(o *crossbuild.Options) { o.Adds = []string{"static"} }, `add "static": want SRC:DST`},
		{"relative add", func(o *crossbuild.Options) { o.Adds = []string{"static:srv"} }, `destination "srv" is not an absolute path`},
		{"bad epoch", func(o *crossbuild.Options) { o.Env = []string{"SOURCE_DATE_EPOCH=yesterday"} }, `SOURCE_DATE_EPOCH="yesterday"`},
		{"not main", func(o *crossbuild.Options) { o.Package = "." }, "is package crossbuild, not a main package"},
		{"base for another platform", func(o *crossbuild.Options) { o.Bases = []string{"linux/arm/v6=alpine"} }, "base linux/arm/v6=alpine: linux/arm/v6 is not among the platforms built"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := crossbuild.Options{Repo: "127.0.0.1:1/bad", Tags: []string{"v1"}, Platforms: []string{"linux/amd64"}, Package: "./testdata/hello", CacheDir: cacheDir}
			tc.edit(&o)
			_, err := crossbuild.Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, platform, suffix, configVariant, env string
	}{
		{"linux/amd64", "linux/amd64", "linux-amd64", "", "GOAMD64=v1"},
		{"linux/amd64/v1", "linux/amd64", "linux-amd64", "", "GOAMD64=v1"},
		{"linux/amd64/v4", "linux/amd64/v4", "linux-amd64-v4", "v4", "GOAMD64=v4"},
		{"linux/arm", "linux/arm/v7", "linux-arm-v7", "v7", "GOARM=7"},
		{"linux/arm/v5", "linux/arm/v5", "linux-arm-v5", "v5", "GOARM=5"},
		{"linux/arm64", "linux/arm64/v8", "linux-arm64", "v8", "GOARM64=v8.0"},
		{"linux/arm64/v8", "linux/arm64/v8", "linux-arm64", "v8", "GOARM64=v8.0"},
		{"linux/arm64/v8.2", "linux/arm64/v8.2", "linux-arm64-v8.2", "v8.2", "GOARM64=v8.2"},
		{"linux/arm64/v9", "linux/arm64/v9", "linux-arm64-v9", "v9", "GOARM64=v9.0"},
		{"linux/arm64/v9.0", "linux/arm64/v9", "linux-arm64-v9", "v9", "GOARM64=v9.0"},
		{"linux/arm64/v9.3", "linux/arm64/v9.3", "linux-arm64-v9.3", "v9.3", "GOARM64=v9.3"},
		{"linux/s390x", "linux/s390x", "linux-s390x", "", ""},
		{"windows/amd64", "windows/amd64", "windows-amd64", "", "GOAMD64=v1"},
	}
	for _, tc := range tests {
		tg, err := crossbuild.ParseTarget(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		p := strings.Split(tc.platform, "/")
		wantEnv := []string{"GOOS=" + p[0], "GOARCH=" + p[1]}
		if tc.env != "" {
			wantEnv = append(wantEnv, tc.env)
		}
		if tg.String() != tc.platform || tg.Suffix() != tc.suffix || tg.ConfigVariant != tc.configVariant || !slices.Equal(tg.GoEnv, wantEnv) {
			t.Errorf("%s: %s %s %q %q, want %s %s %q %q", tc.in, tg, tg.Suffix(), tg.ConfigVariant, tg.GoEnv, tc.platform, tc.suffix, tc.configVariant, wantEnv)
		}
		// The tag parses back to the platform the image declares.
		s, ok := index.Grammar{}.Parse("v1-" + tg.Suffix())
		if !ok || platform.String(s.Platform) != tc.platform || !s.Canonical {
			t.Errorf("%s: tag v1-%s parses to %+v", tc.in, tg.Suffix(), s)
		}
	}
}

// TestWindowsAndBases builds on a multi-platform base holding a fake
// Windows image (os.version set) and a linux one, with a per-platform
// override back to scratch.
func TestWindowsAndBases(t *testing.T) {
	host := registryHost()
	const osVersion = "10.0.20348.2340"
	winBase := platformImage(t, v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: osVersion}, []string{`PATH=C:\Windows\system32;C:\Windows`})
	linuxBase := platformImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"PATH=/usr/bin:/bin"})
	baseIdx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: winBase, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: osVersion}}},
		mutate.IndexAddendum{Add: linuxBase, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	if err := remote.WriteIndex(regtest.Ref(t, host+"/base:multi").(name.Tag), baseIdx); err != nil {
		t.Fatal(err)
	}
	o := crossbuild.Options{
		Repo: host + "/winhello", Tags: []string{"v1"}, Package: "./testdata/hello",
		Platforms: []string{"windows/amd64", "linux/amd64", "linux/arm64"},
		Bases:     []string{host + "/base:multi", "linux/arm64=scratch"},
		Adds:      []string{`testdata/hello/static:C:\srv\static`},
		CacheDir:  cacheDir, Keychain: authn.NewMultiKeychain(), Index: true,
	}
	res, err := crossbuild.Run(context.Background(), o)
	if err != nil {
		var ce *crossbuild.CompileError
		if errors.As(err, &ce) {
			t.Fatalf("%v\n%s", err, ce.Output)
		}
		t.Fatal(err)
	}
	layersOf := func(img v1.Image) int {
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		return len(ls)
	}

	win := pull(t, host+"/winhello:v1-windows-amd64")
	cf, err := win.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "windows" || cf.OSVersion != osVersion || cf.Architecture != "amd64" {
		t.Errorf("windows config %s/%s os.version %q", cf.OS, cf.Architecture, cf.OSVersion)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{`C:\hello.exe`}) {
		t.Errorf("windows entrypoint %q", cf.Config.Entrypoint)
	}
	if !slices.Contains(cf.Config.Env, `PATH=C:\Windows\system32;C:\Windows`) {
		t.Errorf("base env lost: %q", cf.Config.Env)
	}
	if n := layersOf(win); n != 2 {
		t.Errorf("windows image has %d layers, want base + 1", n)
	}
	files := layerFiles(t, win)
	for _, n := range []string{"Files/", "Hives/", "Files/hello.exe", "Files/srv/static/index.html"} {
		if files[strings.TrimSuffix(n, "/")] == nil {
			t.Errorf("windows layer has no %s (have %v)", n, keys(files))
		}
	}
	exe := files["Files/hello.exe"]
	if exe != nil {
		if exe.hdr.PAXRecords["MSWINDOWS.rawsd"] == "" {
			t.Error("hello.exe has no MSWINDOWS.rawsd security descriptor")
		}
		pf, err := pe.NewFile(bytes.NewReader(exe.data))
		if err != nil {
			t.Fatalf("hello.exe is not PE: %v", err)
		}
		if pf.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
			t.Errorf("PE machine %#x", pf.Machine)
		}
	}

	lin := pull(t, host+"/winhello:v1-linux-amd64")
	if n := layersOf(lin); n != 2 {
		t.Errorf("linux/amd64 image has %d layers, want base + 1", n)
	}
	if cf, _ := lin.ConfigFile(); !slices.Contains(cf.Config.Env, "PATH=/usr/bin:/bin") {
		t.Errorf("linux base env lost: %q", cf.Config.Env)
	}
	if n := layersOf(pull(t, host+"/winhello:v1-linux-arm64")); n != 1 {
		t.Errorf("linux/arm64 (scratch override) has %d layers, want 1", n)
	}
	for _, im := range res.Images {
		if platform.String(im.Platform) == "linux/arm64/v8" && im.Base != "" {
			t.Errorf("linux/arm64 base %q, want scratch", im.Base)
		}
	}

	// The index keeps the Windows os.version, as the proxy writes it.
	_, got := proxyGet(t, "winhello", "v1")
	if got != res.Index.Descriptor.Digest.String() {
		t.Errorf("proxy serves %s, build pushed %s", got, res.Index.Descriptor.Digest)
	}
	if !bytes.Contains(res.Index.Bytes, []byte(`"os.version":"`+osVersion+`"`)) {
		t.Errorf("index has no os.version: %s", res.Index.Bytes)
	}
}

// TestAllSkipsWhatTheBaseLacks: with --platform all, a platform the base
// does not provide is left out and reported, not an error.
func TestAllSkipsWhatTheBaseLacks(t *testing.T) {
	host := registryHost()
	a := platformImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}, nil)
	b := platformImage(t, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, nil)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: a, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: b, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	if err := remote.WriteIndex(regtest.Ref(t, host+"/base:two").(name.Tag), idx); err != nil {
		t.Fatal(err)
	}
	o := crossbuild.Options{
		Repo: host + "/all", Tags: []string{"v1"}, Package: "./testdata/hello", Platforms: []string{"all"},
		Bases: []string{host + "/base:two"}, CacheDir: cacheDir, Keychain: authn.NewMultiKeychain(), DryRun: true,
	}
	res, err := crossbuild.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Platforms(); !slices.Equal(got, []string{"linux/amd64", "linux/arm64/v8"}) {
		t.Errorf("platforms %v", got)
	}
	skipped := strings.Join(res.Skipped, "\n")
	for _, want := range []string{"base " + host + "/base:two has no image for linux/s390x", "base " + host + "/base:two has no image for windows/amd64"} {
		if !strings.Contains(skipped, want) {
			t.Errorf("skipped does not say %q:\n%s", want, skipped)
		}
	}
}

// --- helpers ---

func registryHost() string { return strings.TrimPrefix(registryURL, "http://") }

func pull(t *testing.T, s string) v1.Image {
	t.Helper()
	img, err := remote.Image(regtest.Ref(t, s))
	if err != nil {
		t.Fatalf("pulling %s: %v", s, err)
	}
	return img
}

// pushRandom pushes a random single-platform image and returns its digest.
func pushRandom(t *testing.T, s string) v1.Hash {
	t.Helper()
	img := regtest.PlatformImage(t, "linux/amd64", false)
	if err := remote.Write(regtest.Ref(t, s), img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// platformImage is a random one-layer image whose config declares p and
// env.
func platformImage(t *testing.T, p v1.Platform, env []string) v1.Image {
	t.Helper()
	img := regtest.PlatformImage(t, platform.String(p), false)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Env = env
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// startProxy starts a fresh proxy in front of the registry.
func startProxy(t *testing.T) *httptest.Server {
	t.Helper()
	c, err := upstream.New(upstream.Options{URL: registryURL})
	if err != nil {
		t.Fatal(err)
	}
	return regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}})
}

// proxyGet asks a fresh proxy in front of the registry for repo:tag, as a
// client that accepts indexes, and returns the body and digest.
func proxyGet(t *testing.T, repo, tag string) ([]byte, string) {
	t.Helper()
	resp, b := regtest.Get(t, http.MethodGet, startProxy(t).URL+"/v2/"+repo+"/manifests/"+tag,
		string(types.OCIImageIndex), string(types.DockerManifestList), string(types.OCIManifestSchema1))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("proxy GET %s:%s: %s\n%s", repo, tag, resp.Status, b)
	}
	return b, resp.Header.Get("Docker-Content-Digest")
}

type file struct {
	hdr  *tar.Header
	data []byte
}

// layerFiles reads the image's last layer (the one the build adds), by
// name without a trailing slash.
func layerFiles(t *testing.T, img v1.Image) map[string]*file {
	t.Helper()
	files := map[string]*file{}
	forEachEntry(t, img, func(h *tar.Header, data []byte) {
		files[strings.TrimSuffix(h.Name, "/")] = &file{hdr: h, data: data}
	})
	return files
}

func forEachEntry(t *testing.T, img v1.Image, fn func(*tar.Header, []byte)) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[len(ls)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fn(h, data)
	}
}

func keys(m map[string]*file) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

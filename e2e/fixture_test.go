package e2e_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

// platforms of every group: 8 linux platforms and a windows/amd64 member.
// arm64's config says variant v8, as buildx writes it; the synthesized
// index lists it with v8 too (docs/serving.md, Synthesis rule 4), and
// clients asking for linux/arm64 or linux/arm64/v8 must both get it
// (spelling_test.go).
var platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "arm", Variant: "v7"},
	{OS: "linux", Architecture: "arm", Variant: "v6"},
	{OS: "linux", Architecture: "386"},
	{OS: "linux", Architecture: "ppc64le"},
	{OS: "linux", Architecture: "s390x"},
	{OS: "linux", Architecture: "riscv64"},
	{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2966"},
}

// Tags of the other fixtures in every repository.
const (
	multiTag       = "multi"             // a real index upstream, arm64 "variant":"v8": passes through untouched
	multiOCITag    = "multi-oci"         // a real index upstream, arm64 without variant: passes through untouched
	multiShadowTag = "multi-linux-s390x" // a member tag of "multi": the real index still wins
	plainTag       = "plain"             // a single-platform image under a tag that is not a member
)

// group is a set of per-platform tags with one base.
type group struct {
	name string // "docker" or "oci"
	base string // bare tag the proxy synthesizes
	oci  bool   // OCI media types, else Docker's
	// longTags: member tags spell the platform's default variant out
	// (1.4-oci-linux-arm64-v8), else they take the canonical, short
	// suffix (1.4-linux-arm64). Only arm64 differs: arm tags always carry
	// their variant, amd64 never does.
	longTags bool
	members  []*member
}

// indexType is the media type the proxy must serve for the group.
func (g *group) indexType() types.MediaType {
	if g.oci {
		return types.OCIImageIndex
	}
	return types.DockerManifestList
}

// member is one per-platform image, as pushed.
type member struct {
	group    *group
	platform v1.Platform // as written in the config
	want     v1.Platform // what clients ask for: normalized, no os.version
	tag      string

	manifest     []byte
	digest       v1.Hash
	mediaType    types.MediaType
	config       []byte
	configDigest v1.Hash
	layer        v1.Hash
	// file is the path of the baked file in the layer tar: "platform", or
	// "Files/platform" in a Windows layer; content is what it holds.
	file    string
	content string
	image   v1.Image
}

// arg is the platform as --platform flags write it: linux/arm/v7.
func (m *member) arg() string { return platform.String(m.want) }

// slug names subtests: linux-arm-v7.
func (m *member) slug() string { return strings.ReplaceAll(m.arg(), "/", "-") }

func (m *member) windows() bool { return m.platform.OS == "windows" }

// fixtures are the images every repository gets.
type fixtures struct {
	groups []*group
	// multis are real indexes upstream, written by someone else than the
	// proxy: it passes them through untouched.
	multis []*realIndex
	plain  *member // the image under plainTag (docker linux/amd64)
}

// realIndex is an index pushed upstream, listing members of a group with
// the platforms its writer chose.
type realIndex struct {
	tag     string
	index   v1.ImageIndex
	bytes   []byte
	digest  v1.Hash
	entries []realEntry
}

type realEntry struct {
	m        *member
	platform v1.Platform // as written in the index entry
}

func newFixtures() (*fixtures, error) {
	fx := &fixtures{groups: []*group{
		{name: "docker", base: "1.4"},
		{name: "oci", base: "1.4-oci", oci: true, longTags: true},
	}}
	for _, g := range fx.groups {
		for _, p := range platforms {
			m, err := newMember(g, p)
			if err != nil {
				return nil, fmt.Errorf("building %s %s: %w", g.name, platform.String(p), err)
			}
			g.members = append(g.members, m)
		}
	}
	docker, oci := fx.groups[0], fx.groups[1]
	fx.plain = docker.members[0]
	linux := func(arch, variant string) v1.Platform {
		return v1.Platform{OS: "linux", Architecture: arch, Variant: variant}
	}
	for _, ri := range []*realIndex{
		// A Docker manifest list whose arm64 entry says "variant":"v8",
		// as Docker's official images write it.
		{tag: multiTag, entries: []realEntry{{docker.members[0], linux("amd64", "")}, {docker.members[1], linux("arm64", "v8")}, {docker.members[2], linux("arm", "v7")}}},
		// An OCI index whose arm64 entry has no variant, as buildx writes
		// it (containerd's platforms.Normalize drops arm64's v8).
		{tag: multiOCITag, entries: []realEntry{{oci.members[0], linux("amd64", "")}, {oci.members[1], linux("arm64", "")}, {oci.members[2], linux("arm", "v7")}}},
	} {
		mt := types.DockerManifestList
		if ri.entries[0].m.group.oci {
			mt = types.OCIImageIndex
		}
		var adds []mutate.IndexAddendum
		for _, e := range ri.entries {
			p := e.platform
			adds = append(adds, mutate.IndexAddendum{Add: e.m.image, Descriptor: v1.Descriptor{Platform: &p}})
		}
		ri.index = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, mt), adds...)
		var err error
		if ri.bytes, err = ri.index.RawManifest(); err != nil {
			return nil, err
		}
		if ri.digest, err = ri.index.Digest(); err != nil {
			return nil, err
		}
		fx.multis = append(fx.multis, ri)
	}
	return fx, nil
}

func newMember(g *group, p v1.Platform) (*member, error) {
	want := platform.Normalize(p)
	want.OSVersion = ""
	tag := index.FormatTag(g.base, p)
	if g.longTags {
		tag = g.base + "-" + strings.ReplaceAll(platform.String(want), "/", "-")
	}
	m := &member{group: g, platform: p, want: want, tag: tag, file: "platform"}
	m.content = platform.String(want) + "\n"
	files := []tarEntry{{name: "platform", body: m.content}}
	if m.windows() {
		// Windows layer layout: the filesystem under Files/, registry hives
		// under Hives/.
		m.file = "Files/platform"
		files = []tarEntry{{name: "Files/", dir: true}, {name: "Files/platform", body: m.content}, {name: "Hives/", dir: true}}
	}
	gz, err := gzipTar(files)
	if err != nil {
		return nil, err
	}
	base, layerType := empty.Image, types.DockerLayer
	if g.oci {
		base = mutate.ConfigMediaType(mutate.MediaType(base, types.OCIManifestSchema1), types.OCIConfigJSON)
		layerType = types.OCILayer
	}
	img, err := mutate.ConfigFile(base, &v1.ConfigFile{
		OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion,
		RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Cmd: []string{"/platform"},
			// The group label keeps the two groups' configs (and so image
			// IDs) apart although their layers are the same bytes.
			Labels: map[string]string{"org.manifold.e2e.group": g.name, "org.manifold.e2e.platform": m.arg()},
		},
	})
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil }, tarball.WithMediaType(layerType))
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "manifold e2e: " + m.file}})
	if err != nil {
		return nil, err
	}
	m.image = img
	if m.manifest, err = img.RawManifest(); err != nil {
		return nil, err
	}
	if m.digest, err = img.Digest(); err != nil {
		return nil, err
	}
	if m.mediaType, err = img.MediaType(); err != nil {
		return nil, err
	}
	if m.config, err = img.RawConfigFile(); err != nil {
		return nil, err
	}
	if m.configDigest, err = img.ConfigName(); err != nil {
		return nil, err
	}
	if m.layer, err = layer.Digest(); err != nil {
		return nil, err
	}
	return m, nil
}

type tarEntry struct {
	name, body string
	dir        bool
}

// gzipTar writes a deterministic gzipped tar (fixed times, no gzip
// header timestamp).
func gzipTar(entries []tarEntry) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.dir {
			h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// seed pushes every fixture to each repository on host (the upstream).
func (fx *fixtures) seed(host string, repos []string) error {
	var eg errgroup.Group
	eg.SetLimit(2)
	for _, r := range repos {
		eg.Go(func() error {
			repo := repoFor(r)
			todo := map[name.Reference]remote.Taggable{}
			tag := func(t string) name.Reference {
				ref, err := name.NewTag(host+"/"+repo+":"+t, name.Insecure)
				if err != nil {
					panic(err) // the tags above are valid
				}
				return ref
			}
			for _, g := range fx.groups {
				for _, m := range g.members {
					todo[tag(m.tag)] = m.image
				}
			}
			todo[tag(plainTag)] = fx.plain.image
			todo[tag(multiShadowTag)] = fx.groups[0].members[6].image // linux/s390x
			if err := remote.MultiWrite(todo); err != nil {
				return fmt.Errorf("seeding %s: %w", repo, err)
			}
			// The real indexes last, after the images they list.
			for _, ri := range fx.multis {
				if err := remote.WriteIndex(tag(ri.tag), ri.index); err != nil {
					return fmt.Errorf("seeding %s:%s: %w", repo, ri.tag, err)
				}
			}
			return nil
		})
	}
	return eg.Wait()
}

// members returns every member of every group, docker group first.
func (fx *fixtures) members() []*member {
	var out []*member
	for _, g := range fx.groups {
		out = append(out, g.members...)
	}
	return out
}

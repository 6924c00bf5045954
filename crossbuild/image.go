package crossbuild

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/manifold-proxy/manifold/platform"
)

// Scratch names the empty base image, the default.
const Scratch = "scratch"

// Base is a base image setting (--base IMAGE or --base PLATFORM=IMAGE).
type Base struct {
	// Platform is nil for the default base, used by every platform that
	// has no base of its own.
	Platform *v1.Platform
	// Image is a reference, or Scratch. A multi-platform image is
	// resolved per platform.
	Image string
}

// ParseBase parses IMAGE or os/arch[/variant]=IMAGE. Image references
// never contain "=", so the first one separates the platform.
func ParseBase(s string) (Base, error) {
	plat, img, ok := strings.Cut(s, "=")
	if !ok {
		if s == "" {
			return Base{}, fmt.Errorf("base: empty image")
		}
		return Base{Image: s}, nil
	}
	p, err := platform.Parse(plat)
	if err != nil {
		return Base{}, fmt.Errorf("base %q: %w", s, err)
	}
	if img == "" {
		return Base{}, fmt.Errorf("base %q: empty image", s)
	}
	return Base{Platform: &p, Image: img}, nil
}

// baseFor is the base image reference for t: its own, else the default.
func baseFor(bases []Base, t Target) string {
	def := Scratch
	for _, b := range bases {
		switch {
		case b.Platform == nil:
			def = b.Image
		case platform.String(platform.Normalize(*b.Platform)) == t.String():
			return b.Image
		}
	}
	return def
}

// baseImage is the base of one platform's image.
type baseImage struct {
	// ref is the base as given; "" for scratch.
	ref string
	// digest names the image used: for a multi-platform base, the child
	// picked for the platform.
	digest v1.Hash
	img    v1.Image
}

// baseFetcher reads each base reference once, however many platforms use
// it.
type baseFetcher struct {
	nameOpts   []name.Option
	remoteOpts []remote.Option

	mu    sync.Mutex
	descs map[string]*remote.Descriptor
}

func (f *baseFetcher) get(ctx context.Context, ref string) (*remote.Descriptor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.descs[ref]; ok {
		return d, nil
	}
	r, err := name.ParseReference(ref, f.nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("base %q: %w", ref, err)
	}
	d, err := remote.Get(r, append(f.remoteOpts, remote.WithContext(ctx))...)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", ref, err)
	}
	if f.descs == nil {
		f.descs = map[string]*remote.Descriptor{}
	}
	f.descs[ref] = d
	return d, nil
}

// errNoBase is a base that has no image for a platform.
type errNoBase struct {
	ref, platform, detail string
}

func (e *errNoBase) Error() string {
	return fmt.Sprintf("base %s has no image for %s%s", e.ref, e.platform, e.detail)
}

// forTarget resolves ref for t: the matching child of an index, or the
// image itself when its config platform fits.
func (f *baseFetcher) forTarget(ctx context.Context, ref string, t Target) (*baseImage, error) {
	if ref == Scratch || ref == "" {
		return &baseImage{}, nil
	}
	d, err := f.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	switch {
	case d.MediaType.IsIndex():
		idx, err := d.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
		child, err := pickChild(ref, m, t)
		if err != nil {
			return nil, err
		}
		img, err := idx.Image(child.Digest)
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
		return &baseImage{ref: ref, digest: child.Digest, img: img}, nil
	case d.MediaType.IsImage():
		img, err := d.Image()
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
		p := platform.Base(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant})
		if !platform.RunsOn(p, t.Platform) {
			return nil, &errNoBase{ref: ref, platform: t.String(), detail: " (it is a single " + platform.String(p) + " image)"}
		}
		return &baseImage{ref: ref, digest: d.Digest, img: img}, nil
	}
	return nil, fmt.Errorf("base %s: %s is not an image or an index", ref, d.MediaType)
}

// pickChild picks the child of a base index for t: same os and arch, the
// newest variant t can run. Several children that differ only in
// os.version (Windows) are ambiguous.
func pickChild(ref string, m *v1.IndexManifest, t Target) (v1.Descriptor, error) {
	var best []v1.Descriptor
	bestRank := -1
	for _, d := range m.Manifests {
		if d.Platform == nil || !d.MediaType.IsImage() {
			continue
		}
		// An image for t may start from a base built for the same or an
		// older CPU variant (arm/v6 userland runs on arm/v7).
		p := platform.Normalize(*d.Platform)
		if !platform.RunsOn(p, t.Platform) {
			continue
		}
		r, _ := platform.VariantRank(p.Architecture, p.Variant)
		switch {
		case r > bestRank:
			best, bestRank = []v1.Descriptor{d}, r
		case r == bestRank:
			best = append(best, d)
		}
	}
	switch len(best) {
	case 0:
		return v1.Descriptor{}, &errNoBase{ref: ref, platform: t.String()}
	case 1:
		return best[0], nil
	}
	var vs []string
	for _, d := range best {
		vs = append(vs, d.Platform.OSVersion)
	}
	return v1.Descriptor{}, fmt.Errorf("base %s has %d images for %s (os.version %s); give one with --base %s=IMAGE@DIGEST",
		ref, len(best), t, strings.Join(vs, ", "), t)
}

// assemble puts the layer on the base and writes the config: the target's
// os/arch/variant, the binary as entrypoint with no Cmd (a base's Cmd would
// become the binary's arguments), no creation time. Everything else of the
// base's config (env, user, os.version) is kept.
//
// Media types follow the base: a Docker schema 2 base gets a Docker layer
// and stays Docker, so the manifest never mixes the two; scratch is OCI.
func assemble(base v1.Image, t Target, layer v1.Layer, entrypoint []string, createdBy string) (v1.Image, error) {
	img := base
	if img == nil {
		img = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	img, err := mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: createdBy}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = t.Platform.OS, t.Platform.Architecture, t.ConfigVariant
	cf.Created = v1.Time{}
	cf.Config.Entrypoint = entrypoint
	cf.Config.Cmd = nil
	return mutate.ConfigFile(img, cf)
}

// layerMediaType is the media type of the layer put on base.
func layerMediaType(base v1.Image) (types.MediaType, error) {
	if base == nil {
		return types.OCILayer, nil
	}
	mt, err := base.MediaType()
	if err != nil {
		return "", err
	}
	if mt == types.DockerManifestSchema2 {
		return types.DockerLayer, nil
	}
	return types.OCILayer, nil
}

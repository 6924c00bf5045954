package crossbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/upstream"
)

// Stage is a step of one platform's build, as reported to Progress.
type Stage string

const (
	// StageQueued announces every platform, in order, before work starts.
	StageQueued  Stage = "queued"
	StageCompile Stage = "compiling"
	StagePack    Stage = "packing"
	StagePush    Stage = "pushing"
	// StageDone ends a platform; Event.Status says how.
	StageDone Stage = "done"
	// StageNote is a finding worth showing (a replaced tag, a platform
	// left out); Event.Platform may be empty.
	StageNote Stage = "note"
)

// Status is the outcome of one image or index tag.
type Status string

const (
	// StatusBuilt: dry run, nothing pushed.
	StatusBuilt Status = "built"
	// StatusPushed: the manifest and the blobs the registry lacked were
	// uploaded, then the tags set.
	StatusPushed Status = "pushed"
	// StatusTagged: the registry already had the manifest; only tags
	// moved.
	StatusTagged Status = "tagged"
	// StatusUnchanged: every tag already pointed to this digest; nothing
	// was sent.
	StatusUnchanged Status = "unchanged"
	// StatusReplaced: an index replaced something else under a bare tag.
	StatusReplaced Status = "replaced"
	// StatusFailed: the platform did not build (events only).
	StatusFailed Status = "failed"
	// StatusSkipped: "all" asked for the platform and the base lacks it
	// (events only; Build.Skipped says why).
	StatusSkipped Status = "skipped"
)

// Event reports progress.
type Event struct {
	// Platform is os/arch[/variant], or "" for repository-wide notes.
	Platform string
	Stage    Stage
	// Status is set with StageDone.
	Status Status
	// Message is a detail: the digest when done, the text of a note.
	Message string
}

// BuiltImage is one pushed (or, in a dry run, built) image.
type BuiltImage struct {
	Platform v1.Platform
	// Tags are the suffixed tags, in the order of Options.Tags.
	Tags []string
	// GoEnv is the environment that selected the platform (GOOS=...).
	GoEnv []string
	// Base is the base image as given, "" for scratch; BaseDigest the
	// image used (for a multi-platform base, the platform's child).
	Base       string
	BaseDigest v1.Hash
	// Descriptor of the image manifest.
	Descriptor v1.Descriptor
	// Size is config plus layers, compressed: what a pull downloads at
	// most.
	Size   int64
	Status Status

	img v1.Image
}

// IndexTag is the outcome of pushing the index under one bare tag.
type IndexTag struct {
	Tag    string
	Status Status
	// Previous is what the tag held before, when it was replaced.
	Previous *v1.Descriptor
}

// BuiltIndex is the multi-platform index of the images, computed by package
// index exactly as the proxy synthesizes it from the suffixed tags.
type BuiltIndex struct {
	Descriptor v1.Descriptor
	Bytes      []byte
	// Tags are the bare tags it was pushed under (Options.Index).
	Tags []IndexTag
}

// Build is what Run did: the images and their index, pushed or, in a dry
// run, built.
type Build struct {
	// Repository is REGISTRY/REPO as pushed to.
	Repository string
	// Package is the import path built, Binary the binary's name.
	Package, Binary string
	// Tags are the bare tags.
	Tags []string
	// Images in (os, arch, variant) order.
	Images []BuiltImage
	Index  BuiltIndex
	// Skipped are the platforms of "all" that were left out, with why.
	Skipped []string
	// Warnings name findings such as member tags of the same bare tag
	// that this build did not produce.
	Warnings []string
	DryRun   bool
}

// Run builds the package for every platform and pushes one image per
// platform under <tag>-<os>-<arch>[-<variant>]. It is all-or-nothing:
// every platform compiles before anything is pushed, and tags move only
// after every image is in the registry.
func Run(ctx context.Context, o Options) (*Build, error) {
	if err := o.defaults(ctx); err != nil {
		return nil, err
	}
	p, err := o.validate(ctx)
	if err != nil {
		return nil, err
	}
	res := &Build{Repository: p.repo.Name(), Tags: p.tags, Skipped: p.skipped, DryRun: o.DryRun}
	// Through a manifold proxy, see what the registry behind it holds: the
	// bare tag resolves there to the synthesized index otherwise, and an
	// --index push would look unchanged and never be stored.
	rt := o.Transport
	if rt == nil {
		rt = remote.DefaultTransport
	}
	rt = upstream.WithHeader(rt, http.Header{upstream.HeaderSynthesis: {"off"}})
	ropts := []remote.Option{remote.WithAuthFromKeychain(o.Keychain), remote.WithJobs(o.PushJobs), remote.WithUserAgent("manifold-build"), remote.WithTransport(rt)}
	var nopts []name.Option
	if o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	for _, s := range p.skipped {
		o.Progress(Event{Stage: StageNote, Message: "skipped " + s})
	}
	for _, t := range p.targets {
		o.Progress(Event{Platform: t.String(), Stage: StageQueued})
	}

	if err := buildAll(ctx, &o, p, &baseFetcher{nameOpts: nopts, remoteOpts: ropts}, res); err != nil {
		return nil, err
	}
	idx, err := synthesize(p.tags[0], res.Images)
	if err != nil {
		return nil, err
	}
	res.Index = BuiltIndex{Descriptor: idx.Descriptor(), Bytes: idx.Bytes}

	if o.DryRun {
		for i := range res.Images {
			res.Images[i].Status = StatusBuilt
			o.Progress(Event{Platform: platform.String(res.Images[i].Platform), Stage: StageDone, Status: StatusBuilt, Message: res.Images[i].Descriptor.Digest.String()})
		}
		return res, nil
	}
	if err := push(ctx, &o, p, ropts, res); err != nil {
		return nil, err
	}
	return res, nil
}

// buildAll builds every platform into res.Images, in platform order:
// per platform, the base, then the compile (at most Jobs at once), then
// the pack, which does not hold a compile slot.
func buildAll(ctx context.Context, o *Options, p *plan, fetcher *baseFetcher, res *Build) error {
	// `go list` checks the package while the platforms compile: it costs
	// as much as a no-change `go build`, and only the binary's name waits
	// for it.
	pkgc := make(chan struct{})
	var pkg goPackage
	var pkgErr error
	go func() {
		defer close(pkgc)
		pkg, pkgErr = listPackage(ctx, o.GoBinary, o.Dir, o.Env, o.Package)
	}()
	waitPkg := func(ctx context.Context) (goPackage, error) {
		select {
		case <-pkgc:
			return pkg, pkgErr
		case <-ctx.Done():
			return goPackage{}, ctx.Err()
		}
	}

	cacheRoot := filepath.Join(o.CacheDir, cacheKey(o))
	images := make([]*BuiltImage, len(p.targets))
	skipped := make([]string, len(p.targets))
	slots := make(chan struct{}, o.Jobs)
	eg, ectx := errgroup.WithContext(ctx)
	for i, t := range p.targets {
		eg.Go(func() error {
			// The base image keeps the context it was read with for the
			// layers it reads later: Run's, not this phase's.
			base, err := fetcher.forTarget(ctx, baseFor(p.bases, t), t)
			var nb *errNoBase
			if errors.As(err, &nb) && p.fromAll[t.String()] {
				skipped[i] = err.Error()
				o.Progress(Event{Platform: t.String(), Stage: StageDone, Status: StatusSkipped, Message: "(the base has no image for it)"})
				return nil
			}
			if err != nil {
				return err
			}
			img, err := buildOne(ectx, o, p, t, base, filepath.Join(cacheRoot, t.Suffix()), slots, waitPkg)
			if err != nil {
				if ectx.Err() == nil {
					o.Progress(Event{Platform: t.String(), Stage: StageDone, Status: StatusFailed})
				}
				return err
			}
			images[i] = img
			return nil
		})
	}
	err := eg.Wait()
	if _, perr := waitPkg(ctx); perr != nil {
		// A package that does not load explains any compile failure.
		return perr
	}
	if err != nil {
		return err
	}
	res.Package, res.Binary = pkg.ImportPath, pkg.binaryName()
	for i, img := range images {
		if img != nil {
			res.Images = append(res.Images, *img)
		} else if skipped[i] != "" {
			res.Skipped = append(res.Skipped, skipped[i])
			o.Progress(Event{Stage: StageNote, Message: "skipped " + skipped[i]})
		}
	}
	if len(res.Images) == 0 {
		return errors.New("no platform to build: the base provides none of them")
	}
	return nil

}

// buildOne compiles and assembles the image of one platform. The compile
// takes one of slots; waitPkg gives the listed package, needed from the
// binary's name on.
func buildOne(ctx context.Context, o *Options, p *plan, t Target, base *baseImage, dir string,
	slots chan struct{}, waitPkg func(context.Context) (goPackage, error)) (*BuiltImage, error) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	o.Progress(Event{Platform: t.String(), Stage: StageCompile})
	err := compile(ctx, o, t, dir)
	<-slots
	if err != nil {
		return nil, err
	}
	pkg, err := waitPkg(ctx)
	if err != nil {
		return nil, err
	}
	o.Progress(Event{Platform: t.String(), Stage: StagePack})
	mt, err := layerMediaType(base.img)
	if err != nil {
		return nil, fmt.Errorf("%s: base %s: %w", t, base.ref, err)
	}
	// The binary goes at the root: /<name>, or C:\<name>.exe, which is
	// Files/<name>.exe in a Windows layer.
	windows := t.Platform.OS == "windows"
	binName := pkg.binaryName()
	spec := layerSpec{windows: windows, binary: filepath.Join(dir, binName), binName: binName, adds: p.adds, dir: o.Dir, mtime: p.mtime}
	entrypoint := []string{"/" + binName}
	if windows {
		spec.binary += ".exe"
		spec.binName = "Files/" + binName + ".exe"
		entrypoint = []string{`C:\` + binName + ".exe"}
	}
	layer, err := buildLayer(spec, mt, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	img, err := assemble(base.img, t, layer, entrypoint, "proxy build "+pkg.ImportPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	desc, size, err := describe(img)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	out := &BuiltImage{
		Platform: t.Platform, GoEnv: t.GoEnv, Base: base.ref, BaseDigest: base.digest,
		Descriptor: desc, Size: size, img: img,
	}
	for _, tag := range p.tags {
		out.Tags = append(out.Tags, index.FormatTag(tag, t.Platform))
	}
	return out, nil
}

// describe returns the manifest descriptor and the compressed size of
// config and layers.
func describe(img v1.Image) (v1.Descriptor, int64, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, 0, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, 0, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, 0, err
	}
	d, n, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, 0, err
	}
	size := m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: n}, size, nil
}

// synthesize computes the index from the images' facts with the same
// code, and the same inputs, as the proxy: members parsed from the tags,
// platform facts parsed from the config bytes. The bytes do not depend on
// the bare tag.
func synthesize(base string, imgs []BuiltImage) (*index.Result, error) {
	members := make([]index.Member, len(imgs))
	for i, im := range imgs {
		tag := index.FormatTag(base, im.Platform)
		s, ok := index.Grammar{}.Parse(tag)
		if !ok {
			return nil, fmt.Errorf("tag %s does not parse as a platform member", tag)
		}
		rawCfg, err := im.img.RawConfigFile()
		if err != nil {
			return nil, err
		}
		m, err := im.img.Manifest()
		if err != nil {
			return nil, err
		}
		cfg, err := index.ParseConfig(m.Config.MediaType, rawCfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tag, err)
		}
		members[i] = index.Member{Tag: tag, Suffix: s, Images: []index.Image{{
			Descriptor: v1.Descriptor{MediaType: im.Descriptor.MediaType, Digest: im.Descriptor.Digest, Size: im.Descriptor.Size},
			Config:     cfg,
		}}}
	}
	res, err := index.Synthesize(base, members)
	if err != nil {
		return nil, err
	}
	if len(res.Excluded) > 0 || len(res.Entries) != len(imgs) {
		// Our own images must all be listed; anything else is a bug in
		// how they were assembled.
		var why []string
		for _, x := range res.Excluded {
			why = append(why, x.String())
		}
		return nil, fmt.Errorf("index leaves out built images: %s", strings.Join(why, "; "))
	}
	return res, nil
}

// rawManifest pushes manifest bytes as they are.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// Platforms lists the images' platforms as os/arch[/variant].
func (r *Build) Platforms() []string {
	out := make([]string, len(r.Images))
	for i, im := range r.Images {
		out[i] = platform.String(im.Platform)
	}
	return slices.Clip(out)
}

package crossbuild

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

// push sends the images, then the tags, then the index.
//
//  1. Per image, HEAD its tags: when all already name its digest, the
//     image is unchanged and nothing is sent.
//  2. Otherwise the manifest is pushed by digest; the pusher HEADs the
//     manifest and each blob first and uploads only what is missing, and
//     a blob shared by several images (a base layer) once.
//  3. Only when every image is in the registry do tags move.
//  4. With Options.Index, the index goes under each bare tag last, when
//     every child it lists exists.
func push(ctx context.Context, o *Options, p *plan, ropts []remote.Option, res *Build) error {
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return err
	}
	pusher, err := remote.NewPusher(ropts...)
	if err != nil {
		return err
	}
	head := func(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
		d, err := puller.Head(ctx, ref)
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			return nil, nil
		}
		return d, err
	}
	retag, err := pushImages(ctx, o, p, res, head, pusher)
	if err != nil {
		return err
	}
	if err := moveTags(ctx, o, p, res, retag, pusher); err != nil {
		return err
	}
	for _, im := range res.Images {
		o.Progress(Event{Platform: platform.String(im.Platform), Stage: StageDone, Status: im.Status, Message: im.Descriptor.Digest.String()})
	}
	for _, tag := range p.tags {
		if !o.Index {
			warnBare(ctx, o, p.repo.Tag(tag), res, head)
			continue
		}
		it, err := pushIndex(ctx, o, p.repo.Tag(tag), res.Index, head, pusher)
		if err != nil {
			return err
		}
		res.Index.Tags = append(res.Index.Tags, it)
	}
	warnStrangers(ctx, o, p, puller, res)
	return nil
}

// headFunc is a HEAD that answers nil for a 404.
type headFunc func(context.Context, name.Reference) (*v1.Descriptor, error)

// pushImages is steps 1 and 2: it returns, per image, the tags that do not
// name it yet, and pushes by digest the images that are not there.
func pushImages(ctx context.Context, o *Options, p *plan, res *Build, head headFunc, pusher *remote.Pusher) ([][]string, error) {
	retag := make([][]string, len(res.Images))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(max(o.Jobs, 4))
	for i := range res.Images {
		im := &res.Images[i]
		plat := platform.String(im.Platform)
		eg.Go(func() error {
			o.Progress(Event{Platform: plat, Stage: StagePush})
			for _, tag := range im.Tags {
				d, err := head(ectx, p.repo.Tag(tag))
				if err != nil {
					return fmt.Errorf("checking %s:%s: %w", p.repo, tag, err)
				}
				if d == nil || d.Digest != im.Descriptor.Digest {
					retag[i] = append(retag[i], tag)
				}
			}
			if len(retag[i]) == 0 {
				im.Status = StatusUnchanged
				return nil
			}
			ref := p.repo.Digest(im.Descriptor.Digest.String())
			d, err := head(ectx, ref)
			if err != nil {
				return fmt.Errorf("checking %s: %w", ref, err)
			}
			if d != nil {
				im.Status = StatusTagged
				return nil
			}
			if err := pusher.Push(ectx, ref, im.img); err != nil {
				return fmt.Errorf("pushing %s: %w", plat, err)
			}
			im.Status = StatusPushed
			return nil
		})
	}
	return retag, eg.Wait()
}

// moveTags is step 3: once every image is in the registry, the tags move.
func moveTags(ctx context.Context, o *Options, p *plan, res *Build, retag [][]string, pusher *remote.Pusher) error {
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(max(o.Jobs, 4))
	for i := range res.Images {
		im := &res.Images[i]
		for _, tag := range retag[i] {
			eg.Go(func() error {
				if err := pusher.Put(ectx, p.repo.Tag(tag), im.img); err != nil {
					return fmt.Errorf("tagging %s: %w", tag, err)
				}
				return nil
			})
		}
	}
	return eg.Wait()
}

// warnBare says when the bare tag holds something that stops the proxy
// from serving the index of this build: a real index passes through
// untouched, and a single image joins the synthesized one (merge policy).
func warnBare(ctx context.Context, o *Options, ref name.Tag, res *Build, head headFunc) {
	d, err := head(ctx, ref)
	if err != nil || d == nil || d.Digest == res.Index.Descriptor.Digest {
		return
	}
	var w string
	if d.MediaType.IsIndex() {
		w = fmt.Sprintf("%s holds the index %s, which the proxy serves as it is, not the index of this build (%s); push with --index to replace it",
			ref.TagStr(), d.Digest, res.Index.Descriptor.Digest)
	} else {
		w = fmt.Sprintf("%s holds the single image %s; under the proxy's default merge policy it is listed with this build's images unless one has its platform",
			ref.TagStr(), d.Digest)
	}
	res.Warnings = append(res.Warnings, w)
	o.Progress(Event{Stage: StageNote, Message: w})
}

// pushIndex puts the index under one bare tag. Whatever the tag held is
// replaced, and said so: the publisher asked for this index.
func pushIndex(ctx context.Context, o *Options, ref name.Tag, idx BuiltIndex,
	head headFunc, pusher *remote.Pusher) (IndexTag, error) {
	it := IndexTag{Tag: ref.TagStr(), Status: StatusPushed}
	prev, err := head(ctx, ref)
	if err != nil {
		return it, fmt.Errorf("checking %s: %w", ref, err)
	}
	if prev != nil && prev.Digest == idx.Descriptor.Digest {
		it.Status = StatusUnchanged
		return it, nil
	}
	if prev != nil {
		it.Status, it.Previous = StatusReplaced, prev
		o.Progress(Event{Stage: StageNote, Message: fmt.Sprintf("%s: replacing %s %s with the index", ref.TagStr(), kind(prev), prev.Digest)})
	}
	if err := pusher.Put(ctx, ref, rawManifest{b: idx.Bytes, mt: idx.Descriptor.MediaType}); err != nil {
		return it, fmt.Errorf("pushing index %s: %w", ref.TagStr(), err)
	}
	return it, nil
}

func kind(d *v1.Descriptor) string {
	if d.MediaType.IsIndex() {
		return "index"
	}
	return "image"
}

// warnStrangers names the member tags of our bare tags that this build did
// not produce (a platform dropped since an earlier build): the proxy lists
// them in the index it synthesizes, and a pushed index does not. It only
// warns; a failure to list tags is not an error of the build.
func warnStrangers(ctx context.Context, o *Options, p *plan, puller *remote.Puller, res *Build) {
	tags, err := puller.List(ctx, p.repo)
	if err != nil {
		o.Logger.Debug("listing tags", "repo", p.repo.Name(), "error", err)
		return
	}
	ours := map[string]bool{}
	for _, im := range res.Images {
		for _, t := range im.Tags {
			ours[t] = true
		}
	}
	for _, base := range p.tags {
		var extra []string
		for _, s := range (index.Grammar{}).Members(tags, base) {
			if !ours[s.Tag] {
				extra = append(extra, s.Tag)
			}
		}
		if len(extra) == 0 {
			continue
		}
		slices.Sort(extra)
		what := "the proxy's index for " + base + " lists them too"
		if o.Index {
			what = "the pushed index leaves them out"
		}
		w := fmt.Sprintf("%s: the repository also has %s, not built by this run; %s", base, strings.Join(extra, ", "), what)
		res.Warnings = append(res.Warnings, w)
		o.Progress(Event{Stage: StageNote, Message: w})
	}
}

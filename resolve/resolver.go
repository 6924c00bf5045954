package resolve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/manifold-proxy/manifold/index"
)

// DefaultMaxManifestBytes is the largest member manifest or config read: 4 MiB,
// the limit registries put on manifests.
const DefaultMaxManifestBytes = 4 << 20

// Options configure a Resolver.
type Options struct {
	// Grammar of member tags. Default: the canonical suffix grammar.
	Grammar index.Grammar
	// MaxManifestBytes caps member manifests and configs. Default 4 MiB.
	MaxManifestBytes int64
	// Concurrency bounds the members resolved at once. Default 8.
	Concurrency int
	// FactBytes bounds the memory of the per-digest facts (parsed member
	// manifests and configs, kept for good: they never change). Default
	// 256 MiB.
	FactBytes int64
	// Logger receives exclusions and duplicate warnings. Default: silent.
	Logger *slog.Logger
}

// Stats count synthesis outcomes.
type Stats struct {
	Syntheses, Excluded, Duplicates atomic.Int64
}

// Resolver resolves groups through a Source.
type Resolver struct {
	src   Source
	o     Options
	sf    singleflight.Group
	facts *sizedLRU[v1.Hash, *manifestFacts]
	cfgs  *sizedLRU[v1.Hash, *index.Config]
	Stats Stats
}

// manifestFacts is what synthesis needs from a member manifest; immutable
// per digest.
type manifestFacts struct {
	mediaType types.MediaType
	config    v1.Descriptor     // image manifests
	index     *v1.IndexManifest // indexes
}

// New makes a Resolver reading from src (usually a *Cache).
func New(src Source, o Options) *Resolver {
	if o.MaxManifestBytes <= 0 {
		o.MaxManifestBytes = DefaultMaxManifestBytes
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.FactBytes <= 0 {
		o.FactBytes = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Resolver{src: src, o: o,
		facts: newSizedLRU[v1.Hash, *manifestFacts](o.FactBytes * 3 / 4),
		cfgs:  newSizedLRU[v1.Hash, *index.Config](o.FactBytes / 4)}
}

// Grammar is the member tag grammar in use.
func (r *Resolver) Grammar() index.Grammar { return r.o.Grammar }

// Group is the outcome for one bare tag.
type Group struct {
	Repo, Base string
	Policy     index.Policy
	// Bare is what the bare tag holds upstream; BareDescriptor is set
	// unless it is absent.
	Bare           index.BareKind
	BareDescriptor *v1.Descriptor
	// Suffixes are the member tags found.
	Suffixes []index.Suffix
	// Members are the resolved members (empty when Action is ServeUpstream).
	Members []index.Member
	Action  index.Action
	// Result is the synthesized index when Action is not ServeUpstream.
	Result *index.Result
}

// Resolve resolves base in repo. tags is the repository's tag list (from
// Source.Tags, usually cached). When every member is excluded the error is
// an *index.EmptyGroupError; a transient upstream failure of any member
// fails the whole resolution (an index missing a platform would get a
// different digest).
func (r *Resolver) Resolve(ctx context.Context, repo, base string, tags []string, policy index.Policy) (*Group, error) {
	// Callers share one resolution, which must not fail for all of them
	// when the first one hangs up: it runs detached from any one caller,
	// and each caller stops waiting when its own context ends.
	ch := r.sf.DoChan(repo+":"+base+":"+string(policy), func() (any, error) {
		return r.resolve(context.WithoutCancel(ctx), repo, base, tags, policy)
	})
	select {
	case res := <-ch:
		g, _ := res.Val.(*Group)
		return g, res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Resolver) resolve(ctx context.Context, repo, base string, tags []string, policy index.Policy) (*Group, error) {
	g := &Group{Repo: repo, Base: base, Policy: policy, Suffixes: r.o.Grammar.Members(tags, base)}
	if len(g.Suffixes) == 0 {
		g.Action = index.ServeUpstream
		return g, nil
	}
	if slices.Contains(tags, base) {
		d, err := r.src.Head(ctx, repo, base)
		switch {
		case err == nil:
			g.BareDescriptor = &d
			g.Bare = index.BareImage
			if d.MediaType.IsIndex() {
				g.Bare = index.BareIndex
			}
		case NotFound(err):
		default:
			return nil, fmt.Errorf("resolving %s:%s: %w", repo, base, err)
		}
	}
	g.Action = index.Decide(policy, g.Bare, len(g.Suffixes))
	if g.Action == index.ServeUpstream {
		return g, nil
	}

	members := make([]index.Member, len(g.Suffixes), len(g.Suffixes)+1)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(r.o.Concurrency)
	for i, s := range g.Suffixes {
		eg.Go(func() error {
			m, err := r.member(ectx, repo, s, nil)
			members[i] = m
			return err
		})
	}
	if g.Action == index.ServeIndexWithBare {
		members = members[:len(members)+1]
		eg.Go(func() error {
			m, err := r.member(ectx, repo, index.Suffix{}, g.BareDescriptor)
			m.Tag = base
			members[len(members)-1] = m
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	g.Members = members
	res, err := index.Synthesize(base, members)
	r.Stats.Syntheses.Add(1)
	var empty *index.EmptyGroupError
	switch {
	case errors.As(err, &empty):
		r.Stats.Excluded.Add(int64(len(empty.Excluded)))
		for _, x := range empty.Excluded {
			r.o.Logger.Warn("member excluded", "repo", repo, "base", base, "tag", x.Tag, "reason", x.Reason)
		}
		return g, err
	case err != nil:
		return nil, err
	}
	r.Stats.Excluded.Add(int64(len(res.Excluded)))
	r.Stats.Duplicates.Add(int64(len(res.Warnings)))
	for _, x := range res.Excluded {
		r.o.Logger.Warn("member excluded", "repo", repo, "base", base, "tag", x.Tag, "digest", x.Digest.String(), "reason", x.Reason)
	}
	for _, w := range res.Warnings {
		r.o.Logger.Warn("duplicate member", "repo", repo, "base", base, "warning", w)
	}
	g.Result = res
	return g, nil
}

// ResolveAll resolves every group of repo. Groups whose members are all
// excluded are returned with a nil Result.
func (r *Resolver) ResolveAll(ctx context.Context, repo string, tags []string, policy index.Policy) ([]*Group, error) {
	groups := r.o.Grammar.Group(tags)
	bases := make([]string, 0, len(groups))
	for b := range groups {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	out := make([]*Group, len(bases))
	for i, b := range bases {
		g, err := r.Resolve(ctx, repo, b, tags, policy)
		var empty *index.EmptyGroupError
		if err != nil && !errors.As(err, &empty) {
			return nil, err
		}
		out[i] = g
	}
	return out, nil
}

// member resolves one member tag (or, with s zero, the bare tag whose
// descriptor is bare). Definitive problems become Member.Problem; only
// transient failures are returned as errors.
func (r *Resolver) member(ctx context.Context, repo string, s index.Suffix, bare *v1.Descriptor) (index.Member, error) {
	m := index.Member{Tag: s.Tag, Suffix: s}
	var d v1.Descriptor
	if bare != nil {
		d = *bare
	} else {
		var err error
		d, err = r.src.Head(ctx, repo, s.Tag)
		if err != nil {
			if definitive(err) {
				m.Problem = fmt.Sprintf("tag cannot be resolved: %v", err)
				return m, nil
			}
			return m, fmt.Errorf("resolving %s:%s: %w", repo, s.Tag, err)
		}
	}
	if d.Size > r.o.MaxManifestBytes {
		m.Problem = fmt.Sprintf("manifest is %d bytes, over the %d-byte limit", d.Size, r.o.MaxManifestBytes)
		return m, nil
	}
	f, problem, err := r.manifest(ctx, repo, d)
	if err != nil || problem != "" {
		m.Problem = problem
		return m, err
	}
	if f.index == nil {
		d.MediaType = f.mediaType
		img, err := r.image(ctx, repo, v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, f)
		m.Images = []index.Image{img}
		return m, err
	}
	if bare != nil {
		m.Problem = "the bare tag is an index"
		return m, nil
	}
	children, atts := index.Flatten(f.index, s)
	m.Attestations = atts
	for _, c := range children {
		var img index.Image
		if c.Size > r.o.MaxManifestBytes {
			img = index.Image{Descriptor: c, Problem: fmt.Sprintf("manifest is %d bytes, over the %d-byte limit", c.Size, r.o.MaxManifestBytes)}
		} else {
			cf, problem, err := r.manifest(ctx, repo, c)
			if err != nil {
				return m, err
			}
			if problem != "" {
				img = index.Image{Descriptor: c, Problem: problem}
			} else if img, err = r.image(ctx, repo, c, cf); err != nil {
				return m, err
			}
		}
		m.Images = append(m.Images, img)
	}
	return m, nil
}

// image reads the config facts of an image manifest.
func (r *Resolver) image(ctx context.Context, repo string, d v1.Descriptor, f *manifestFacts) (index.Image, error) {
	img := index.Image{Descriptor: d}
	if f.index != nil {
		img.Problem = "nested index"
		return img, nil
	}
	switch f.config.MediaType {
	case types.DockerConfigJSON, types.OCIConfigJSON:
	default:
		// An artifact: say what it is without downloading its config.
		img.Config = &index.Config{MediaType: f.config.MediaType}
		return img, nil
	}
	if c, ok := r.cfgs.Get(f.config.Digest); ok {
		img.Config = c
		return img, nil
	}
	if f.config.Size > r.o.MaxManifestBytes {
		img.Problem = fmt.Sprintf("config is %d bytes, over the %d-byte limit", f.config.Size, r.o.MaxManifestBytes)
		return img, nil
	}
	b, err := r.src.Blob(ctx, repo, f.config.Digest, r.o.MaxManifestBytes)
	if err != nil {
		if definitive(err) {
			img.Problem = fmt.Sprintf("config %s cannot be read: %v", f.config.Digest, err)
			return img, nil
		}
		return img, fmt.Errorf("reading config %s of %s: %w", f.config.Digest, repo, err)
	}
	c, err := index.ParseConfig(f.config.MediaType, b)
	if err != nil {
		img.Problem = err.Error()
		return img, nil
	}
	r.cfgs.Add(f.config.Digest, c, int64(256+len(c.OSVersion)+16*len(c.OSFeatures)))
	img.Config = c
	return img, nil
}

// manifest reads and parses a manifest by digest, once per digest.
func (r *Resolver) manifest(ctx context.Context, repo string, d v1.Descriptor) (*manifestFacts, string, error) {
	if f, ok := r.facts.Get(d.Digest); ok {
		return f, "", nil
	}
	b, mt, err := r.src.Manifest(ctx, repo, d.Digest, r.o.MaxManifestBytes)
	if err != nil {
		if definitive(err) {
			return nil, fmt.Sprintf("manifest %s cannot be read: %v", d.Digest, err), nil
		}
		return nil, "", fmt.Errorf("reading manifest %s of %s: %w", d.Digest, repo, err)
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Sprintf("malformed manifest %s: %v", d.Digest, err), nil
	}
	if mt == "" || mt == "application/json" || mt == "text/plain" {
		mt = probe.MediaType
	}
	f := &manifestFacts{mediaType: mt}
	switch {
	case mt.IsIndex() || (mt == "" && probe.Manifests != nil):
		idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Sprintf("malformed index %s: %v", d.Digest, err), nil
		}
		f.index = idx
	case mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed:
		return nil, "schema1 manifests cannot be listed in an index", nil
	default:
		m, err := v1.ParseManifest(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Sprintf("malformed manifest %s: %v", d.Digest, err), nil
		}
		if m.Config.Digest.Hex == "" {
			return nil, fmt.Sprintf("manifest %s has no config", d.Digest), nil
		}
		f.config = m.Config
		if f.mediaType == "" {
			f.mediaType = types.OCIManifestSchema1
		}
	}
	// An index costs about its size (its descriptors are kept); an image
	// manifest only its config descriptor.
	cost := int64(256)
	if f.index != nil {
		cost = int64(len(b))
	}
	r.facts.Add(d.Digest, f, cost)
	return f, "", nil
}

package resolve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/flight"
	"github.com/manifold-proxy/manifold/internal/lru"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/store"
	"github.com/manifold-proxy/manifold/upstream"
)

// Defaults of Options.
const (
	// DefaultMaxManifestBytes is the largest member manifest or config
	// read: 4 MiB, the limit registries put on manifests.
	DefaultMaxManifestBytes = 4 << 20
	// DefaultConcurrency bounds the members resolved at once per group:
	// enough that 32 members cost the round trips of one.
	DefaultConcurrency = 32
	// DefaultFactBytes bounds the memory of the per-digest facts.
	DefaultFactBytes = 256 << 20
	// DefaultMaxSearchGroups bounds the bare tags FindIndex resolves.
	DefaultMaxSearchGroups = 5000
	// DefaultSearchTimeout bounds one FindIndex search.
	DefaultSearchTimeout = 2 * time.Minute
)

// ErrSearchTooLarge is wrapped by FindIndex's error for a repository with
// more bare tags than Options.MaxSearchGroups.
var ErrSearchTooLarge = errors.New("too many bare tags to search")

// Options configure a Resolver.
type Options struct {
	// Grammar of member tags. Default: the canonical suffix grammar.
	Grammar index.Grammar
	// MaxManifestBytes caps member manifests and configs. Default
	// DefaultMaxManifestBytes.
	MaxManifestBytes int64
	// Concurrency bounds the members resolved at once. Default
	// DefaultConcurrency.
	Concurrency int
	// FactBytes bounds the memory of the per-digest facts (parsed member
	// manifests and configs, kept for good: they never change). Default
	// DefaultFactBytes.
	FactBytes int64
	// Store, when set, receives every index the resolver decides to serve
	// (Outcome Index), keyed by Registry, repository and digest, so that a
	// digest once served stays fetchable by digest. Default: none.
	Store store.Store
	// Registry names the source in store keys (host[:port]). Required with
	// Store.
	Registry string
	// MaxSearchGroups bounds the bare tags FindIndex resolves to find an
	// unknown digest: a repository with more is not searched (the digest is
	// then found only in the Store). Default DefaultMaxSearchGroups.
	MaxSearchGroups int
	// SearchTimeout bounds one FindIndex search. Default
	// DefaultSearchTimeout.
	SearchTimeout time.Duration
	// Logger receives exclusions and duplicate warnings. Default: silent.
	Logger *slog.Logger
}

// Stats count synthesis outcomes.
type Stats struct {
	Syntheses, Excluded, Duplicates atomic.Int64
	// StoreWriteErrors are indexes the store failed to keep (they were
	// served all the same).
	StoreWriteErrors atomic.Int64
}

// Resolver answers, for one registry, the question the whole proxy rests
// on: what does repo:tag serve? (See Resolve.)
type Resolver struct {
	src   Source
	o     Options
	sf    flight.Group[*Group]
	finds flight.Group[map[v1.Hash]string]
	facts *lru.Sized[v1.Hash, *manifestFacts]
	cfgs  *lru.Sized[v1.Hash, *index.Config]
	found *findMemo
	kept  *lru.Sized[string, readyEntry]
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
		o.Concurrency = DefaultConcurrency
	}
	if o.FactBytes <= 0 {
		o.FactBytes = DefaultFactBytes
	}
	if o.MaxSearchGroups <= 0 {
		o.MaxSearchGroups = DefaultMaxSearchGroups
	}
	if o.SearchTimeout <= 0 {
		o.SearchTimeout = DefaultSearchTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Resolver{src: src, o: o,
		facts: lru.New[v1.Hash, *manifestFacts](o.FactBytes*3/4, nil),
		cfgs:  lru.New[v1.Hash, *index.Config](o.FactBytes/4, nil),
		found: newFindMemo(), kept: newReady()}
}

// Grammar is the member tag grammar in use.
func (r *Resolver) Grammar() index.Grammar { return r.o.Grammar }

// Outcome is what a bare tag serves.
type Outcome int

const (
	// Upstream: pass through what the upstream holds under the tag (or its
	// own error): the tag has no members, the policy says so, the bare tag
	// is a real index, or a required platform is missing and the bare tag
	// exists upstream.
	Upstream Outcome = iota
	// Index: serve Group.Result, the synthesized index.
	Index
	// Incomplete: a required platform is missing (Group.Missing) and the
	// bare tag does not exist upstream: nothing to serve yet (404).
	Incomplete
	// Empty: every member is excluded (Group.Excluded): nothing to serve
	// (404).
	Empty
)

func (o Outcome) String() string {
	switch o {
	case Index:
		return "index"
	case Incomplete:
		return "incomplete"
	case Empty:
		return "empty"
	}
	return "upstream"
}

// Group is the answer for one bare tag.
type Group struct {
	Repo, Base string
	Rule       index.Rule
	Outcome    Outcome
	// Bare is what the bare tag holds upstream; BareDescriptor is set
	// unless it is absent.
	Bare           index.BareKind
	BareDescriptor *v1.Descriptor
	// Suffixes are the member tags found.
	Suffixes []index.Suffix
	// Action is what the policy chose before synthesis (ServeIndexWithBare:
	// the bare tag's image is a member).
	Action index.Action
	// Members are the resolved members (none when Action is ServeUpstream).
	Members []index.Member
	// Result is the synthesized index (Outcome Index; also Incomplete and
	// Upstream-for-a-missing-platform, where it is what would be served).
	Result *index.Result
	// Excluded are the members (or images) left out, with why.
	Excluded []index.Exclusion
	// Missing are the Rule's required platforms the index does not list.
	Missing []v1.Platform
}

// Resolve answers what repo:base serves under rule: it lists the tags,
// finds base's members, looks at the bare tag upstream, applies the policy,
// resolves and synthesizes, then applies the rule's required platforms —
// the whole decision, in this one place (see decide). The error is only
// for transient failures (network, 5xx, 429): a definitive answer about the
// repository (404 NAME_UNKNOWN, 403) is the Upstream outcome, so the
// client gets the upstream's own answer. A transient failure of any member
// fails the whole resolution: an index missing a platform would get
// another digest. Concurrent calls for one key share one resolution.
func (r *Resolver) Resolve(ctx context.Context, repo, base string, rule index.Rule) (*Group, error) {
	return r.shared(ctx, "tag", repo, base, rule, func(ctx context.Context) (*Group, error) {
		tags, err := r.src.Tags(ctx, repo)
		if err != nil {
			if upstream.IsDefinitive(err) {
				return &Group{Repo: repo, Base: base, Rule: rule}, nil
			}
			return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
		}
		bare := false
		for _, t := range tags {
			bare = bare || t == base
		}
		return r.resolve(ctx, repo, base, r.o.Grammar.Members(tags, base), bare, rule)
	})
}

// Members answers what base's members add up to as if the bare tag did not
// exist upstream: the index that migrate --force would write where the
// proxy passes a real index through.
func (r *Resolver) Members(ctx context.Context, repo, base string, rule index.Rule) (*Group, error) {
	return r.shared(ctx, "members", repo, base, rule, func(ctx context.Context) (*Group, error) {
		tags, err := r.src.Tags(ctx, repo)
		if err != nil {
			return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
		}
		rule.Policy = index.Override
		return r.resolve(ctx, repo, base, r.o.Grammar.Members(tags, base), false, rule)
	})
}

// shared runs one resolution per key for all concurrent callers
// (internal/flight): detached from any one caller (the first one hanging up
// must not fail the others), cancelled when every caller has gone.
//
// A resolution is kept and answered again while every cached answer it
// read is unchanged (ready.go).
func (r *Resolver) shared(ctx context.Context, kind, repo, base string, rule index.Rule, f func(context.Context) (*Group, error)) (*Group, error) {
	key := kind + "\x00" + repo + "\x00" + base + "\x00" + ruleKey(rule)
	if g, ok := r.ready(key, repo); ok {
		return g, nil
	}
	return r.sf.Do(ctx, key, func(ctx context.Context) (*Group, error) {
		var gen uint64
		if v, ok := r.src.(Versioned); ok {
			gen = v.Generation(repo)
		}
		ctx, fresh := withFreshness(ctx)
		g, err := f(ctx)
		if err == nil {
			r.keep(key, repo, g, gen, fresh)
		}
		return g, err
	})
}

func ruleKey(rule index.Rule) string {
	k := string(rule.Policy)
	for _, p := range rule.Require {
		k += "\x00" + platform.String(p)
	}
	return k
}

// resolve resolves base, whose member tags are suffixes; bare says whether
// the bare tag is among the repository's tags.
func (r *Resolver) resolve(ctx context.Context, repo, base string, suffixes []index.Suffix, bare bool, rule index.Rule) (*Group, error) {
	g := &Group{Repo: repo, Base: base, Rule: rule, Suffixes: suffixes}
	if len(suffixes) == 0 {
		return g, nil
	}
	if bare {
		d, err := r.headBare(ctx, repo, base, suffixes)
		switch {
		case err == nil:
			g.BareDescriptor = &d
			g.Bare = index.BareImage
			if d.MediaType.IsIndex() {
				g.Bare = index.BareIndex
			}
		case upstream.IsNotFound(err):
		default:
			return nil, fmt.Errorf("resolving %s:%s: %w", repo, base, err)
		}
	}
	g.Action = index.Decide(rule.Policy, g.Bare, len(suffixes))
	if g.Action == index.ServeUpstream {
		return g, nil
	}
	members, err := r.members(ctx, repo, g)
	if err != nil {
		return nil, err
	}
	g.Members = members
	res, err := index.Synthesize(base, members)
	r.Stats.Syntheses.Add(1)
	var empty *index.EmptyGroupError
	if err != nil && !errors.As(err, &empty) {
		return nil, err
	}
	r.decide(g, res, empty)
	r.report(g)
	if g.Outcome == Index && r.o.Store != nil {
		key := store.Key{Registry: r.o.Registry, Repository: repo, Digest: res.Digest}
		if err := r.o.Store.Put(ctx, key, store.Entry{MediaType: res.MediaType, Bytes: res.Bytes}); err != nil {
			r.Stats.StoreWriteErrors.Add(1)
			r.o.Logger.Warn("index store write failed", "key", key.String(), "error", err)
		}
	}
	return g, nil
}

// headBare HEADs the bare tag and, at the same time, every member tag: the
// policy decision needs the bare tag's answer, and the members' HEADs
// (cached, and no Docker Hub pulls) are what resolving them starts with,
// so the decision costs no round trip of its own.
func (r *Resolver) headBare(ctx context.Context, repo, base string, suffixes []index.Suffix) (v1.Descriptor, error) {
	var eg errgroup.Group
	eg.SetLimit(r.o.Concurrency)
	for _, s := range suffixes {
		eg.Go(func() error {
			_, _ = r.src.Head(ctx, repo, s.Tag) // errors are met again in member
			return nil
		})
	}
	d, err := r.src.Head(ctx, repo, base)
	_ = eg.Wait()
	return d, err
}

// decide sets the outcome of a synthesized group: nothing usable is Empty;
// a required platform missing keeps the bare tag's own answer when it has
// one (Upstream), else is Incomplete; otherwise the index is served.
func (r *Resolver) decide(g *Group, res *index.Result, empty *index.EmptyGroupError) {
	if empty != nil {
		g.Outcome, g.Excluded = Empty, empty.Excluded
		return
	}
	g.Result, g.Excluded = res, res.Excluded
	g.Missing = index.Missing(res, g.Rule.Require)
	switch {
	case len(g.Missing) == 0:
		g.Outcome = Index
	case g.BareDescriptor != nil:
		g.Outcome = Upstream
	default:
		g.Outcome = Incomplete
	}
}

// members resolves the members of g (and the bare tag's image when the
// policy merges it), at most Concurrency at once.
func (r *Resolver) members(ctx context.Context, repo string, g *Group) ([]index.Member, error) {
	n := len(g.Suffixes)
	if g.Action == index.ServeIndexWithBare {
		n++ // the bare tag's image, last
	}
	members := make([]index.Member, n)
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
		eg.Go(func() error {
			m, err := r.member(ectx, repo, index.Suffix{}, g.BareDescriptor)
			m.Tag = g.Base
			members[n-1] = m
			return err
		})
	}
	return members, eg.Wait()
}

// report logs and counts what synthesis left out.
func (r *Resolver) report(g *Group) {
	r.Stats.Excluded.Add(int64(len(g.Excluded)))
	for _, x := range g.Excluded {
		r.o.Logger.Warn("member excluded", "repo", g.Repo, "base", g.Base, "tag", x.Tag, "digest", x.Digest.String(), "reason", x.Reason)
	}
	if g.Result == nil {
		return
	}
	r.Stats.Duplicates.Add(int64(len(g.Result.Duplicates)))
	for _, d := range g.Result.Duplicates {
		r.o.Logger.Warn("duplicate member", "repo", g.Repo, "base", g.Base, "tag", d.Tag, "winner", d.Winner, "platform", platform.String(d.Platform))
	}
}

// FindIndex finds which of repo's bare tags serves the index dgst, for a
// replica asked for a digest it never served (containerd resolves a tag on
// one replica and GETs the digest on another). It resolves every group of
// the repository's current tags under rule — what serving each of its bare
// tags would cost, no more: the tags are grouped once, in one pass — and
// every index found goes to the Store. A tag list already searched answers
// from memory: a digest none of its groups gives is not found at once (a
// negative answer), and one that a group gave is resolved again from that
// group alone, so an index evicted from the store is never hidden. Nil
// without an error means no bare tag serves dgst.
//
// The bound: one search per repository and tag list (shared by concurrent
// requests, remembered for 10 minutes), costing what serving each of its
// bare tags once would — a tag list, and per member a HEAD and, for digests
// not seen before, a manifest and a config read — over at most
// MaxSearchGroups bare tags (ErrSearchTooLarge beyond) and SearchTimeout.
func (r *Resolver) FindIndex(ctx context.Context, repo string, rule index.Rule, dgst v1.Hash) (*index.Result, error) {
	tags, err := r.src.Tags(ctx, repo)
	if err != nil {
		if upstream.IsDefinitive(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing tags of %s: %w", repo, err)
	}
	fp := fingerprint(tags, rule)
	search, ok := r.found.get(repo, fp)
	if !ok {
		search, err = r.finds.Do(ctx, repo+"\x00"+fp, func(ctx context.Context) (map[v1.Hash]string, error) {
			return r.searchAll(ctx, repo, tags, rule, fp)
		})
		if err != nil {
			return nil, err
		}
	}
	base, ok := search[dgst]
	if !ok {
		return nil, nil
	}
	g, err := r.Resolve(ctx, repo, base, rule)
	if err != nil || g.Outcome != Index || g.Result.Digest != dgst {
		return nil, err
	}
	return g.Result, nil
}

// searchAll resolves every group of tags and remembers which base gave
// which served digest.
func (r *Resolver) searchAll(ctx context.Context, repo string, tags []string, rule index.Rule, fp string) (map[v1.Hash]string, error) {
	groups := r.o.Grammar.Group(tags)
	if len(groups) > r.o.MaxSearchGroups {
		// Remembered like a search that found nothing: the next miss of
		// this tag list costs nothing.
		r.found.add(repo, fp, map[v1.Hash]string{})
		return nil, fmt.Errorf("finding an index in %s: %w (%d, the bound is %d)", repo, ErrSearchTooLarge, len(groups), r.o.MaxSearchGroups)
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.SearchTimeout)
	defer cancel()
	present := make(map[string]bool, len(tags))
	for _, t := range tags {
		present[t] = true
	}
	bases := make([]string, 0, len(groups))
	for b := range groups {
		bases = append(bases, b)
	}
	sort.Strings(bases)
	found := map[v1.Hash]string{}
	for _, b := range bases {
		g, err := r.shared(ctx, "tag", repo, b, rule, func(ctx context.Context) (*Group, error) {
			return r.resolve(ctx, repo, b, groups[b], present[b], rule)
		})
		if err != nil {
			return nil, err
		}
		if g.Outcome == Index {
			found[g.Result.Digest] = b
		}
	}
	r.found.add(repo, fp, found)
	return found, nil
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
		d, err = r.resolveTag(ctx, repo, s.Tag)
		if errors.Is(err, upstream.ErrTooLarge) {
			m.Problem = fmt.Sprintf("manifest is over the %d-byte limit", r.o.MaxManifestBytes)
			return m, nil
		}
		if err != nil {
			if upstream.IsDefinitive(err) {
				m.Problem = "tag cannot be resolved: " + upstream.Redact(err.Error())
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

// resolveTag resolves a member tag to its descriptor. A tag whose last
// known digest has its facts cached is asked with a HEAD (cheap, and not a
// Docker Hub pull); a tag never seen, or whose digest is new to the
// resolver, is read with one GET by tag — the manifest has to be read
// anyway, so this spares the HEAD's round trip and costs the same one pull
// as HEAD + GET by digest.
func (r *Resolver) resolveTag(ctx context.Context, repo, tag string) (v1.Descriptor, error) {
	tg, ok := r.src.(TagGetter)
	if !ok {
		return r.src.Head(ctx, repo, tag)
	}
	if last, seen := tg.LastHead(repo, tag); seen && r.facts.Contains(last.Digest) {
		return r.src.Head(ctx, repo, tag)
	}
	d, b, err := tg.GetTag(ctx, repo, tag, r.o.MaxManifestBytes)
	if err != nil {
		return d, err
	}
	if !r.facts.Contains(d.Digest) {
		r.parseManifest(d.Digest, b, d.MediaType)
	}
	return d, nil
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
		if upstream.IsDefinitive(err) {
			img.Problem = fmt.Sprintf("config %s cannot be read: %s", f.config.Digest, upstream.Redact(err.Error()))
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
		if upstream.IsDefinitive(err) {
			return nil, fmt.Sprintf("manifest %s cannot be read: %s", d.Digest, upstream.Redact(err.Error())), nil
		}
		return nil, "", fmt.Errorf("reading manifest %s of %s: %w", d.Digest, repo, err)
	}
	f, problem := r.parseManifest(d.Digest, b, mt)
	return f, problem, nil
}

// parseManifest reads the facts of manifest dgst and keeps them.
func (r *Resolver) parseManifest(dgst v1.Hash, b []byte, mt types.MediaType) (*manifestFacts, string) {
	d := v1.Descriptor{Digest: dgst}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Sprintf("malformed manifest %s: %v", d.Digest, err)
	}
	if mt == "" || mt == "application/json" || mt == "text/plain" {
		mt = probe.MediaType
	}
	f := &manifestFacts{mediaType: mt}
	switch {
	case mt.IsIndex() || (mt == "" && probe.Manifests != nil):
		idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Sprintf("malformed index %s: %v", d.Digest, err)
		}
		f.index = idx
	case mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed:
		return nil, "schema1 manifests cannot be listed in an index"
	default:
		m, err := v1.ParseManifest(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Sprintf("malformed manifest %s: %v", d.Digest, err)
		}
		if m.Config.Digest.Hex == "" {
			return nil, fmt.Sprintf("manifest %s has no config", d.Digest)
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
	return f, ""
}

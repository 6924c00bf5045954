package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/upstream"
)

// DefaultConcurrency bounds the bases inspected or migrated at once.
const DefaultConcurrency = 4

// Options configure a Migrator. Policies, Grammar and MaxManifestBytes must
// be the proxy's (cmd/proxy reads them from its configuration file): they
// decide which members are listed, and so the digest.
type Options struct {
	// Client talks to the registry that holds the repository. Required.
	Client *upstream.Client
	// Repository is the repository path on that registry, e.g. "team/app".
	// Required.
	Repository string
	// PolicyName is the name matched against Policies: the repository as
	// the proxy's clients name it. Default: Repository.
	PolicyName string
	// Policies for bare tags. Default: merge everywhere (the proxy's
	// default).
	Policies index.Rules
	// Grammar of member tags. Default: canonical suffixes only.
	Grammar index.Grammar
	// MaxManifestBytes caps member manifests and configs, as the proxy
	// does. Default resolve.DefaultMaxManifestBytes.
	MaxManifestBytes int64
	// MemberConcurrency bounds the members of one base resolved at once.
	// Default resolve.DefaultConcurrency.
	MemberConcurrency int
	// Concurrency bounds the bases inspected or migrated at once. Default
	// DefaultConcurrency.
	Concurrency int
	// Expect lists platforms every base should have; the missing ones are
	// reported as problems. Default: none.
	Expect []v1.Platform
	// Progress, when set, is called after each base of a phase; calls are
	// serialized. Default: none.
	Progress func(Progress)
	// Logger receives exclusions and each write. Default: silent.
	Logger *slog.Logger
	// Live, when set, inspects through a running proxy's own cache and
	// resolver (the status page, package ui): the answers are the proxy's,
	// as it has them cached, and Inspect takes no snapshot of its own.
	// Default: a snapshot per Inspect, as the commands take.
	Live *Live
}

// Live is a running proxy's view of one upstream.
type Live struct {
	Cache    *resolve.Cache
	Resolver *resolve.Resolver
}

// Progress reports how far a phase is.
type Progress struct {
	// Phase is "inspect" or "migrate".
	Phase string
	// Done of Total bases; Base is the one just finished.
	Done, Total int
	Base        string
}

// Migrator inspects and migrates one repository. It reads the registry
// through the same resolver the proxy uses, with a cache that keeps every
// answer for the whole run, so a report is one consistent snapshot.
type Migrator struct {
	o     Options
	name  string // registry/repository, for messages
	cache *resolve.Cache
	res   *resolve.Resolver

	progMu sync.Mutex
}

// New makes a Migrator. It does not contact the registry.
func New(o Options) (*Migrator, error) {
	if o.Client == nil {
		return nil, errors.New("migrate: no registry client")
	}
	if o.Repository == "" {
		return nil, errors.New("migrate: no repository")
	}
	if _, err := o.Client.Repository(o.Repository); err != nil {
		return nil, fmt.Errorf("migrate: repository %q: %w", o.Repository, err)
	}
	if err := o.Policies.Validate(); err != nil {
		return nil, fmt.Errorf("migrate: policies: %w", err)
	}
	if o.PolicyName == "" {
		o.PolicyName = o.Repository
	}
	if o.MaxManifestBytes <= 0 {
		o.MaxManifestBytes = resolve.DefaultMaxManifestBytes
	}
	if o.MemberConcurrency <= 0 {
		o.MemberConcurrency = resolve.DefaultConcurrency
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	expect := make([]v1.Platform, len(o.Expect))
	for i, p := range o.Expect {
		expect[i] = platform.Base(p)
	}
	o.Expect = expect
	// One snapshot per run: tag answers are kept for the run's length.
	// Writes, read-backs and prune checks bypass the cache.
	if o.Live != nil {
		return &Migrator{o: o, name: o.Client.Host() + "/" + o.Repository, cache: o.Live.Cache, res: o.Live.Resolver}, nil
	}
	cache := resolve.NewCache(o.Client, resolve.CacheOptions{TTL: 24 * time.Hour, Entries: 1 << 20})
	res := resolve.New(cache, resolve.Options{
		Grammar:          o.Grammar,
		MaxManifestBytes: o.MaxManifestBytes,
		Concurrency:      o.MemberConcurrency,
		Logger:           o.Logger,
	})
	return &Migrator{o: o, name: o.Client.Host() + "/" + o.Repository, cache: cache, res: res}, nil
}

// Name is the repository as registry/path.
func (m *Migrator) Name() string { return m.name }

// Inspect resolves bases (every base of the repository when none is named)
// and reports what the proxy serves for each and what a migration would do.
// A named base must have member tags or exist as a tag.
func (m *Migrator) Inspect(ctx context.Context, bases ...string) (*Plan, error) {
	var tags []string
	var err error
	if m.o.Live != nil {
		tags, err = m.cache.Tags(ctx, m.o.Repository)
	} else {
		// A fresh snapshot of the tags; what is known by digest is kept.
		m.cache.Invalidate(m.o.Repository)
		tags, err = m.o.Client.Tags(ctx, m.o.Repository)
	}
	if upstream.IsNotFound(err) {
		return nil, fmt.Errorf("%s: repository not found", m.name)
	}
	if err != nil {
		return nil, m.registryError("listing tags of", err)
	}
	groups := m.o.Grammar.Group(tags)
	var list []string
	if len(bases) == 0 {
		list = make([]string, 0, len(groups))
		for b := range groups {
			list = append(list, b)
		}
	} else {
		for _, b := range bases {
			if !index.ValidTag(b) {
				return nil, fmt.Errorf("%q is not a valid tag", b)
			}
			if _, ok := groups[b]; !ok && !slices.Contains(tags, b) {
				return nil, fmt.Errorf("%s has no tag %q and no per-platform tags for it", m.name, b)
			}
			list = append(list, b)
		}
	}
	sort.Strings(list)
	list = slices.Compact(list)

	rule := m.o.Policies.Match(m.o.PolicyName)
	out := make([]*BasePlan, len(list))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(m.o.Concurrency)
	done := 0
	for i, b := range list {
		eg.Go(func() error {
			g, err := m.inspectBase(ectx, tags, b, rule)
			if err != nil {
				return m.registryError("resolving "+b+" of", err)
			}
			out[i] = g
			m.step("inspect", &done, len(list), b)
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	r := &Plan{Repository: m.name, Policy: string(rule.Policy), Groups: make([]BasePlan, len(out)), Platforms: []string{}}
	for _, p := range rule.Require {
		r.Require = append(r.Require, platform.String(platform.Normalize(p)))
	}
	for i, g := range out {
		r.Groups[i] = *g
	}
	for _, p := range m.o.Expect {
		r.Expect = append(r.Expect, platform.String(p))
	}
	r.Platforms = columns(r)
	return r, nil
}

func (m *Migrator) step(phase string, done *int, total int, base string) {
	m.progMu.Lock()
	defer m.progMu.Unlock()
	*done++
	if m.o.Progress != nil {
		m.o.Progress(Progress{Phase: phase, Done: *done, Total: total, Base: base})
	}
}

// view is one resolution of a base, as the report needs it.
type view struct {
	suffixes   []index.Suffix
	bare       index.BareKind
	bareDesc   *v1.Descriptor
	action     index.Action
	members    []index.Member
	result     *index.Result
	excluded   []index.Exclusion
	duplicates []index.Duplicate
	missing    []v1.Platform
}

// view resolves base as the proxy does under rule, or, with asIfAbsent, as
// it would if the bare tag did not exist upstream.
func (m *Migrator) view(ctx context.Context, tags []string, base string, rule index.Rule, asIfAbsent bool) (*view, error) {
	resolveBase := m.res.Resolve
	if asIfAbsent {
		resolveBase = m.res.Members
	}
	g, err := resolveBase(ctx, m.o.Repository, base, rule)
	if err != nil {
		return nil, err
	}
	v := &view{suffixes: g.Suffixes, bare: g.Bare, bareDesc: g.BareDescriptor, action: g.Action,
		members: g.Members, result: g.Result, excluded: g.Excluded, missing: g.Missing}
	if g.Result != nil {
		v.duplicates = g.Result.Duplicates
	}
	if len(g.Suffixes) == 0 && !asIfAbsent {
		// The resolver does not look at a bare tag without members.
		if err := m.bare(ctx, tags, base, v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// bare fills in what the bare tag holds.
func (m *Migrator) bare(ctx context.Context, tags []string, base string, v *view) error {
	if !slices.Contains(tags, base) {
		return nil
	}
	d, err := m.cache.Head(ctx, m.o.Repository, base)
	switch {
	case err == nil:
		v.bareDesc = &d
		v.bare = index.BareImage
		if d.MediaType.IsIndex() {
			v.bare = index.BareIndex
		}
	case !upstream.IsNotFound(err):
		return err
	}
	return nil
}

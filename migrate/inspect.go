package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/upstream"
)

// inspectBase resolves base as the proxy does under policy and, when the
// proxy passes the bare tag through, as it would if the bare tag were
// absent: that is what the members add up to, what inspect shows and what
// --force writes.
func (m *Migrator) inspectBase(ctx context.Context, tags []string, base string, rule index.Rule) (*BasePlan, error) {
	policy := rule.Policy
	v, err := m.view(ctx, tags, base, rule, false)
	if err != nil {
		return nil, err
	}
	// shown is the resolution whose members the report lists.
	shown := v
	var absent *view
	if v.action == index.ServeUpstream && len(v.suffixes) > 0 {
		if absent, err = m.view(ctx, tags, base, rule, true); err != nil {
			return nil, err
		}
		shown = absent
	}
	g := &BasePlan{Base: base, Bare: v.bare.String(), Policy: string(policy)}
	if v.bareDesc != nil {
		g.BareDigest = v.bareDesc.Digest.String()
	}
	if err := m.describeMembers(ctx, g, shown, v); err != nil {
		return nil, err
	}

	// Partial sets: the proxy holds an index back until the platforms the
	// policy requires are all listed.
	if len(rule.Require) > 0 {
		missing := shown.missing
		if shown.result == nil && len(shown.suffixes) > 0 {
			missing = rule.Require
		}
		for _, p := range missing {
			g.Incomplete = append(g.Incomplete, platform.String(platform.Normalize(p)))
		}
		if len(g.Incomplete) > 0 {
			g.Problems = append(g.Problems, "incomplete: required "+strings.Join(g.Incomplete, ", ")+" not pushed yet, so the proxy synthesizes no index")
		}
	}
	complete := len(g.Incomplete) == 0

	// What the proxy serves.
	switch {
	case v.action != index.ServeUpstream && v.result != nil && complete:
		g.Serves = ServesIndex
		g.Index = &ServedIndex{MediaType: string(v.result.MediaType), Digest: v.result.Digest.String(), Size: int64(len(v.result.Bytes)), Synthesized: true}
	case v.action != index.ServeUpstream && v.result == nil, v.bare == index.BareAbsent:
		g.Serves = ServesNothing
	case v.bare == index.BareIndex:
		g.Serves = ServesUpstream
		g.Index = &ServedIndex{MediaType: string(v.bareDesc.MediaType), Digest: v.bareDesc.Digest.String(), Size: v.bareDesc.Size}
	default:
		g.Serves = ServesUpstream
	}

	if err := m.plan(ctx, g, v, absent, policy, complete); err != nil {
		return nil, err
	}

	// The state of the bare tag.
	switch {
	case v.bare == index.BareAbsent:
		g.State = StateAbsent
	case v.bare == index.BareImage && g.Serves == ServesIndex:
		g.State = StateWouldChange
	case v.bare == index.BareImage:
		g.State = StateSinglePlatform
	case g.Migrate.Action == Conflict:
		g.State = StateWouldChange
	default:
		g.State = StateRealIndex
	}
	if shown.result == nil && len(shown.suffixes) > 0 {
		g.Problems = append(g.Problems, "no usable member")
	}
	return g, nil
}

// describeMembers fills Members, Missing and Problems from the resolution
// shown (the bare tag's own image appears when v merges it).
func (m *Migrator) describeMembers(ctx context.Context, g *BasePlan, shown, v *view) error {
	g.digests = map[string]v1.Hash{}
	g.memberIndex = map[string]bool{}
	g.why = map[string]string{}
	listed := map[string]bool{}
	var entries []index.Entry
	if shown.result != nil {
		entries = shown.result.Entries
	}
	for _, e := range entries {
		listed[e.Tag] = true
	}
	byTag := map[string]*index.Member{}
	for i := range shown.members {
		byTag[shown.members[i].Tag] = &shown.members[i]
	}
	reasons := map[string][]string{}
	for _, x := range shown.excluded {
		reasons[x.Tag] = append(reasons[x.Tag], x.Reason)
	}
	for _, d := range shown.duplicates {
		reasons[d.Tag] = append(reasons[d.Tag], d.Reason())
	}
	row := func(tag string, d v1.Descriptor, platform string, bare bool) MemberRow {
		r := MemberRow{Tag: tag, Platform: platform, Bare: bare}
		if d.Digest.Hex != "" {
			r.Digest, r.MediaType = d.Digest.String(), string(d.MediaType)
			g.digests[tag] = d.Digest
		}
		r.Included = listed[tag]
		switch {
		case !r.Included && len(reasons[tag]) > 0:
			r.Problem = strings.Join(reasons[tag], "; ")
		case !r.Included:
			r.Problem = "not listed"
		case len(reasons[tag]) > 0:
			r.Note = "partly left out: " + strings.Join(reasons[tag], "; ")
		}
		if d.MediaType.IsIndex() && !bare {
			g.memberIndex[tag] = true
			note := "index, flattened"
			if mm := byTag[tag]; mm != nil {
				note = fmt.Sprintf("index, flattened to %s and %s", plural(len(mm.Images), "image"), plural(len(mm.Attestations), "attestation"))
			}
			r.Note = strings.TrimPrefix(r.Note+"; "+note, "; ")
			g.Problems = append(g.Problems, fmt.Sprintf("%s is an %s", tag, note))
		}
		if !r.Included {
			g.why[tag] = r.Problem
			g.Problems = append(g.Problems, fmt.Sprintf("%s left out: %s", tag, r.Problem))
		}
		return r
	}
	if v.action == index.ServeIndexWithBare && v.bareDesc != nil {
		g.Members = append(g.Members, row(g.Base, *v.bareDesc, barePlatform(g.Base, entries, byTag[g.Base]), true))
	}
	for _, s := range shown.suffixes {
		g.suffixTags = append(g.suffixTags, s.Tag)
		d, err := m.cache.Head(ctx, m.o.Repository, s.Tag)
		if err != nil && !upstream.IsDefinitive(err) {
			return err
		}
		g.Members = append(g.Members, row(s.Tag, d, platform.String(s.Platform), false))
	}
	if g.Members == nil {
		g.Members = []MemberRow{}
	}
	m.expected(g, entries)
	return nil
}

// expected fills Missing: the --expect platforms no listed image has.
func (m *Migrator) expected(g *BasePlan, entries []index.Entry) {
	have := map[string]bool{}
	for _, e := range entries {
		if p := e.Descriptor.Platform; p != nil {
			have[platform.String(platform.Base(*p))] = true
		}
	}
	for _, p := range m.o.Expect {
		if s := platform.String(p); !have[s] {
			g.Missing = append(g.Missing, s)
			g.Problems = append(g.Problems, "missing "+s)
		}
	}
}

// barePlatform is the platform the bare tag's image is listed with, else
// its config's.
func barePlatform(base string, entries []index.Entry, mm *index.Member) string {
	for _, e := range entries {
		if e.Tag == base && e.Descriptor.Platform != nil && e.Descriptor.Platform.OS != "unknown" {
			p := e.Descriptor.Platform
			return platform.String(platform.Base(*p))
		}
	}
	if mm != nil && len(mm.Images) > 0 && mm.Images[0].Config != nil {
		c := mm.Images[0].Config
		return platform.String(platform.Base(v1.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}))
	}
	return ""
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
}

// plan decides what migrate does with the base. v is the resolution under
// the repository's policy; absent, when the proxy passes the bare tag
// through, is the resolution as if the bare tag did not exist.
func (m *Migrator) plan(ctx context.Context, g *BasePlan, v, absent *view, policy index.Policy, complete bool) error {
	p := &g.Migrate
	switch {
	case len(v.suffixes) == 0:
		p.Action, p.Reason = Skip, "no per-platform tags"
	case policy == index.Off:
		p.Action, p.Reason = Skip, "proxy serves upstream's tag (policy off)"
	case v.action != index.ServeUpstream && v.result == nil:
		p.Action, p.Reason = Skip, "no usable member: the proxy serves nothing"
	case v.action != index.ServeUpstream && !complete && v.bare == index.BareImage:
		p.Action, p.Reason = Skip, "incomplete (policy require): the proxy serves upstream's tag"
	case v.action != index.ServeUpstream && !complete:
		p.Action, p.Reason = Skip, "incomplete (policy require): the proxy serves nothing"
	case v.action != index.ServeUpstream:
		g.planned = fromResult(v.result)
		p.Action = Create
		if v.bare == index.BareImage {
			p.Action = Update
			old := v.bareDesc.Digest
			if g.planned.refs[old] {
				p.Notes = append(p.Notes, fmt.Sprintf("the former bare image %s is listed in the index (merge)", old))
			} else {
				p.Notes = append(p.Notes, fmt.Sprintf("the former bare image %s is no longer tagged afterwards: it stays readable by digest until the registry collects untagged manifests", old))
			}
		}
	case v.bare == index.BareImage:
		p.Action, p.Reason = Skip, fmt.Sprintf("proxy serves upstream's tag (policy %s, the bare tag is an image)", policy)
	case absent == nil || absent.result == nil:
		p.Action, p.Reason = Skip, "proxy serves upstream's tag (a real index; no usable member)"
	default:
		// A real index under the bare tag: the proxy passes it through.
		s := absent.result
		if v.bareDesc.Digest == s.Digest {
			g.planned = fromResult(s)
			p.Action, p.Reason = Unchanged, "the bare tag holds this index"
			break
		}
		existing, mt, err := m.o.Client.Manifest(ctx, m.o.Repository, v.bareDesc.Digest, m.o.MaxManifestBytes)
		if err != nil && !upstream.IsDefinitive(err) {
			return err
		}
		if err == nil {
			if t, n := holdsMembers(g.Base, existing, mt, absent.members); t != nil {
				g.planned = t
				p.Action = Unchanged
				p.Reason = fmt.Sprintf("the bare tag holds this index; it also lists %s no member tag points at (a former bare image, pruned members)", plural(n, "image"))
				break
			}
		}
		if !complete {
			p.Action, p.Reason = Skip, fmt.Sprintf("proxy serves upstream's tag: the bare tag holds another index, %s, and the members are incomplete (policy require)", v.bareDesc.Digest)
			break
		}
		g.forced = fromResult(s)
		p.Action = Conflict
		p.Reason = fmt.Sprintf("the bare tag holds another index, %s (the proxy passes it through)", v.bareDesc.Digest)
		if err == nil {
			if d := diff(existing, s); d != "" {
				p.Reason += ": " + d
			}
			if dropped := dropped(existing, g.forced); len(dropped) > 0 {
				p.Notes = append(p.Notes, "--force drops from the bare tag's index "+strings.Join(dropped, ", ")+": readable by digest until the registry collects unreferenced manifests")
			}
		}
		p.Reason += "; --force replaces it"
	}
	t := g.planned
	if t == nil {
		t = g.forced
	}
	if t != nil {
		p.Digest, p.MediaType = t.digest.String(), string(t.mediaType)
		p.Prune, p.Keep = g.pruneSet(t)
	}
	return nil
}

// pruneSet splits the member tags into those --prune-suffixed untags (the
// index lists their manifest, so nothing becomes unreachable) and those it
// keeps, with why.
func (g *BasePlan) pruneSet(t *target) (prune, keep []string) {
	for _, tag := range g.suffixTags {
		d, ok := g.digests[tag]
		switch {
		case ok && t.refs[d]:
			prune = append(prune, tag)
		case g.memberIndex[tag]:
			keep = append(keep, tag+": a member index; its own manifest is not in the index")
		case g.why[tag] != "":
			keep = append(keep, tag+": not in the index ("+g.why[tag]+")")
		default:
			keep = append(keep, tag+": not in the index")
		}
	}
	return prune, keep
}

func fromResult(r *index.Result) *target {
	t := &target{bytes: r.Bytes, mediaType: r.MediaType, digest: r.Digest, refs: map[v1.Hash]bool{}}
	for _, e := range r.Entries {
		t.refs[e.Descriptor.Digest] = true
	}
	return t
}

func fromBytes(b []byte, mt types.MediaType) (*target, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if mt == "" {
		mt = idx.MediaType
	}
	t := &target{bytes: b, mediaType: mt, digest: sha256Hash(b), refs: map[v1.Hash]bool{}}
	for _, d := range idx.Manifests {
		t.refs[d.Digest] = true
	}
	return t, nil
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// holdsMembers reports whether existing is exactly the index the proxy
// synthesizes from the current members plus images existing already lists
// that no member tag points at any more: the former bare image a merge
// listed, members pruned after a previous migration. Such an index is what
// an earlier migrate wrote, and still agrees with every member. The
// untagged images' platforms are taken from their entries (written from
// their configs). It returns the index and how many such images it lists.
func holdsMembers(base string, existing []byte, mt types.MediaType, members []index.Member) (*target, int) {
	if members == nil {
		return nil, 0
	}
	t, err := fromBytes(existing, mt)
	if err != nil {
		return nil, 0
	}
	idx, _ := v1.ParseIndexManifest(bytes.NewReader(existing))
	listed := map[v1.Hash]bool{}
	for _, mm := range members {
		for _, img := range mm.Images {
			listed[img.Descriptor.Digest] = true
		}
		for _, a := range mm.Attestations {
			listed[a.Digest] = true
		}
	}
	all := slices.Clip(members)
	extra := map[v1.Hash]int{} // image digest → index in all
	for _, d := range idx.Manifests {
		if listed[d.Digest] || d.Platform == nil || !d.MediaType.IsImage() || d.Annotations[index.AnnotationReferenceType] != "" {
			continue
		}
		cfg := types.OCIConfigJSON
		if d.MediaType == types.DockerManifestSchema2 {
			cfg = types.DockerConfigJSON
		}
		p := d.Platform
		extra[d.Digest] = len(all)
		all = append(all, index.Member{Tag: base, Images: []index.Image{{
			Descriptor: v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Annotations: d.Annotations},
			Config:     &index.Config{MediaType: cfg, OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures},
		}}})
	}
	if len(extra) == 0 {
		return nil, 0
	}
	// Attestations of untagged images go with them.
	for _, d := range idx.Manifests {
		if listed[d.Digest] || d.Annotations[index.AnnotationReferenceType] != "attestation-manifest" {
			continue
		}
		ref, err := v1.NewHash(d.Annotations[index.AnnotationReferenceDigest])
		i, ok := extra[ref]
		if err != nil || !ok {
			return nil, 0
		}
		all[i].Attestations = append(all[i].Attestations, v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Annotations: d.Annotations})
	}
	res, err := index.Synthesize(base, all)
	if err != nil || !bytes.Equal(res.Bytes, existing) {
		return nil, 0
	}
	return t, len(extra)
}

// dropped lists the images (digest and platform) existing lists that t
// does not.
func dropped(existing []byte, t *target) []string {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(existing))
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range idx.Manifests {
		if t.refs[d.Digest] || d.Annotations[index.AnnotationReferenceType] == "attestation-manifest" {
			continue
		}
		s := d.Digest.String()
		if d.Platform != nil {
			s += " (" + platform.String(platform.Normalize(*d.Platform)) + ")"
		}
		out = append(out, s)
	}
	return out
}

// diff says how an existing index differs from the synthesized one, by
// platform.
func diff(existing []byte, s *index.Result) string {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(existing))
	if err != nil {
		return ""
	}
	platforms := func(descs []v1.Descriptor) map[string]v1.Hash {
		out := map[string]v1.Hash{}
		for _, d := range descs {
			if d.Platform == nil || d.Platform.OS == "unknown" {
				continue
			}
			out[platform.String(platform.Normalize(*d.Platform))] = d.Digest
		}
		return out
	}
	synth := make([]v1.Descriptor, len(s.Entries))
	for i, e := range s.Entries {
		synth[i] = e.Descriptor
	}
	have, want := platforms(idx.Manifests), platforms(synth)
	var onlyHave, onlyWant, differ []string
	for p, d := range have {
		switch w, ok := want[p]; {
		case !ok:
			onlyHave = append(onlyHave, p)
		case w != d:
			differ = append(differ, p)
		}
	}
	for p := range want {
		if _, ok := have[p]; !ok {
			onlyWant = append(onlyWant, p)
		}
	}
	var parts []string
	add := func(label string, ps []string) {
		if len(ps) > 0 {
			sort.Strings(ps)
			parts = append(parts, label+" "+strings.Join(ps, ", "))
		}
	}
	add("only the registry's index has", onlyHave)
	add("only the members have", onlyWant)
	add("other images for", differ)
	if len(parts) == 0 {
		return "same images, other bytes"
	}
	return strings.Join(parts, "; ")
}

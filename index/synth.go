package index

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/platform"
)

// Config holds the facts of an image config that synthesis reads. They are
// immutable per config digest, so callers may cache them forever.
type Config struct {
	// MediaType is the config descriptor's media type.
	MediaType    types.MediaType
	OS           string
	Architecture string
	Variant      string
	OSVersion    string
	OSFeatures   []string
}

// ParseConfig reads the platform facts out of an image config blob.
func ParseConfig(mediaType types.MediaType, b []byte) (*Config, error) {
	var cf struct {
		OS           string   `json:"os"`
		Architecture string   `json:"architecture"`
		Variant      string   `json:"variant"`
		OSVersion    string   `json:"os.version"`
		OSFeatures   []string `json:"os.features"`
	}
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, fmt.Errorf("malformed image config: %w", err)
	}
	if cf.OS == "" || cf.Architecture == "" {
		return nil, fmt.Errorf("image config has no os/architecture")
	}
	return &Config{
		MediaType: mediaType, OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant,
		OSVersion: cf.OSVersion, OSFeatures: cf.OSFeatures,
	}, nil
}

// Image is one image manifest of a member, with its config facts.
type Image struct {
	// Descriptor of the image manifest: media type, digest, size; when the
	// image was taken from a member index, also that entry's platform and
	// annotations.
	Descriptor v1.Descriptor
	// Config is nil when it could not be read; Problem then says why.
	Config  *Config
	Problem string
}

// Member is one tag of a group, resolved.
type Member struct {
	// Tag is the upstream tag.
	Tag string
	// Suffix is the parsed tag; the zero Suffix marks the bare tag itself
	// (merge policy), whose platform comes from its config alone.
	Suffix Suffix
	// Images are the image manifests the member contributes: one for a
	// plain image, the matching entries for a member index (see Flatten).
	Images []Image
	// Attestations are the attestation manifests of a member index that
	// reference one of Images.
	Attestations []v1.Descriptor
	// Problem, when set, excludes the whole member (unreachable, too large,
	// not an image...).
	Problem string
}

// Bare reports whether m is the bare tag itself.
func (m Member) Bare() bool { return m.Suffix.Tag == "" }

// Entry is one manifest of a synthesized index and the tag it came from.
type Entry struct {
	Tag        string
	Descriptor v1.Descriptor
}

// Exclusion is a member (or one image of it) left out, and why.
type Exclusion struct {
	Tag    string
	Digest v1.Hash
	Reason string
}

func (e Exclusion) String() string { return e.Tag + ": " + e.Reason }

// Result is a synthesized index.
type Result struct {
	Base      string
	MediaType types.MediaType
	// Bytes are the exact bytes to serve and hash.
	Bytes  []byte
	Digest v1.Hash
	// Entries in index order.
	Entries  []Entry
	Excluded []Exclusion
	// Duplicates are the candidates the duplicate rule dropped, in tag
	// order.
	Duplicates []Duplicate
}

// Duplicate is a member (or one image of it) dropped because another tag
// gives the same platform.
type Duplicate struct {
	// Tag is the loser, Winner the tag whose image is listed.
	Tag, Winner string
	Digest      v1.Hash
	Platform    v1.Platform
}

// Reason says why the duplicate is not listed, without its tag.
func (d Duplicate) Reason() string {
	return fmt.Sprintf("duplicate platform %s, %s wins", platform.String(d.Platform), d.Winner)
}

func (d Duplicate) String() string { return d.Tag + ": " + d.Reason() }

// Descriptor of the synthesized index itself.
func (r *Result) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: int64(len(r.Bytes))}
}

// EmptyGroupError is returned when every member of a group is excluded:
// there is nothing to serve.
type EmptyGroupError struct {
	Base     string
	Excluded []Exclusion
}

func (e *EmptyGroupError) Error() string {
	var parts []string
	for _, x := range e.Excluded {
		parts = append(parts, x.String())
	}
	return fmt.Sprintf("no usable member for %q: %s", e.Base, strings.Join(parts, "; "))
}

// Attestation annotations written by BuildKit.
const (
	AnnotationReferenceType   = "vnd.docker.reference.type"
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
)

// Flatten picks, from a member that is itself an index, the image entries
// for the member's tag s — same os and arch; same variant when the tag
// writes one (`-linux-arm-v6`), any variant when it does not (`-linux-arm`,
// `-linux-arm64`: as for a plain image, the config says which) — and the
// attestation manifests that reference them. Several images may match when
// they differ in os.version (Windows) or variant. Nested indexes are never
// kept.
func Flatten(idx *v1.IndexManifest, s Suffix) (images, attestations []v1.Descriptor) {
	want := s.Platform
	picked := map[v1.Hash]bool{}
	for _, d := range idx.Manifests {
		if d.Platform == nil || !d.MediaType.IsImage() || isAttestation(d) {
			continue
		}
		p := *d.Platform
		p.Architecture, p.Variant = platform.NormalizeArch(p.Architecture, p.Variant)
		if p.OS != want.OS || p.Architecture != want.Architecture {
			continue
		}
		if s.Variant != "" && p.Variant != "" && platform.NormalizeVariant(p.Architecture, p.Variant) != want.Variant {
			continue
		}
		images = append(images, d)
		picked[d.Digest] = true
	}
	for _, d := range idx.Manifests {
		if isAttestation(d) && picked[mustHash(d.Annotations[AnnotationReferenceDigest])] {
			attestations = append(attestations, d)
		}
	}
	return images, attestations
}

func isAttestation(d v1.Descriptor) bool {
	return d.Annotations[AnnotationReferenceType] == "attestation-manifest"
}

func mustHash(s string) v1.Hash {
	h, err := v1.NewHash(s)
	if err != nil {
		return v1.Hash{}
	}
	return h
}

// candidate is one image that may become an entry.
type candidate struct {
	member *Member
	desc   v1.Descriptor // final, with platform
	atts   []v1.Descriptor
}

// Synthesize builds the index for base from its resolved members. It is a
// pure function of its input's content: the order of members, of images and
// of the tags' spelling beyond the duplicate rule do not change the bytes.
//
// Rules (DESIGN §3): an image's os/arch come from its config and must match
// the tag; the variant comes from the config, else from the tag, and a
// config variant that contradicts the tag's excludes the image;
// os.version/os.features come from the config. Duplicates (same os, arch,
// variant, os.version, os.features) keep the canonical, shortest suffix,
// then the lexically first tag; the bare tag (merge policy) loses to any
// suffixed tag. Entries are sorted by (os, arch, variant, os.version,
// os.features, digest), attestations after the image they reference.
func Synthesize(base string, members []Member) (*Result, error) {
	res := &Result{Base: base}
	var cands []candidate
	for i := range members {
		m := &members[i]
		if m.Problem != "" {
			res.Excluded = append(res.Excluded, Exclusion{Tag: m.Tag, Reason: m.Problem})
			continue
		}
		if len(m.Images) == 0 {
			res.Excluded = append(res.Excluded, Exclusion{Tag: m.Tag, Reason: "no image manifest for " + platform.String(m.Suffix.Platform)})
			continue
		}
		for _, img := range m.Images {
			d, reason := entryFor(m, img)
			if reason != "" {
				res.Excluded = append(res.Excluded, Exclusion{Tag: m.Tag, Digest: img.Descriptor.Digest, Reason: reason})
				continue
			}
			var atts []v1.Descriptor
			for _, a := range m.Attestations {
				if a.Annotations[AnnotationReferenceDigest] == d.Digest.String() {
					atts = append(atts, attestationEntry(a))
				}
			}
			cands = append(cands, candidate{member: m, desc: d, atts: atts})
		}
	}
	sort.SliceStable(res.Excluded, func(i, j int) bool {
		a, b := res.Excluded[i], res.Excluded[j]
		if a.Tag != b.Tag {
			return a.Tag < b.Tag
		}
		return a.Digest.String() < b.Digest.String()
	})

	// Duplicate rule: best candidate first, then keep the first per key.
	sort.SliceStable(cands, func(i, j int) bool { return better(cands[i], cands[j]) })
	winners := map[string]candidate{}
	var kept []candidate
	for _, c := range cands {
		k := platform.Key(*c.desc.Platform)
		if w, dup := winners[k]; dup {
			if w.desc.Digest != c.desc.Digest || w.member.Tag != c.member.Tag {
				res.Duplicates = append(res.Duplicates, Duplicate{Tag: c.member.Tag, Winner: w.member.Tag, Digest: c.desc.Digest, Platform: *c.desc.Platform})
			}
			continue
		}
		winners[k] = c
		kept = append(kept, c)
	}
	sort.Slice(res.Duplicates, func(i, j int) bool { return res.Duplicates[i].String() < res.Duplicates[j].String() })
	if len(kept) == 0 {
		return nil, &EmptyGroupError{Base: base, Excluded: res.Excluded}
	}

	sort.Slice(kept, func(i, j int) bool { return entryLess(kept[i].desc, kept[j].desc) })
	docker := true
	for _, c := range kept {
		res.Entries = append(res.Entries, Entry{Tag: c.member.Tag, Descriptor: c.desc})
		docker = docker && c.desc.MediaType == types.DockerManifestSchema2
		sort.Slice(c.atts, func(i, j int) bool { return entryLess(c.atts[i], c.atts[j]) })
		for _, a := range c.atts {
			res.Entries = append(res.Entries, Entry{Tag: c.member.Tag, Descriptor: a})
			docker = docker && a.MediaType == types.DockerManifestSchema2
		}
	}
	res.MediaType = types.OCIImageIndex
	if docker {
		res.MediaType = types.DockerManifestList
	}
	descs := make([]v1.Descriptor, len(res.Entries))
	for i, e := range res.Entries {
		descs[i] = e.Descriptor
	}
	res.Bytes = Encode(res.MediaType, descs)
	sum := sha256.Sum256(res.Bytes)
	res.Digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	return res, nil
}

// entryFor checks one image of a member against its tag and returns the
// descriptor to list, or why it is excluded.
func entryFor(m *Member, img Image) (v1.Descriptor, string) {
	d := img.Descriptor
	switch d.MediaType {
	case types.DockerManifestSchema2, types.OCIManifestSchema1:
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return d, "schema1 manifests cannot be listed in an index"
	case types.DockerManifestList, types.OCIImageIndex:
		return d, "nested index"
	default:
		return d, fmt.Sprintf("media type %q is not an image manifest", d.MediaType)
	}
	if img.Problem != "" {
		return d, img.Problem
	}
	cfg := img.Config
	if cfg == nil {
		return d, "image config unreadable"
	}
	switch cfg.MediaType {
	case types.DockerConfigJSON, types.OCIConfigJSON:
	default:
		return d, fmt.Sprintf("config media type %q is not an image config", cfg.MediaType)
	}
	arch, cfgVariant := platform.NormalizeArch(cfg.Architecture, cfg.Variant)
	p := v1.Platform{OS: cfg.OS, Architecture: arch, OSVersion: cfg.OSVersion, OSFeatures: cfg.OSFeatures}
	if !platform.Known(p.OS, p.Architecture) {
		return d, fmt.Sprintf("config platform %s/%s is not a known platform", cfg.OS, cfg.Architecture)
	}
	if cfgVariant != "" && !platform.ValidVariant(arch, platform.NormalizeVariant(arch, cfgVariant)) {
		return d, fmt.Sprintf("config variant %q is not a variant of %s", cfg.Variant, arch)
	}
	// Variant: config, else the index entry's, else the tag's.
	variant := cfgVariant
	if variant == "" && d.Platform != nil {
		_, variant = platform.NormalizeArch(d.Platform.Architecture, d.Platform.Variant)
	}
	if !m.Bare() {
		want := m.Suffix.Platform
		if p.OS != want.OS || p.Architecture != want.Architecture {
			return d, fmt.Sprintf("config says %s/%s, tag says %s/%s", p.OS, p.Architecture, want.OS, want.Architecture)
		}
		if variant != "" && m.Suffix.Variant != "" && platform.NormalizeVariant(arch, variant) != platform.NormalizeVariant(arch, m.Suffix.Variant) {
			return d, fmt.Sprintf("config variant %s contradicts tag variant %s", variant, m.Suffix.Variant)
		}
		if variant == "" {
			variant = m.Suffix.Variant
		}
	}
	p.Variant = variant
	p = platform.Normalize(p)
	var ann map[string]string
	if len(d.Annotations) > 0 {
		ann = d.Annotations
	}
	return v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Platform: &p, Annotations: ann}, ""
}

func attestationEntry(a v1.Descriptor) v1.Descriptor {
	p := v1.Platform{OS: "unknown", Architecture: "unknown"}
	return v1.Descriptor{MediaType: a.MediaType, Digest: a.Digest, Size: a.Size, Platform: &p, Annotations: a.Annotations}
}

// better orders duplicate candidates: suffixed tags before the bare tag,
// then the tag that is the canonical spelling of the entry's own platform
// (`-linux-arm64-v9` for an arm64/v9 entry, even when `-linux-arm64`'s
// index also lists one), then the shortest suffix, then the lexically
// first tag, then digest.
func better(a, b candidate) bool {
	ma, mb := a.member, b.member
	if ma.Bare() != mb.Bare() {
		return !ma.Bare()
	}
	if ca, cb := names(a), names(b); ca != cb {
		return ca
	}
	if la, lb := ma.Suffix.SuffixLen(), mb.Suffix.SuffixLen(); la != lb {
		return la < lb
	}
	if ma.Tag != mb.Tag {
		return ma.Tag < mb.Tag
	}
	return a.desc.Digest.String() < b.desc.Digest.String()
}

// names reports whether c's tag is the canonical tag of c's platform.
func names(c candidate) bool {
	m := c.member
	return !m.Bare() && m.Suffix.Canonical && m.Tag == FormatTag(m.Suffix.Base, *c.desc.Platform)
}

// entryLess orders entries as platform.Less orders platforms, then by
// digest.
func entryLess(a, b v1.Descriptor) bool {
	pa, pb := *a.Platform, *b.Platform
	if platform.Key(pa) != platform.Key(pb) {
		return platform.Less(pa, pb)
	}
	return a.Digest.String() < b.Digest.String()
}

// The wire types fix the encoding: field order, omitted empties, no
// timestamps. Changing them changes every synthesized digest, which breaks
// every client that pinned one — a breaking change (golden tests guard it).
type wireIndex struct {
	SchemaVersion int              `json:"schemaVersion"`
	MediaType     types.MediaType  `json:"mediaType"`
	Manifests     []wireDescriptor `json:"manifests"`
}

type wireDescriptor struct {
	MediaType   types.MediaType   `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *wirePlatform     `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type wirePlatform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// Encode writes an index of mediaType listing descs, in the given order,
// in manifold's fixed encoding (compact JSON, fixed field order, map keys
// sorted, no HTML escaping).
func Encode(mediaType types.MediaType, descs []v1.Descriptor) []byte {
	w := wireIndex{SchemaVersion: 2, MediaType: mediaType, Manifests: make([]wireDescriptor, len(descs))}
	for i, d := range descs {
		wd := wireDescriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size, Annotations: d.Annotations}
		if len(wd.Annotations) == 0 {
			wd.Annotations = nil
		}
		if p := d.Platform; p != nil {
			wd.Platform = &wirePlatform{Architecture: p.Architecture, OS: p.OS, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures, Variant: p.Variant}
			if len(p.OSFeatures) == 0 {
				wd.Platform.OSFeatures = nil
			}
		}
		w.Manifests[i] = wd
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		// Only strings, ints and maps of strings: encoding cannot fail.
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

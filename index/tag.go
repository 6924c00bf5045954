package index

import (
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/platform"
)

// ValidTag reports whether s is a valid tag per the distribution spec:
// [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. (Written out, not a regexp: it runs
// for every tag of every listing.)
func ValidTag(s string) bool {
	if len(s) == 0 || len(s) > 128 || !tagByte(s[0]) || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !tagByte(s[i]) {
			return false
		}
	}
	return true
}

func tagByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

// IsReferrerTag reports whether tag is a referrers fallback tag: the
// referrers tag schema (`sha256-<hex>`, `sha512-<hex>`) and the
// cosign/notation conventions built on it (`sha256-<hex>.sig`, `.att`,
// `.sbom`, …). They are never members.
func IsReferrerTag(tag string) bool {
	for _, alg := range [...]struct {
		prefix string
		hex    int
	}{{"sha256-", 64}, {"sha512-", 128}} {
		rest, ok := strings.CutPrefix(tag, alg.prefix)
		if !ok || len(rest) < alg.hex || (len(rest) > alg.hex && rest[alg.hex] != '.') {
			continue
		}
		// What follows the dot is anything but a line break.
		if lowerHex(rest[:alg.hex]) && !strings.Contains(rest[alg.hex:], "\n") {
			return true
		}
	}
	return false
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Grammar says which tag layouts name a platform. The zero Grammar is the
// default: `<base>-<os>-<arch>[-<variant>]` with canonical GOOS/GOARCH words
// only.
type Grammar struct {
	// Aliases also accepts legacy architecture words in the arch position
	// (platform.Alias): aarch64, arm64v8, arm32v5/6/7, armhf, armel,
	// armv5/6/7, x86_64, i386, ppc64el. Default false.
	Aliases bool
	// Prefix also accepts `<arch>-<base>` (linux implied), e.g. `amd64-1.0`,
	// `arm64v8-latest`. Default false.
	Prefix bool
}

// Suffix is a tag that names a platform member of the group Base.
type Suffix struct {
	Tag  string
	Base string
	// Platform is what the tag says, normalized (arm without a variant is
	// arm/v7, arm64 is arm64/v8). Never has os.version.
	Platform v1.Platform
	// Variant is the variant as the tag wrote it ("" when it wrote none),
	// after alias expansion; a config variant must agree with it.
	Variant string
	// Canonical is true when the tag's platform words are exactly what
	// FormatTag writes: no alias, no redundant variant, suffix layout.
	Canonical bool
}

// SuffixLen is the length of the platform part of the tag, used to prefer
// the shortest spelling among duplicates.
func (s Suffix) SuffixLen() int { return len(s.Tag) - len(s.Base) }

// Parse reports whether tag names a platform member and splits it. The
// platform words are taken from the right, so the base may contain dashes:
// `1.0-rc1-linux-arm-v7` is base `1.0-rc1`, linux/arm/v7. Nothing that is
// not a real os/arch pair (and a real variant of that arch) is accepted:
// `my-linux-tool` is not a suffix.
func (g Grammar) Parse(tag string) (Suffix, bool) {
	if !ValidTag(tag) || IsReferrerTag(tag) {
		return Suffix{}, false
	}
	// The dashes before the last three words (-1: none), found from the
	// right without splitting the tag.
	d3 := strings.LastIndexByte(tag, '-')
	d2, d1 := -1, -1
	if d3 >= 0 {
		d2 = strings.LastIndexByte(tag[:d3], '-')
	}
	if d2 >= 0 {
		d1 = strings.LastIndexByte(tag[:d2], '-')
	}
	// Longest suffix first: os-arch-variant, then os-arch.
	if d1 >= 0 {
		if s, ok := g.suffix(tag, tag[:d1], tag[d1+1:d2], tag[d2+1:d3], tag[d3+1:]); ok {
			return s, true
		}
	}
	if d2 >= 0 {
		if s, ok := g.suffix(tag, tag[:d2], tag[d2+1:d3], tag[d3+1:], ""); ok {
			return s, true
		}
	}
	if g.Prefix && d3 >= 0 {
		word, base, _ := strings.Cut(tag, "-")
		if s, ok := g.prefix(tag, word, base); ok {
			return s, true
		}
	}
	return Suffix{}, false
}

func (g Grammar) suffix(tag, base, os, arch, variant string) (Suffix, bool) {
	if !validBase(base) {
		return Suffix{}, false
	}
	canonical := true
	if a, v, ok := platform.Alias(arch); ok && g.Aliases && variant == "" {
		arch, variant = a, v
		canonical = false
	}
	if !platform.Known(os, arch) || !platform.ValidVariant(arch, variant) {
		return Suffix{}, false
	}
	p := platform.Normalize(v1.Platform{OS: os, Architecture: arch, Variant: variant})
	s := Suffix{Tag: tag, Base: base, Platform: p, Variant: variant}
	// Canonical: tag is FormatTag(base, p) — the same words, and no empty
	// fourth word ("1.0-linux-amd64-").
	wv := writtenVariant(p)
	want := len(base) + 1 + len(p.OS) + 1 + len(p.Architecture)
	if wv != "" {
		want += 1 + len(wv)
	}
	s.Canonical = canonical && os == p.OS && arch == p.Architecture && variant == wv && len(tag) == want
	return s, true
}

func (g Grammar) prefix(tag, word, base string) (Suffix, bool) {
	if !validBase(base) {
		return Suffix{}, false
	}
	arch, variant := word, ""
	if a, v, ok := platform.Alias(word); ok {
		arch, variant = a, v
	}
	if !platform.Known("linux", arch) {
		return Suffix{}, false
	}
	p := platform.Normalize(v1.Platform{OS: "linux", Architecture: arch, Variant: variant})
	return Suffix{Tag: tag, Base: base, Platform: p, Variant: variant}, true
}

// validBase: a base must itself be a usable bare tag.
func validBase(base string) bool {
	return ValidTag(base) && !IsReferrerTag(base)
}

// FormatTag is the canonical member tag for base and platform:
// `<base>-<os>-<arch>[-<variant>]`, with the variant normalized and the
// default left out: arm is always explicit, arm64/v8 and amd64/v1 are not
// written (`-linux-arm64`, as `docker build` loops named them). Parse(FormatTag(b,
// p)) gives back b and Normalize(p).
func FormatTag(base string, p v1.Platform) string {
	return base + "-" + FormatSuffix(p)
}

// FormatSuffix is the platform part of FormatTag, without the leading dash.
func FormatSuffix(p v1.Platform) string {
	p = platform.Normalize(p)
	s := p.OS + "-" + p.Architecture
	if v := writtenVariant(p); v != "" {
		s += "-" + v
	}
	return s
}

// writtenVariant is the variant word FormatSuffix writes for the
// normalized p, "" for none: arm64's v8 is what `-linux-arm64` means;
// arm's v7 is always written.
func writtenVariant(p v1.Platform) string {
	if p.Architecture == "arm64" && p.Variant == platform.DefaultVariant("arm64") {
		return ""
	}
	return p.Variant
}

// Group splits tags into groups keyed by base. Tags that are not members
// are left out. Members in each group are in tag order.
func (g Grammar) Group(tags []string) map[string][]Suffix {
	groups := map[string][]Suffix{}
	for _, t := range tags {
		if s, ok := g.Parse(t); ok {
			groups[s.Base] = append(groups[s.Base], s)
		}
	}
	for _, m := range groups {
		slices.SortFunc(m, bySuffixTag)
	}
	return groups
}

func bySuffixTag(a, b Suffix) int { return strings.Compare(a.Tag, b.Tag) }

// Members returns the members of base among tags, in tag order.
func (g Grammar) Members(tags []string, base string) []Suffix {
	var out []Suffix
	for _, t := range tags {
		if !strings.HasPrefix(t, base+"-") && !(g.Prefix && strings.HasSuffix(t, "-"+base)) {
			continue
		}
		if s, ok := g.Parse(t); ok && s.Base == base {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, bySuffixTag)
	return out
}

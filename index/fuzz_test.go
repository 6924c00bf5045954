package index_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

// FuzzParse: Parse never panics, only accepts valid tags, and whatever it
// accepts is a real platform whose canonical tag parses back to the same
// base and platform.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"1.4-linux-amd64", "1.0-rc1-linux-arm-v7", "my-linux-tool", "latest-linux-arm64-v8.2",
		"sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig",
		"arm64v8-latest", "1.4-linux-aarch64", "x-windows-amd64", "--linux-amd64", "a-linux-arm",
	} {
		f.Add(s, false, false)
	}
	f.Fuzz(func(t *testing.T, tag string, aliases, prefix bool) {
		g := index.Grammar{Aliases: aliases, Prefix: prefix}
		s, ok := g.Parse(tag)
		if !ok {
			return
		}
		if !index.ValidTag(tag) || !index.ValidTag(s.Base) || s.Tag != tag {
			t.Fatalf("Parse(%q) accepted an invalid tag or base: %+v", tag, s)
		}
		if !strings.Contains(tag, s.Base) || len(s.Base) >= len(tag) {
			t.Fatalf("Parse(%q): base %q is not a proper part of the tag", tag, s.Base)
		}
		p := s.Platform
		if !platform.Known(p.OS, p.Architecture) || !platform.ValidVariant(p.Architecture, p.Variant) {
			t.Fatalf("Parse(%q) gave an unknown platform %s", tag, platform.String(p))
		}
		canon := index.FormatTag(s.Base, p)
		if len(canon) > 128 {
			return // the base is too long to carry the canonical suffix
		}
		back, ok := index.Grammar{}.Parse(canon)
		if !ok || back.Base != s.Base || platform.String(back.Platform) != platform.String(p) || !back.Canonical {
			t.Fatalf("FormatTag(%q, %s) = %q does not parse back: %+v %v", s.Base, platform.String(p), canon, back, ok)
		}
	})
}

// The grammar as the distribution spec writes it, and the referrers tag
// schema: the oracles of ValidTag and IsReferrerTag, which are written out
// for speed.
var (
	specTag     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	referrerTag = regexp.MustCompile(`^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})(\..*)?$`)
)

// FuzzTagGrammar: ValidTag and IsReferrerTag agree with the regular
// expressions of the spec on every input.
func FuzzTagGrammar(f *testing.F) {
	for _, s := range []string{"", "a", "_x", ".x", "-x", "1.4-linux-amd64", strings.Repeat("a", 128), strings.Repeat("a", 129),
		"sha256-" + strings.Repeat("0", 64), "sha256-" + strings.Repeat("0", 64) + ".sig", "sha256-" + strings.Repeat("0", 63),
		"sha256-" + strings.Repeat("0", 64) + "x", "sha512-" + strings.Repeat("a", 128) + ".att", "sha256-" + strings.Repeat("A", 64), "a\nb", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := index.ValidTag(s), specTag.MatchString(s); got != want {
			t.Fatalf("ValidTag(%q) = %v, the spec's grammar says %v", s, got, want)
		}
		if got, want := index.IsReferrerTag(s), referrerTag.MatchString(s); got != want {
			t.Fatalf("IsReferrerTag(%q) = %v, the schema says %v", s, got, want)
		}
	})
}

// FuzzCanonical: a member is Canonical exactly when its tag is the one
// FormatTag writes for its base and platform.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"0-linux-amd64-", "1.4-linux-amd64", "1.4-linux-arm64-v8", "1.4-linux-arm-v7", "1.4-linux-aarch64", "a-linux-amd64-v1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		for _, g := range []index.Grammar{{}, {Aliases: true}} {
			s, ok := g.Parse(tag)
			if ok && s.Canonical != (tag == index.FormatTag(s.Base, s.Platform)) {
				t.Fatalf("Parse(%q) with %+v: Canonical %v, FormatTag gives %q", tag, g, s.Canonical, index.FormatTag(s.Base, s.Platform))
			}
		}
	})
}

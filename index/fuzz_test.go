package index_test

import (
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/index"
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
		if !index.KnownPlatform(p.OS, p.Architecture) || !index.ValidVariant(p.Architecture, p.Variant) {
			t.Fatalf("Parse(%q) gave an unknown platform %s", tag, index.PlatformString(p))
		}
		canon := index.FormatTag(s.Base, p)
		if len(canon) > 128 {
			return // the base is too long to carry the canonical suffix
		}
		back, ok := index.Grammar{}.Parse(canon)
		if !ok || back.Base != s.Base || index.PlatformString(back.Platform) != index.PlatformString(p) || !back.Canonical {
			t.Fatalf("FormatTag(%q, %s) = %q does not parse back: %+v %v", s.Base, index.PlatformString(p), canon, back, ok)
		}
	})
}

// FuzzParsePlatform: never panics; accepted platforms round-trip.
func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm/v7", "windows/amd64:10.0.1", "linux/arm64/v9.5", "a/b/c/d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := index.ParsePlatform(s)
		if err != nil {
			return
		}
		again, err := index.ParsePlatform(index.PlatformString(p))
		if err != nil || index.PlatformString(again) != index.PlatformString(p) {
			t.Fatalf("ParsePlatform(%q) = %s does not round-trip: %v", s, index.PlatformString(p), err)
		}
	})
}

package index_test

import (
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

package index_test

import (
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

func TestParse(t *testing.T) {
	t.Parallel()
	type want struct {
		base, platform, variant string
		canonical               bool
	}
	tests := []struct {
		tag     string
		grammar index.Grammar
		want    *want
	}{
		{tag: "1.4-linux-amd64", want: &want{"1.4", "linux/amd64", "", true}},
		{tag: "1.4-linux-arm64", want: &want{"1.4", "linux/arm64/v8", "", true}},
		{tag: "1.4-linux-arm64-v8", want: &want{"1.4", "linux/arm64/v8", "v8", false}},
		{tag: "1.4-linux-arm64-v8.2", want: &want{"1.4", "linux/arm64/v8.2", "v8.2", true}},
		{tag: "1.4-linux-arm64-v9.0", want: &want{"1.4", "linux/arm64/v9", "v9.0", false}},
		{tag: "1.4-linux-arm64-v9.5", want: &want{"1.4", "linux/arm64/v9.5", "v9.5", true}},
		{tag: "1.4-linux-arm-v7", want: &want{"1.4", "linux/arm/v7", "v7", true}},
		{tag: "1.4-linux-arm-v6", want: &want{"1.4", "linux/arm/v6", "v6", true}},
		{tag: "1.4-linux-arm-v5", want: &want{"1.4", "linux/arm/v5", "v5", true}},
		{tag: "1.4-linux-arm-v8", want: &want{"1.4", "linux/arm/v8", "v8", true}},
		{tag: "1.4-linux-arm", want: &want{"1.4", "linux/arm/v7", "", false}},
		{tag: "1.4-linux-amd64-v3", want: &want{"1.4", "linux/amd64/v3", "v3", true}},
		{tag: "1.4-linux-amd64-v1", want: &want{"1.4", "linux/amd64", "v1", false}},
		{tag: "1.0-rc1-linux-arm-v7", want: &want{"1.0-rc1", "linux/arm/v7", "v7", true}},
		{tag: "my-app-2-windows-amd64", want: &want{"my-app-2", "windows/amd64", "", true}},
		{tag: "latest-linux-riscv64", want: &want{"latest", "linux/riscv64", "", true}},
		{tag: "latest-linux-s390x", want: &want{"latest", "linux/s390x", "", true}},
		{tag: "latest-freebsd-arm64", want: &want{"latest", "freebsd/arm64/v8", "", true}},
		{tag: "x-linux-arm64-linux-amd64", want: &want{"x-linux-arm64", "linux/amd64", "", true}},
		{tag: "v1.0--linux-amd64", want: &want{"v1.0-", "linux/amd64", "", true}},
		{tag: "_x-linux-386", want: &want{"_x", "linux/386", "", true}},

		// Look-alikes that are not platform suffixes.
		{tag: "my-linux-tool"},
		{tag: "linux-amd64"},
		{tag: "-linux-amd64"},
		{tag: "1.4-linux"},
		{tag: "1.4-Linux-AMD64"},
		{tag: "1.4-linux-x86_64"},
		{tag: "1.4-linux-aarch64"},
		{tag: "1.4-linux-arm-v9"},
		{tag: "1.4-linux-arm-7"},
		{tag: "1.4-linux-arm64-v10"},
		{tag: "1.4-linux-arm64-v9.6"},
		{tag: "1.4-linux-amd64-v5"},
		{tag: "1.4-linux-386-v1"},
		{tag: "1.4-windows-s390x"},
		{tag: "1.4-nacl-amd64p32"},
		{tag: "1.4-linux-wasm"},
		{tag: "1.4-linux-amd64-extra"},
		{tag: "amd64-1.4"},
		{tag: "1.4-amd64"},
		{tag: ".bad-linux-amd64"},
		// Referrer fallback tags never are members, whatever follows.
		{tag: "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig"},
		{tag: "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-linux-amd64"},

		// Opt-in layouts.
		{tag: "1.4-linux-aarch64", grammar: index.Grammar{Aliases: true}, want: &want{"1.4", "linux/arm64/v8", "", false}},
		{tag: "1.4-linux-arm64v8", grammar: index.Grammar{Aliases: true}, want: &want{"1.4", "linux/arm64/v8", "v8", false}},
		{tag: "1.4-linux-arm32v7", grammar: index.Grammar{Aliases: true}, want: &want{"1.4", "linux/arm/v7", "v7", false}},
		{tag: "1.4-linux-armhf", grammar: index.Grammar{Aliases: true}, want: &want{"1.4", "linux/arm/v7", "v7", false}},
		{tag: "1.4-linux-armv6", grammar: index.Grammar{Aliases: true}, want: &want{"1.4", "linux/arm/v6", "v6", false}},
		{tag: "1.4-linux-x86_64", grammar: index.Grammar{Aliases: true}, want: &want{"1.4", "linux/amd64", "", false}},
		{tag: "1.4-linux-i386", grammar: index.Grammar{Aliases: true}, want: &want{"1.4", "linux/386", "", false}},
		{tag: "1.4-linux-armv7-v7", grammar: index.Grammar{Aliases: true}},
		{tag: "amd64-1.4", grammar: index.Grammar{Prefix: true}, want: &want{"1.4", "linux/amd64", "", false}},
		{tag: "arm64v8-latest", grammar: index.Grammar{Prefix: true}, want: &want{"latest", "linux/arm64/v8", "v8", false}},
		{tag: "arm32v7-1.0-rc1", grammar: index.Grammar{Prefix: true}, want: &want{"1.0-rc1", "linux/arm/v7", "v7", false}},
		{tag: "tool-1.4", grammar: index.Grammar{Prefix: true}},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			s, ok := tt.grammar.Parse(tt.tag)
			if tt.want == nil {
				if ok {
					t.Fatalf("Parse(%q) = %+v, want no suffix", tt.tag, s)
				}
				return
			}
			if !ok {
				t.Fatalf("Parse(%q): not a suffix, want base %q", tt.tag, tt.want.base)
			}
			if s.Base != tt.want.base || platform.String(s.Platform) != tt.want.platform || s.Variant != tt.want.variant || s.Canonical != tt.want.canonical {
				t.Errorf("Parse(%q) = base %q platform %s variant %q canonical %v; want %+v",
					tt.tag, s.Base, platform.String(s.Platform), s.Variant, s.Canonical, *tt.want)
			}
		})
	}
}

func TestFormatTagRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"linux/amd64", "linux/arm64/v8", "linux/arm64/v8", "linux/arm/v6", "linux/arm", "linux/amd64/v1", "linux/amd64/v3", "windows/amd64", "linux/arm64/v9.0"} {
		plat, err := platform.Parse(p)
		if err != nil {
			t.Fatal(err)
		}
		tag := index.FormatTag("1.0-rc1", plat)
		s, ok := index.Grammar{}.Parse(tag)
		if !ok || s.Base != "1.0-rc1" || platform.String(s.Platform) != platform.String(plat) || !s.Canonical {
			t.Errorf("FormatTag(%s) = %q, parses to %+v %v", p, tag, s, ok)
		}
	}
}

func TestGroup(t *testing.T) {
	t.Parallel()
	tags := []string{"latest", "1.0-linux-arm64", "1.0-linux-amd64", "1.0", "1.0-rc1-linux-amd64", "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig", "my-linux-tool"}
	g := index.Grammar{}.Group(tags)
	if len(g) != 2 || len(g["1.0"]) != 2 || len(g["1.0-rc1"]) != 1 {
		t.Fatalf("Group = %+v", g)
	}
	if g["1.0"][0].Tag != "1.0-linux-amd64" {
		t.Errorf("members not in tag order: %+v", g["1.0"])
	}
	if m := (index.Grammar{}).Members(tags, "1.0"); len(m) != 2 {
		t.Errorf("Members(1.0) = %+v", m)
	}
	if m := (index.Grammar{}).Members(tags, "1.0-rc1"); len(m) != 1 || platform.String(m[0].Platform) != "linux/amd64" {
		t.Errorf("Members(1.0-rc1) = %+v", m)
	}
}

func TestMissing(t *testing.T) {
	t.Parallel()
	amd, _ := platform.Parse("linux/amd64")
	arm, _ := platform.Parse("linux/arm64/v8")
	v7, _ := platform.Parse("linux/arm")
	res := &index.Result{Entries: []index.Entry{{Descriptor: v1.Descriptor{Platform: &amd}}, {Descriptor: v1.Descriptor{Platform: &arm}}}}
	if m := index.Missing(res, []v1.Platform{amd, {OS: "linux", Architecture: "arm64"}}); len(m) != 0 {
		t.Errorf("arm64/v8 is arm64: missing %v", m)
	}
	m := index.Missing(res, []v1.Platform{amd, v7})
	if len(m) != 1 || platform.String(m[0]) != "linux/arm/v7" {
		t.Errorf("missing %v, want linux/arm/v7", m)
	}
	err := &index.IncompleteError{Base: "1.0", Missing: m}
	if err.Error() != `"1.0" is incomplete: required platform(s) linux/arm/v7 not pushed yet` {
		t.Error(err)
	}
	rules := index.Rules{{Pattern: "ci/*", Policy: index.Merge, Require: []v1.Platform{amd}}}
	if r := rules.Match("ci/app"); len(r.Require) != 1 || r.Policy != index.Merge {
		t.Errorf("Match: %+v", r)
	}
	if r := rules.Match("other"); r.Require != nil || r.Policy != index.Merge {
		t.Errorf("default rule: %+v", r)
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	rules := index.Rules{{Pattern: "legacy/*", Policy: index.Override}, {Pattern: "frozen", Policy: index.Off}, {Pattern: "*/careful", Policy: index.Fallback}}
	if err := rules.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (index.Rules{{Pattern: "[", Policy: index.Merge}}).Validate(); err == nil {
		t.Error("bad pattern accepted")
	}
	if err := (index.Rules{{Pattern: "x", Policy: "sometimes"}}).Validate(); err == nil {
		t.Error("bad policy accepted")
	}
	for repo, want := range map[string]index.Policy{"legacy/app": index.Override, "frozen": index.Off, "team/careful": index.Fallback, "other": index.Merge, "legacy/a/b": index.Merge} {
		if got := rules.For(repo); got != want {
			t.Errorf("For(%q) = %s, want %s", repo, got, want)
		}
	}
	tests := []struct {
		p       index.Policy
		bare    index.BareKind
		members int
		want    index.Action
	}{
		{index.Merge, index.BareAbsent, 2, index.ServeIndex},
		{index.Merge, index.BareImage, 2, index.ServeIndexWithBare},
		{index.Merge, index.BareIndex, 2, index.ServeUpstream},
		{index.Merge, index.BareImage, 0, index.ServeUpstream},
		{index.Override, index.BareImage, 2, index.ServeIndex},
		{index.Override, index.BareIndex, 2, index.ServeUpstream},
		{index.Fallback, index.BareAbsent, 1, index.ServeIndex},
		{index.Fallback, index.BareImage, 1, index.ServeUpstream},
		{index.Off, index.BareAbsent, 3, index.ServeUpstream},
	}
	for _, tt := range tests {
		if got := index.Decide(tt.p, tt.bare, tt.members); got != tt.want {
			t.Errorf("Decide(%s, %s, %d) = %v, want %v", tt.p, tt.bare, tt.members, got, tt.want)
		}
	}
}

// BenchmarkGroup: grouping a repository of 10,000 tags (5,000 bases of two
// members), what the proxy does with every tag listing it reads.
func BenchmarkGroup(b *testing.B) {
	tags := make([]string, 0, 10000)
	for i := range 5000 {
		tags = append(tags, fmt.Sprintf("%d.0-linux-amd64", i), fmt.Sprintf("%d.0-linux-arm64", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		index.Grammar{}.Group(tags)
	}
}

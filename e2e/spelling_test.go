package e2e_test

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// spellingsOf lists, per platform of the fixtures (as the synthesized
// index writes it), every spelling a user types for it on a command line:
// the written form first, then the others. A platform not listed has one
// spelling, its own. Every client test asks for every spelling of every
// image (the request-spelling matrix); a client that legitimately cannot
// match one says so through its matcher rule below, not by leaving the
// spelling out.
var spellingsOf = map[string][]string{
	"linux/amd64":    {"linux/amd64", "linux/amd64/v1"},
	"linux/arm64/v8": {"linux/arm64/v8", "linux/arm64"},
	"linux/arm/v7":   {"linux/arm/v7", "linux/arm"},
}

// spelling is one way to write a platform: os/arch[/variant].
type spelling struct{ os, arch, variant string }

func (s spelling) String() string {
	if s.variant == "" {
		return s.os + "/" + s.arch
	}
	return s.os + "/" + s.arch + "/" + s.variant
}

// slug names subtests: linux-arm64.
func (s spelling) slug() string { return strings.ReplaceAll(s.String(), "/", "-") }

func spellings(m *member) []spelling {
	ss, ok := spellingsOf[m.arg()]
	if !ok {
		ss = []string{m.arg()}
	}
	out := make([]spelling, len(ss))
	for i, s := range ss {
		f := append(strings.Split(s, "/"), "")
		out[i] = spelling{f[0], f[1], f[2]}
	}
	return out
}

// matcher is how a client picks an index entry for a requested platform.
type matcher int

const (
	// normalizing clients compare platforms as containerd's
	// platforms.Normalize does — arm64 ≡ arm64/v8, arm ≡ arm/v7,
	// amd64 ≡ amd64/v1 — so every spelling finds its entry whatever
	// variant the entry writes: containerd and dockerd (containerd's
	// platforms package), regctl (regclient's types/platform normalizes
	// both sides, then takes the best compatible entry), podman and skopeo
	// (containers/image tries the requested variant, then the empty one).
	normalizing matcher = iota
	// exactVariant clients take the first entry with the requested os and
	// arch whose variant equals the requested one; a request without a
	// variant matches any variant. go-containerregistry (crane:
	// remote.matchesPlatform, "variant [is] identical if provided") and
	// oras-go (oras: platform.Match, "Variant ... exactly match if target
	// platform provided") are documented so. Hence `linux/arm64/v8` finds
	// no arm64 entry without a variant, `linux/amd64/v1` finds no amd64
	// entry (none writes v1), and `linux/arm` takes whichever arm entry is
	// listed first — which is why the proxy writes arm64's v8 and lists
	// arm/v7 before arm/v6.
	exactVariant
)

// finds reports whether a client with matcher mt finds an entry written
// with platform p when asked for s.
func (mt matcher) finds(p v1.Platform, s spelling) bool {
	if p.OS != s.os || p.Architecture != s.arch {
		return false
	}
	if mt == exactVariant {
		return s.variant == "" || s.variant == p.Variant
	}
	return orDefault(p.Architecture, p.Variant) == orDefault(s.arch, s.variant)
}

// orDefault is containerd's default variant where none is written.
func orDefault(arch, variant string) string {
	if variant != "" {
		return variant
	}
	switch arch {
	case "arm64":
		return "v8"
	case "arm":
		return "v7"
	case "amd64":
		return "v1"
	}
	return ""
}

// request is one cell of the matrix: ask for tag with platform s; the
// client must get m — or, when found is false (its matcher finds no entry
// for this spelling in these bytes), fail saying so.
type request struct {
	name  string // subtest name: docker/linux-arm64-v8/linux-arm64
	tag   string
	m     *member
	s     spelling
	found bool
}

// matrix returns the requests a client with matcher mt must answer: every
// spelling of every member of both groups under the group's synthesized
// bare tag (the docker group's arm64 member is tagged -linux-arm64, the oci
// group's -linux-arm64-v8), and every spelling of arm64 under the real
// upstream indexes, one writing arm64's v8 and one writing no variant —
// passed through untouched, so what a client finds there is up to its
// matcher and the upstream's bytes.
func (fx *fixtures) matrix(mt matcher) []request {
	var out []request
	for _, g := range fx.groups {
		for _, m := range g.members {
			for _, s := range spellings(m) {
				out = append(out, request{g.name + "/" + m.slug() + "/" + s.slug(), g.base, m, s, mt.finds(m.want, s)})
			}
		}
	}
	for _, ri := range fx.multis {
		for _, e := range ri.entries {
			if e.platform.Architecture != "arm64" {
				continue
			}
			for _, s := range spellings(e.m) {
				out = append(out, request{ri.tag + "/" + e.m.slug() + "/" + s.slug(), ri.tag, e.m, s, mt.finds(e.platform, s)})
			}
		}
	}
	return out
}

// checkNoMatch checks that a client asked for a platform its matcher finds
// no entry for failed, with its own words for that (noMatch), not for
// something else.
func checkNoMatch(t *testing.T, r request, c command, noMatch string) {
	t.Helper()
	out, _, err := c.output()
	if err == nil {
		t.Errorf("%s: found %q for %s, but this client's matcher should find no entry for that spelling in %s (its matcher changed? update matcher in spelling_test.go)", c, strings.TrimSpace(string(out)), r.s, r.tag)
		return
	}
	if !strings.Contains(err.Error(), noMatch) {
		t.Errorf("%s: want it to fail with %q (no entry for %s), got: %v", c, noMatch, r.s, err)
		return
	}
	t.Logf("%s: no match, as its matcher does: %s", r.s, lastLines(err.Error(), 1))
}

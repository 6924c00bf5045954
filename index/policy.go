package index

import (
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/platform"
)

// Policy says what to do with a bare tag that has members.
type Policy string

const (
	// Merge (the default): a single-platform image under the bare tag joins
	// the index with its config platform; a suffixed tag for the same
	// platform wins.
	Merge Policy = "merge"
	// Override: the index replaces whatever the bare tag holds.
	Override Policy = "override"
	// Fallback: synthesize only when the bare tag is absent upstream.
	Fallback Policy = "fallback"
	// Off: never synthesize; the bare tag passes through.
	Off Policy = "off"
)

// ParsePolicy parses a policy name; "" is Merge.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "":
		return Merge, nil
	case Merge, Override, Fallback, Off:
		return p, nil
	}
	return "", fmt.Errorf("unknown bare-tag policy %q (want merge, override, fallback or off)", s)
}

// Rule applies a policy to repositories whose name matches Pattern
// (path.Match syntax: `library/*`, `team/**` is not special).
type Rule struct {
	Pattern string
	Policy  Policy
	// Require lists platforms a group must have before its index is
	// served, so a half-pushed set (a CI still pushing arches) is not
	// published. Default: none.
	Require []v1.Platform
}

// Rules are checked in order; the first match wins; no match is Merge.
type Rules []Rule

// Validate checks every pattern and policy.
func (rs Rules) Validate() error {
	for i, r := range rs {
		if _, err := path.Match(r.Pattern, ""); err != nil {
			return fmt.Errorf("rule %d: pattern %q: %w", i, r.Pattern, err)
		}
		if _, err := ParsePolicy(string(r.Policy)); err != nil {
			return fmt.Errorf("rule %d: %w", i, err)
		}
	}
	return nil
}

// For returns the policy for repository repo.
func (rs Rules) For(repo string) Policy { return rs.Match(repo).Policy }

// Match returns the first rule matching repo, or the default rule (merge,
// nothing required).
func (rs Rules) Match(repo string) Rule {
	for _, r := range rs {
		if ok, _ := path.Match(r.Pattern, repo); ok {
			r.Policy, _ = ParsePolicy(string(r.Policy))
			return r
		}
	}
	return Rule{Pattern: "*", Policy: Merge}
}

// Missing returns the platforms of require that res does not list (os,
// arch and normalized variant compared; os.version ignored).
func Missing(res *Result, require []v1.Platform) []v1.Platform {
	var missing []v1.Platform
	for _, want := range require {
		found := false
		for _, e := range res.Entries {
			if e.Descriptor.Platform != nil && platform.Same(*e.Descriptor.Platform, want) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, want)
		}
	}
	return missing
}

// IncompleteError says a group lacks required platforms.
type IncompleteError struct {
	Base    string
	Missing []v1.Platform
}

func (e *IncompleteError) Error() string {
	names := make([]string, len(e.Missing))
	for i, p := range e.Missing {
		names[i] = platform.String(p)
	}
	return fmt.Sprintf("%q is incomplete: required platform(s) %s not pushed yet", e.Base, strings.Join(names, ", "))
}

// BareKind is what the bare tag holds upstream.
type BareKind int

const (
	BareAbsent BareKind = iota
	// BareImage is a single manifest (image, or anything not an index).
	BareImage
	// BareIndex is a real index or manifest list.
	BareIndex
)

func (k BareKind) String() string {
	switch k {
	case BareImage:
		return "image"
	case BareIndex:
		return "index"
	}
	return "absent"
}

// Action is what to serve under a bare tag.
type Action int

const (
	// ServeUpstream passes through what upstream holds (or its 404).
	ServeUpstream Action = iota
	// ServeIndex serves the index of the suffixed members.
	ServeIndex
	// ServeIndexWithBare also lists the bare tag's image (merge).
	ServeIndexWithBare
)

// Decide picks the action for a bare tag with members suffixed members. A real
// index under the bare tag always passes through untouched.
func Decide(p Policy, bare BareKind, members int) Action {
	if members == 0 || bare == BareIndex || p == Off {
		return ServeUpstream
	}
	switch p {
	case Fallback:
		if bare != BareAbsent {
			return ServeUpstream
		}
	case Override:
	default: // Merge
		if bare == BareImage {
			return ServeIndexWithBare
		}
	}
	return ServeIndex
}

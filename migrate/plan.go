package migrate

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Plan is what Inspect finds and Apply carries out: one BasePlan per base.
// `proxy inspect` shows it (WriteTable is the view, WriteJSON the --json
// output, whose fields are only ever added), and `proxy migrate --plan`
// applies a saved one (ReadPlan) after inspecting again.
type Plan struct {
	// Repository is registry/path.
	Repository string `json:"repository"`
	// Policy is the bare-tag policy that applies to the repository.
	Policy string `json:"policy"`
	// Platforms are the matrix columns: every member platform, and the
	// expected ones.
	Platforms []string `json:"platforms"`
	// Require are the platforms the policy requires before the proxy
	// serves an index (partial sets).
	Require []string `json:"require,omitempty"`
	// Expect is the --expect set, normalized.
	Expect []string   `json:"expect,omitempty"`
	Groups []BasePlan `json:"groups"`
}

// State is what a base's bare tag is, as inspect names it.
type State string

const (
	StateAbsent         State = "absent"
	StateSinglePlatform State = "single-platform"
	StateRealIndex      State = "real index"
	StateWouldChange    State = "would change"
)

// Serving is what a client of the proxy gets for a bare tag.
type Serving string

const (
	// ServesIndex: the index the proxy synthesizes from the members.
	ServesIndex Serving = "index"
	// ServesUpstream: the registry's own manifest passes through.
	ServesUpstream Serving = "upstream"
	// ServesNothing: a 404.
	ServesNothing Serving = "nothing"
)

// BasePlan is one base of a Plan: its bare tag, its members, what the
// proxy serves for it and what migrate would do.
type BasePlan struct {
	Base string `json:"base"`
	// Bare is what the bare tag holds in the registry: absent, image or
	// index; BareDigest is its digest.
	Bare       string `json:"bare"`
	BareDigest string `json:"bareDigest,omitempty"`
	// State is absent, single-platform, real index or would change: the
	// bare tag is a single-platform image the proxy replaces with an
	// index, or a real index other than what migrate would write.
	State State `json:"state"`
	// Policy is the bare-tag policy in force.
	Policy string `json:"policy"`
	// Serves is what a client of the proxy gets for the bare tag: "index"
	// (synthesized), "upstream" (the registry's own manifest passes
	// through) or "nothing" (404).
	Serves Serving `json:"serves"`
	// Index is the index the proxy serves for the base: its digest is the
	// one clients of the proxy see. Null when it serves no index.
	Index *ServedIndex `json:"index"`
	// Members are the member tags (and, under merge, the bare tag's own
	// image), in tag order after the bare tag.
	Members []MemberRow `json:"members"`
	// Missing are --expect platforms no listed member provides;
	// Incomplete the platforms the policy requires that none provides (the
	// proxy then serves no index).
	Missing    []string `json:"missing,omitempty"`
	Incomplete []string `json:"incomplete,omitempty"`
	// Problems, one line each: members left out and why, duplicate
	// platforms, member indexes, missing platforms.
	Problems []string `json:"problems,omitempty"`
	// Migrate is what `proxy migrate` would do with this base.
	Migrate Change `json:"migrate"`

	// planned is written (create/update) or found (unchanged); forced is
	// what --force writes over a conflicting index.
	planned, forced *target
	// digests of the member tags as inspected.
	digests map[string]v1.Hash
	// suffixTags are the member tags (never the bare tag).
	suffixTags []string
	// memberIndex marks member tags that are indexes; why keeps the
	// problem of members left out.
	memberIndex map[string]bool
	why         map[string]string
}

// ServedIndex is the index the proxy serves for a base.
type ServedIndex struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	// Synthesized is true when the proxy makes the index from the members,
	// false when it passes the registry's own index through.
	Synthesized bool `json:"synthesized"`
}

// MemberRow is one member tag of a BasePlan.
type MemberRow struct {
	Tag string `json:"tag"`
	// Platform is what the tag says (for the bare tag: its config).
	Platform string `json:"platform"`
	// Digest and MediaType are what the tag points at.
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType,omitempty"`
	// Included: the member is listed in the index; when false, Problem
	// says why.
	Included bool   `json:"included"`
	Problem  string `json:"problem"`
	// Note is a finding about an included member (a flattened index,
	// one of its images left out).
	Note string `json:"note,omitempty"`
	// Bare marks the bare tag's own image, listed under the merge policy.
	Bare bool `json:"bare,omitempty"`
}

// Step is what migrate does with a base's bare tag: write it (create,
// update) or leave it (unchanged, conflict, skip, stale).
type Step string

const (
	// Create writes the index under an absent bare tag.
	Create Step = "create"
	// Update replaces a single-platform bare tag (merge, override) with
	// the index, or a conflicting index when forced.
	Update Step = "update"
	// Unchanged: the bare tag already holds the index.
	Unchanged Step = "unchanged"
	// Conflict: the bare tag holds a different real index; skipped unless
	// forced.
	Conflict Step = "conflict"
	// Skip: the proxy serves the registry's own tag, or has nothing to
	// serve.
	Skip Step = "skip"
	// Stale: a saved plan's base that no longer matches the registry
	// (Verify); nothing is written for it, and it counts as failed.
	Stale Step = "stale"
)

// Change is what migrate would do with one base.
type Change struct {
	Action Step `json:"action"`
	// Reason says why, for unchanged, conflict and skip.
	Reason string `json:"reason,omitempty"`
	// Digest and MediaType of the index written (create, update), found
	// (unchanged) or that --force would write (conflict).
	Digest    string `json:"digest,omitempty"`
	MediaType string `json:"mediaType,omitempty"`
	// Notes are consequences worth knowing (a former bare image that is no
	// longer tagged afterwards).
	Notes []string `json:"notes,omitempty"`
	// Prune are the member tags that --prune-suffixed would untag: those
	// whose manifest the index lists. Keep are the others, with why.
	Prune []string `json:"prune,omitempty"`
	Keep  []string `json:"keep,omitempty"`
}

// target is an index that the bare tag holds or will hold.
type target struct {
	bytes     []byte
	mediaType types.MediaType
	digest    v1.Hash
	// refs are the manifests it lists.
	refs map[v1.Hash]bool
}

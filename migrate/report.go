package migrate

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Report is what `proxy inspect` shows: one BaseReport per base. Its JSON
// encoding is the --json output; fields are only ever added.
type Report struct {
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
	Expect []string     `json:"expect,omitempty"`
	Groups []BaseReport `json:"groups"`
}

// State of a bare tag, as inspect names it.
const (
	StateAbsent         = "absent"
	StateSinglePlatform = "single-platform"
	StateRealIndex      = "real index"
	StateWouldChange    = "would change"
)

// BaseReport is one base of a Report: its bare tag, its members, what the
// proxy serves for it and what migrate would do.
type BaseReport struct {
	Base string `json:"base"`
	// Bare is what the bare tag holds in the registry: absent, image or
	// index; BareDigest is its digest.
	Bare       string `json:"bare"`
	BareDigest string `json:"bareDigest,omitempty"`
	// State is absent, single-platform, real index or would change: the
	// bare tag is a single-platform image the proxy replaces with an
	// index, or a real index other than what migrate would write.
	State string `json:"state"`
	// Policy is the bare-tag policy in force.
	Policy string `json:"policy"`
	// Serves is what a client of the proxy gets for the bare tag: "index"
	// (synthesized), "upstream" (the registry's own manifest passes
	// through) or "nothing" (404).
	Serves string `json:"serves"`
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
	Migrate Plan `json:"migrate"`

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

// MemberRow is one member tag of a BaseReport.
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
// update) or leave it (unchanged, conflict, skip).
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
)

// Plan is what migrate would do with one base.
type Plan struct {
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

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// short is the first 12 hex digits of a digest ("sha256:" dropped).
func short(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok {
		d = hex
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// columns are the member platforms of every group and the expected ones.
func columns(r *Report) []string {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, g := range r.Groups {
		for _, m := range g.Members {
			add(m.Platform)
		}
	}
	for _, p := range r.Expect {
		add(p)
	}
	for _, p := range r.Require {
		add(p)
	}
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// Cell markers of the table.
const (
	markExcluded = "!"
	markIndex    = "*"
	markMore     = "+"
)

// WriteTable writes the human report: the matrix of bases × platforms with
// short digests, the state of each bare tag, what the proxy serves, what
// migrate would do, then the problems.
func (r *Report) WriteTable(w io.Writer) error {
	req := ""
	if len(r.Require) > 0 {
		req = ", requires " + strings.Join(r.Require, ", ")
	}
	fmt.Fprintf(w, "repository %s (bare-tag policy %s%s)\n\n", r.Repository, r.Policy, req)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"BASE", "BARE", "PROXY SERVES", "MIGRATE"}
	head = append(head, r.Platforms...)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	used := map[string]bool{}
	for _, g := range r.Groups {
		row := []string{g.Base, g.State, serves(g), string(g.Migrate.Action)}
		for _, p := range r.Platforms {
			row = append(row, cell(g, p, used))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var legend []string
	if used[markExcluded] {
		legend = append(legend, markExcluded+" left out of the index")
	}
	if used[markIndex] {
		legend = append(legend, markIndex+" member is an index (flattened)")
	}
	if used[markMore] {
		legend = append(legend, markMore+" several tags for this platform")
	}
	if len(legend) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(legend, "   "))
	}
	var problems []string
	for _, g := range r.Groups {
		for _, p := range g.Problems {
			problems = append(problems, g.Base+": "+p)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(w, "\nproblems:\n")
		for _, p := range problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	var notes []string
	for _, g := range r.Groups {
		if g.Migrate.Reason != "" && g.Migrate.Action != Unchanged {
			notes = append(notes, fmt.Sprintf("%s: %s: %s", g.Base, g.Migrate.Action, g.Migrate.Reason))
		}
		for _, n := range g.Migrate.Notes {
			notes = append(notes, g.Base+": "+n)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\nmigrate:\n")
		for _, n := range notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	_, err := fmt.Fprintf(w, "\n%d bases, %d member tags, %d problems\n", len(r.Groups), r.memberTags(), len(problems))
	return err
}

func (r *Report) memberTags() int {
	n := 0
	for _, g := range r.Groups {
		for _, m := range g.Members {
			if !m.Bare {
				n++
			}
		}
	}
	return n
}

func serves(g BaseReport) string {
	switch {
	case g.Index == nil && g.Serves == "upstream":
		return "upstream image"
	case g.Index == nil:
		return "404"
	case g.Index.Synthesized:
		return "index " + short(g.Index.Digest)
	}
	return "upstream index " + short(g.Index.Digest)
}

// cell is the short digest of the member for platform p: the listed one
// when there is one, with markers.
func cell(g BaseReport, p string, used map[string]bool) string {
	var ms []MemberRow
	for _, m := range g.Members {
		if m.Platform == p {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return "-"
	}
	best := ms[0]
	for _, m := range ms {
		if m.Included && !best.Included {
			best = m
		}
	}
	s := short(best.Digest)
	if s == "" {
		s = "?"
	}
	mark := func(k string) {
		s += k
		used[k] = true
	}
	if !best.Included {
		mark(markExcluded)
	}
	if types.MediaType(best.MediaType).IsIndex() {
		mark(markIndex)
	}
	if len(ms) > 1 {
		mark(markMore)
	}
	return s
}

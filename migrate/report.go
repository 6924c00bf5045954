package migrate

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// WriteJSON writes the report as indented JSON.
func (r *Plan) WriteJSON(w io.Writer) error {
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
func columns(r *Plan) []string {
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
func (r *Plan) WriteTable(w io.Writer) error {
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
		row := []string{g.Base, string(g.State), serves(g), string(g.Migrate.Action)}
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

func (r *Plan) memberTags() int {
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

func serves(g BasePlan) string {
	switch {
	case g.Index == nil && g.Serves == ServesUpstream:
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
func cell(g BasePlan, p string, used map[string]bool) string {
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

package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"text/tabwriter"

	"golang.org/x/sync/errgroup"

	"github.com/manifold-proxy/manifold/upstream"
)

// ApplyOptions choose what Migrate may do.
type ApplyOptions struct {
	// DryRun plans and writes nothing.
	DryRun bool
	// Force replaces a bare tag's conflicting real index with the index the
	// proxy would synthesize if the bare tag were absent.
	Force bool
	// Prune untags the member tags whose manifests the index lists, once
	// the index has been read back and compared byte for byte.
	Prune bool
}

// BaseOutcome is what Migrate did with one base (or, in a dry run, would
// do): a row of the Summary.
type BaseOutcome struct {
	Base   string `json:"base"`
	Action Step   `json:"action"`
	// Forced: a conflicting index was replaced (--force).
	Forced bool   `json:"forced,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Digest of the index written, found, or (dry run) to write.
	Digest string `json:"digest,omitempty"`
	// Written: the index was PUT; Verified: it was read back, identical.
	Written  bool `json:"written"`
	Verified bool `json:"verified"`
	// Pruned are the member tags untagged (dry run: to untag); Kept the
	// ones left, with why.
	Pruned []string `json:"pruned,omitempty"`
	Kept   []string `json:"kept,omitempty"`
	Notes  []string `json:"notes,omitempty"`
	// Error is set when the base failed.
	Error string `json:"error,omitempty"`
}

// Failed reports whether the base failed.
func (o *BaseOutcome) Failed() bool { return o.Error != "" }

func (o *BaseOutcome) fail(err error) { o.Error = oneLine(err.Error()) }

// Summary is the result of Migrate.
type Summary struct {
	Repository string        `json:"repository"`
	DryRun     bool          `json:"dryRun"`
	Outcomes   []BaseOutcome `json:"outcomes"`
}

// halt stops pruning everywhere once the registry showed it cannot be
// trusted with it.
type halt struct {
	mu     sync.Mutex
	reason string
}

func (h *halt) get() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reason
}

func (h *halt) set(r string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reason == "" {
		h.reason = r
	}
}

// Migrate carries out the plan of a report made by this Migrator's
// Inspect. Bases are independent: a failure is recorded in its
// BaseOutcome and the others go on; Summary.Err says whether any failed.
func (m *Migrator) Apply(ctx context.Context, r *Plan, o ApplyOptions) *Summary {
	s := &Summary{Repository: r.Repository, DryRun: o.DryRun, Outcomes: make([]BaseOutcome, len(r.Groups))}
	var eg errgroup.Group
	eg.SetLimit(m.o.Concurrency)
	var stop halt
	done := 0
	for i := range r.Groups {
		g := &r.Groups[i]
		eg.Go(func() error {
			s.Outcomes[i] = m.migrateBase(ctx, g, o, &stop)
			m.step("migrate", &done, len(r.Groups), g.Base)
			return nil
		})
	}
	_ = eg.Wait()
	return s
}

func (m *Migrator) migrateBase(ctx context.Context, g *BasePlan, o ApplyOptions, stop *halt) BaseOutcome {
	p := g.Migrate
	out := BaseOutcome{Base: g.Base, Action: p.Action, Reason: p.Reason, Digest: p.Digest, Notes: p.Notes}
	var t *target
	write := false
	switch p.Action {
	case Create, Update:
		t, write = g.planned, true
	case Unchanged:
		t = g.planned
	case Stale:
		out.fail(errors.New(p.Reason))
	case Conflict:
		if o.Force && g.forced != nil {
			t, write = g.forced, true
			out.Action, out.Forced = Update, true
			out.Reason = "forced: replaces " + g.BareDigest + ", the index the bare tag held"
		}
	}
	if t == nil {
		return out
	}
	if o.DryRun {
		if o.Prune {
			out.Pruned, out.Kept = p.Prune, p.Keep
		}
		return out
	}
	if err := ctx.Err(); err != nil {
		out.fail(err)
		return out
	}
	if write {
		if err := m.put(ctx, g.Base, t.mediaType, t.bytes); err != nil {
			out.fail(fmt.Errorf("writing %s:%s: %w", m.name, g.Base, err))
			return out
		}
		out.Written = true
		m.o.Logger.Info("index written", "repo", m.name, "tag", g.Base, "digest", t.digest.String(), "forced", out.Forced)
	}
	if err := m.verify(ctx, g.Base, t); err != nil {
		out.fail(fmt.Errorf("verifying %s:%s: %w", m.name, g.Base, err))
		return out
	}
	out.Verified = true
	if o.Prune {
		m.prune(ctx, g, t, &out, stop)
	}
	return out
}

// verify reads the bare tag back and compares bytes and media type.
func (m *Migrator) verify(ctx context.Context, tag string, t *target) error {
	d, b, err := m.o.Client.GetTag(ctx, m.o.Repository, tag, m.o.MaxManifestBytes)
	if err != nil {
		return err
	}
	switch {
	case !bytes.Equal(b, t.bytes):
		return fmt.Errorf("read back %d bytes (%s) that differ from the %d expected (%s)", len(b), d.Digest, len(t.bytes), t.digest)
	case d.MediaType != t.mediaType:
		return fmt.Errorf("read back as %q, want %q", d.MediaType, t.mediaType)
	}
	return nil
}

// prune untags the member tags whose manifest t lists, one at a time, each
// re-checked just before (it must still point where it did) and after (its
// manifest must still exist: a registry that deletes manifests along with
// tags gets the manifest back, by digest, and pruning stops).
func (m *Migrator) prune(ctx context.Context, g *BasePlan, t *target, out *BaseOutcome, stop *halt) {
	prune, keep := g.pruneSet(t)
	out.Kept = append(out.Kept, keep...)
	for i, tag := range prune {
		if r := stop.get(); r != "" {
			out.Kept = append(out.Kept, tag+": "+r)
			continue
		}
		if err := m.pruneTag(ctx, g, t, tag, out, stop); err != nil {
			out.fail(err)
			for _, rest := range prune[i+1:] {
				out.Kept = append(out.Kept, rest+": not pruned after an earlier failure")
			}
			return
		}
	}
}

func (m *Migrator) pruneTag(ctx context.Context, g *BasePlan, t *target, tag string, out *BaseOutcome, stop *halt) error {
	repo := m.o.Repository
	d, err := m.o.Client.Head(ctx, repo, tag)
	switch {
	case upstream.Status(err) == http.StatusNotFound:
		out.Notes = append(out.Notes, tag+" was already gone")
		return nil
	case err != nil:
		return fmt.Errorf("re-checking %s: %w", tag, err)
	case d.Digest != g.digests[tag] || !t.refs[d.Digest]:
		out.Kept = append(out.Kept, fmt.Sprintf("%s: now points at %s, not what was inspected", tag, d.Digest))
		return nil
	}
	// Kept to restore the manifest should the registry delete it.
	body, mt, err := m.o.Client.Manifest(ctx, repo, d.Digest, m.o.MaxManifestBytes)
	if err != nil {
		return fmt.Errorf("reading %s before untagging it: %w", tag, err)
	}
	if err := m.deleteTag(ctx, tag); err != nil {
		st := upstream.Status(err)
		switch {
		case st == http.StatusNotFound:
			out.Notes = append(out.Notes, tag+" was already gone")
			return nil
		case st >= 400 && st < 500:
			r := fmt.Sprintf("registry cannot untag (HTTP %d: %s); left in place", st, oneLine(err.Error()))
			stop.set("registry cannot untag; left in place")
			out.Kept = append(out.Kept, tag+": "+r)
			return nil
		}
		return fmt.Errorf("untagging %s: %w", tag, err)
	}
	_, err = m.o.Client.Head(ctx, repo, d.Digest.String())
	switch {
	case err == nil:
		out.Pruned = append(out.Pruned, tag)
		m.o.Logger.Info("tag pruned", "repo", m.name, "tag", tag, "digest", d.Digest.String())
		return nil
	case upstream.Status(err) != http.StatusNotFound:
		return fmt.Errorf("checking %s after untagging %s: %w", d.Digest, tag, err)
	}
	stop.set("pruning stopped: the registry deletes manifests along with tags")
	if err := m.put(ctx, d.Digest.String(), mt, body); err != nil {
		return fmt.Errorf("the registry deleted manifest %s along with tag %s, and restoring it failed: %w", d.Digest, tag, err)
	}
	out.Pruned = append(out.Pruned, tag)
	out.Notes = append(out.Notes, fmt.Sprintf("the registry deleted manifest %s along with tag %s: restored by digest; pruning stopped", d.Digest, tag))
	return nil
}

// Failed counts the bases that failed.
func (s *Summary) Failed() int {
	n := 0
	for i := range s.Outcomes {
		if s.Outcomes[i].Failed() {
			n++
		}
	}
	return n
}

// Err is nil unless a base failed.
func (s *Summary) Err() error {
	if n := s.Failed(); n > 0 {
		return fmt.Errorf("%d of %d bases failed", n, len(s.Outcomes))
	}
	return nil
}

// WriteJSON writes the summary as indented JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// verb is the outcome's first column.
func (s *Summary) verb(o *BaseOutcome) string {
	if o.Failed() {
		return "failed"
	}
	if s.DryRun {
		return string(o.Action)
	}
	switch o.Action {
	case Create:
		return "created"
	case Update:
		return "updated"
	case Skip:
		return "skipped"
	}
	return string(o.Action)
}

// WriteText writes one line per base, its pruned and kept tags, then the
// totals.
func (s *Summary) WriteText(w io.Writer) error {
	if s.DryRun {
		fmt.Fprintf(w, "plan for %s (dry run: nothing is written)\n\n", s.Repository)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	counts := map[string]int{}
	pruned, kept := 0, 0
	for i := range s.Outcomes {
		o := &s.Outcomes[i]
		verb := s.verb(o)
		counts[verb]++
		detail := o.Digest
		switch {
		case o.Failed():
			detail = o.Error
		case o.Action == Skip || o.Action == Conflict:
			detail = o.Reason
		case o.Forced:
			detail += " (" + o.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", verb, o.Base, detail)
		for _, n := range o.Notes {
			fmt.Fprintf(tw, "\t\tnote: %s\n", n)
		}
		prunedLabel := "pruned"
		if s.DryRun {
			prunedLabel = "would prune"
		}
		if len(o.Pruned) > 0 {
			fmt.Fprintf(tw, "\t\t%s: %s\n", prunedLabel, strings.Join(o.Pruned, ", "))
		}
		for _, k := range o.Kept {
			fmt.Fprintf(tw, "\t\tkept %s\n", k)
		}
		pruned += len(o.Pruned)
		kept += len(o.Kept)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	order := []string{"create", "created", "update", "updated", "unchanged", "conflict", "skip", "skipped", "failed"}
	var parts []string
	for _, v := range order {
		if counts[v] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no bases")
	}
	line := strings.Join(parts, ", ")
	if pruned+kept > 0 {
		verb := "pruned"
		if s.DryRun {
			verb = "to prune"
		}
		line += fmt.Sprintf("; %d tags %s, %d kept", pruned, verb, kept)
	}
	_, err := fmt.Fprintf(w, "\nsummary: %s\n", line)
	return err
}

// oneLine folds a multi-line message.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

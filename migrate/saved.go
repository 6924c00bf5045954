package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/manifold-proxy/manifold/index"
)

// MaxPlanBytes bounds a saved plan ReadPlan accepts.
const MaxPlanBytes = 64 << 20

// ReadPlan decodes a plan saved as `proxy inspect --json` writes it. It
// carries no index bytes: Verify inspects the registry again, and the
// deterministic index the proxy serves is identified by its digest.
func ReadPlan(r io.Reader) (*Plan, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxPlanBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the plan: %w", err)
	}
	if len(b) > MaxPlanBytes {
		return nil, fmt.Errorf("the plan is over %d bytes", MaxPlanBytes)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("the plan is not a plan `proxy inspect --json` wrote: %w", err)
	}
	if p.Repository == "" {
		return nil, errors.New("the plan names no repository")
	}
	seen := map[string]bool{}
	for _, g := range p.Groups {
		if !index.ValidTag(g.Base) {
			return nil, fmt.Errorf("the plan's base %q is not a valid tag", g.Base)
		}
		if seen[g.Base] {
			return nil, fmt.Errorf("the plan lists base %q twice", g.Base)
		}
		seen[g.Base] = true
		switch g.Migrate.Action {
		case Create, Update, Unchanged, Conflict, Skip:
		default:
			return nil, fmt.Errorf("the plan's base %q has action %q, not one inspect writes", g.Base, g.Migrate.Action)
		}
	}
	return &p, nil
}

// Verify checks a saved plan against the registry as it is now, before
// Apply: it inspects the plan's bases again, under this Migrator's
// policies, and returns that fresh plan. A base whose fresh plan differs
// from the saved one — another action, index, bare-tag digest, member
// digest or set of tags to prune — becomes Stale, its reason naming what
// changed, so Apply writes nothing for it. An error means nothing of the
// plan can be applied: another repository, another policy, a base gone.
func (m *Migrator) Verify(ctx context.Context, saved *Plan) (*Plan, error) {
	if saved.Repository != m.name {
		return nil, fmt.Errorf("the plan is for %s, not %s", saved.Repository, m.name)
	}
	if len(saved.Groups) == 0 {
		return nil, errors.New("the plan lists no bases")
	}
	bases := make([]string, len(saved.Groups))
	for i, g := range saved.Groups {
		bases[i] = g.Base
	}
	fresh, err := m.Inspect(ctx, bases...)
	if err != nil {
		return nil, fmt.Errorf("inspecting the plan's bases again: %w", err)
	}
	if fresh.Policy != saved.Policy || !slices.Equal(fresh.Require, saved.Require) {
		return nil, fmt.Errorf("the plan was made under bare-tag policy %s%s; the configuration now says %s%s",
			saved.Policy, requires(saved.Require), fresh.Policy, requires(fresh.Require))
	}
	was := map[string]*BasePlan{}
	for i := range saved.Groups {
		was[saved.Groups[i].Base] = &saved.Groups[i]
	}
	for i := range fresh.Groups {
		g := &fresh.Groups[i]
		if changes := changed(was[g.Base], g); len(changes) > 0 {
			g.Migrate = Change{Action: Stale, Reason: "stale plan: " + strings.Join(changes, "; ") + " since the plan was made (inspect again)"}
		}
	}
	return fresh, nil
}

func requires(ps []string) string {
	if len(ps) == 0 {
		return ""
	}
	return " (requires " + strings.Join(ps, ", ") + ")"
}

// changed lists what differs between a base as saved and as inspected now.
func changed(was, now *BasePlan) []string {
	var out []string
	if was.Migrate.Action != now.Migrate.Action {
		out = append(out, fmt.Sprintf("the action is %s, was %s", now.Migrate.Action, was.Migrate.Action))
	}
	if was.Migrate.Digest != now.Migrate.Digest {
		out = append(out, fmt.Sprintf("the index is %s, was %s", orNone(now.Migrate.Digest), orNone(was.Migrate.Digest)))
	}
	if was.BareDigest != now.BareDigest {
		out = append(out, fmt.Sprintf("the bare tag holds %s, held %s", orNone(now.BareDigest), orNone(was.BareDigest)))
	}
	before, after := memberDigests(was), memberDigests(now)
	for _, tag := range sortedKeys(before, after) {
		if before[tag] != after[tag] {
			out = append(out, fmt.Sprintf("%s points at %s, pointed at %s", tag, orNone(after[tag]), orNone(before[tag])))
		}
	}
	if !slices.Equal(was.Migrate.Prune, now.Migrate.Prune) {
		out = append(out, "the tags to prune changed")
	}
	return out
}

func memberDigests(g *BasePlan) map[string]string {
	m := make(map[string]string, len(g.Members))
	for _, r := range g.Members {
		m[r.Tag] = r.Digest
	}
	return m
}

func sortedKeys(a, b map[string]string) []string {
	union := maps.Clone(a)
	maps.Copy(union, b)
	return slices.Sorted(maps.Keys(union))
}

func orNone(d string) string {
	if d == "" {
		return "nothing"
	}
	return d
}

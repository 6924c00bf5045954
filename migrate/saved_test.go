package migrate_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/migratetest"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/migrate"
)

// save writes the plan as `proxy inspect --json` does and reads it back,
// as `proxy migrate --plan` does: nothing but the JSON travels.
func save(t *testing.T, p *migrate.Plan) *migrate.Plan {
	t.Helper()
	var buf bytes.Buffer
	if err := p.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	saved, err := migrate.ReadPlan(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return saved
}

// TestSavedPlanApplies: a plan saved as JSON and applied later, by another
// Migrator, writes the indexes the proxy served, with their digests.
func TestSavedPlanApplies(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	saved := save(t, inspect(t, newMigrator(t, reg, migrate.Options{}), "1.0-rc1", "legacy"))
	served, _, _ := migratetest.StartProxy(t, reg, nil).Get(t, repo, "1.0-rc1")

	m := newMigrator(t, reg, migrate.Options{})
	fresh, err := m.Verify(context.Background(), saved)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Apply(context.Background(), fresh, migrate.ApplyOptions{})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"1.0-rc1", "legacy"} {
		o, want := outcome(t, s, b), group(t, saved, b).Migrate.Digest
		if !o.Written || !o.Verified || o.Digest != want || reg.Head(t, repo, b) != want {
			t.Errorf("%s: %+v; registry holds %s, the plan said %s", b, o, reg.Head(t, repo, b), want)
		}
	}
	if reg.Head(t, repo, "1.0-rc1") != served {
		t.Errorf("1.0-rc1 holds %s, the proxy served %s", reg.Head(t, repo, "1.0-rc1"), served)
	}
}

// TestSavedPlanStale: a base that changed between the plan and its
// application — a member retagged — is refused, and nothing is written for
// it; the bases that did not change are applied.
func TestSavedPlanStale(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	saved := save(t, inspect(t, newMigrator(t, reg, migrate.Options{}), "1.0-rc1", "solo"))
	moved := reg.Push(t, repo, "1.0-rc1-linux-arm64", regtest.PlatformImage(t, "linux/arm64", true)).String()
	reg.Reset()

	m := newMigrator(t, reg, migrate.Options{})
	fresh, err := m.Verify(context.Background(), saved)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Apply(context.Background(), fresh, migrate.ApplyOptions{Prune: true})
	o := outcome(t, s, "1.0-rc1")
	if !o.Failed() || o.Written || o.Action != migrate.Stale || !strings.Contains(o.Error, "1.0-rc1-linux-arm64 points at "+moved) {
		t.Errorf("stale base: %+v", o)
	}
	if d := reg.Head(t, repo, "1.0-rc1"); d != "" {
		t.Errorf("a stale base was written: 1.0-rc1 holds %s", d)
	}
	if reg.Head(t, repo, "1.0-rc1-linux-amd64") == "" {
		t.Error("a member of a stale base was pruned")
	}
	if o := outcome(t, s, "solo"); !o.Written || !o.Verified {
		t.Errorf("unchanged base: %+v", o)
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "1 of 2 bases failed") {
		t.Errorf("Err: %v", err)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.HasPrefix(out, "failed") || !strings.Contains(out, "1.0-rc1  stale plan: ") || !strings.Contains(out, "1 created, 1 failed") {
		t.Errorf("text:\n%s", buf.String())
	}
}

// TestSavedPlanRefused: a plan for another repository, made under another
// policy, naming a base that is gone, or that is not a plan, is refused as
// a whole, before any write.
func TestSavedPlanRefused(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	plan := inspect(t, newMigrator(t, reg, migrate.Options{}), "1.0-rc1")
	reg.Reset()
	ctx := context.Background()

	other := save(t, plan)
	other.Repository = reg.Host + "/team/other"
	if _, err := newMigrator(t, reg, migrate.Options{}).Verify(ctx, other); err == nil || !strings.Contains(err.Error(), "the plan is for "+reg.Host+"/team/other, not "+reg.Host+"/"+repo) {
		t.Errorf("another repository: %v", err)
	}
	rules := index.Rules{{Pattern: "team/*", Policy: index.Override}}
	if _, err := newMigrator(t, reg, migrate.Options{Policies: rules}).Verify(ctx, save(t, plan)); err == nil || !strings.Contains(err.Error(), "made under bare-tag policy merge; the configuration now says override") {
		t.Errorf("another policy: %v", err)
	}
	gone := save(t, plan)
	gone.Groups[0].Base = "9.9"
	if _, err := newMigrator(t, reg, migrate.Options{}).Verify(ctx, gone); err == nil || !strings.Contains(err.Error(), `no tag "9.9"`) {
		t.Errorf("a base gone: %v", err)
	}
	if n := reg.Count(http.MethodPut, http.MethodDelete, http.MethodPost, http.MethodPatch); n != 0 {
		t.Errorf("%d writes", n)
	}

	for _, c := range []struct{ in, want string }{
		{`[]`, "not a plan"},
		{`{"groups":[]}`, "names no repository"},
		{`{"repository":"r/x","groups":[{"base":"-bad","migrate":{"action":"create"}}]}`, `base "-bad" is not a valid tag`},
		{`{"repository":"r/x","groups":[{"base":"1.0","migrate":{"action":"create"}},{"base":"1.0","migrate":{"action":"create"}}]}`, `lists base "1.0" twice`},
		{`{"repository":"r/x","groups":[{"base":"1.0","migrate":{"action":"stale"}}]}`, `action "stale", not one inspect writes`},
		{strings.Repeat(" ", migrate.MaxPlanBytes+1), "over"},
	} {
		if _, err := migrate.ReadPlan(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ReadPlan(%.40q): %v, want %q", c.in, err, c.want)
		}
	}
}

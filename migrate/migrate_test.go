package migrate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/migratetest"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/migrate"
	"github.com/manifold-proxy/manifold/upstream"
)

const repo = "team/app"

func newMigrator(t *testing.T, reg *regtest.Registry, o migrate.Options) *migrate.Migrator {
	t.Helper()
	o.Client = reg.Client(t)
	if o.Repository == "" {
		o.Repository = repo
	}
	m, err := migrate.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func inspect(t *testing.T, m *migrate.Migrator, bases ...string) *migrate.Plan {
	t.Helper()
	r, err := m.Inspect(context.Background(), bases...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func group(t *testing.T, r *migrate.Plan, base string) migrate.BasePlan {
	t.Helper()
	for _, g := range r.Groups {
		if g.Base == base {
			return g
		}
	}
	t.Fatalf("no group %q in report", base)
	return migrate.BasePlan{}
}

func member(t *testing.T, g migrate.BasePlan, tag string) migrate.MemberRow {
	t.Helper()
	for _, m := range g.Members {
		if m.Tag == tag {
			return m
		}
	}
	t.Fatalf("%s: no member %q", g.Base, tag)
	return migrate.MemberRow{}
}

func outcome(t *testing.T, s *migrate.Summary, base string) migrate.BaseOutcome {
	t.Helper()
	for _, o := range s.Outcomes {
		if o.Base == base {
			return o
		}
	}
	t.Fatalf("no outcome for %q", base)
	return migrate.BaseOutcome{}
}

func TestInspect(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, repo)
	px := migratetest.StartProxy(t, reg, nil)
	m := newMigrator(t, reg, migrate.Options{})
	r := inspect(t, m)

	var bases []string
	for _, g := range r.Groups {
		bases = append(bases, g.Base)
	}
	if want := []string{"1.0-rc1", "2.0", "3.0", "legacy", "solo"}; !slices.Equal(bases, want) {
		t.Fatalf("bases %v, want %v", bases, want)
	}
	if want := []string{"linux/amd64", "linux/arm/v7", "linux/arm64/v8"}; !slices.Equal(r.Platforms, want) {
		t.Errorf("platforms %v, want %v", r.Platforms, want)
	}
	// Every index the report says the proxy serves is the proxy's.
	for _, g := range r.Groups {
		d, _, status := px.Get(t, repo, g.Base)
		if status != http.StatusOK || g.Index == nil || g.Index.Digest != d {
			t.Errorf("%s: report says %+v, proxy serves %s (HTTP %d)", g.Base, g.Index, d, status)
		}
		if g.Migrate.Digest != d {
			t.Errorf("%s: migrate would write %s, proxy serves %s", g.Base, g.Migrate.Digest, d)
		}
	}

	// A base with a dash: three platforms, all listed.
	g := group(t, r, "1.0-rc1")
	if g.Bare != "absent" || g.State != migrate.StateAbsent || g.Migrate.Action != migrate.Create || len(g.Members) != 3 {
		t.Errorf("1.0-rc1: %+v", g)
	}
	for _, mm := range g.Members {
		if !mm.Included || mm.Problem != "" || mm.Digest != l.Digests[mm.Tag] {
			t.Errorf("1.0-rc1 member %+v", mm)
		}
	}
	if p := member(t, g, "1.0-rc1-linux-arm-v7").Platform; p != "linux/arm/v7" {
		t.Errorf("arm member platform %q", p)
	}

	// The legacy bare tag joins the index (merge).
	g = group(t, r, "legacy")
	bare := member(t, g, "legacy")
	if g.Bare != "image" || g.State != migrate.StateWouldChange || g.Migrate.Action != migrate.Update ||
		!bare.Bare || !bare.Included || bare.Platform != "linux/amd64" || bare.Digest != l.Digests["legacy"] {
		t.Errorf("legacy: %+v", g)
	}

	// The mislabeled member is left out, with why.
	g = group(t, r, "2.0")
	bad := member(t, g, "2.0-linux-arm64")
	if bad.Included || !strings.Contains(bad.Problem, "config says linux/amd64, tag says linux/arm64") {
		t.Errorf("mislabeled member: %+v", bad)
	}
	if !slices.ContainsFunc(g.Problems, func(p string) bool { return strings.Contains(p, "2.0-linux-arm64 left out") }) {
		t.Errorf("2.0 problems: %q", g.Problems)
	}
	if slices.Contains(g.Migrate.Prune, "2.0-linux-arm64") || !slices.Contains(g.Migrate.Prune, "2.0-linux-amd64") {
		t.Errorf("2.0 prune %q", g.Migrate.Prune)
	}

	// A group of one is an index of one.
	g = group(t, r, "solo")
	if len(g.Members) != 1 || !g.Members[0].Included || g.Migrate.Action != migrate.Create {
		t.Errorf("solo: %+v", g)
	}

	// A member index is flattened: included, reported, never pruned.
	g = group(t, r, "3.0")
	mi := member(t, g, "3.0-linux-amd64")
	if !mi.Included || !strings.Contains(mi.Note, "flattened to 1 image and 1 attestation") || g.Index.MediaType != string(types.OCIImageIndex) {
		t.Errorf("member index: %+v in %+v", mi, g)
	}
	if slices.Contains(g.Migrate.Prune, "3.0-linux-amd64") {
		t.Errorf("a member index would be pruned: %q", g.Migrate.Prune)
	}
}

func TestInspectExpect(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	m := newMigrator(t, reg, migrate.Options{Expect: []v1.Platform{
		{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "linux", Architecture: "s390x"},
	}})
	r := inspect(t, m, "solo", "2.0")
	if len(r.Groups) != 2 {
		t.Fatalf("%d groups", len(r.Groups))
	}
	if got, want := group(t, r, "solo").Missing, []string{"linux/arm64/v8", "linux/s390x"}; !slices.Equal(got, want) {
		t.Errorf("solo missing %q, want %q", got, want)
	}
	// The mislabeled arm64 member does not count.
	if got, want := group(t, r, "2.0").Missing, []string{"linux/arm64/v8", "linux/s390x"}; !slices.Equal(got, want) {
		t.Errorf("2.0 missing %q, want %q", got, want)
	}
	if !slices.Contains(r.Platforms, "linux/s390x") {
		t.Errorf("expected platforms are columns: %q", r.Platforms)
	}
}

func TestInspectTableAndJSON(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, repo)
	r := inspect(t, newMigrator(t, reg, migrate.Options{}))

	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	short := func(tag string) string { return strings.TrimPrefix(l.Digests[tag], "sha256:")[:12] }
	rowOf := func(base string) string {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, base+" ") {
				return line
			}
		}
		t.Fatalf("no row for %s in\n%s", base, out)
		return ""
	}
	for _, want := range []string{"BASE", "BARE", "PROXY SERVES", "MIGRATE", "linux/amd64", "linux/arm/v7", "linux/arm64/v8"} {
		if !strings.Contains(out, want) {
			t.Errorf("table has no %q:\n%s", want, out)
		}
	}
	if row := rowOf("1.0-rc1"); !strings.Contains(row, short("1.0-rc1-linux-arm-v7")) || !strings.Contains(row, "absent") || !strings.Contains(row, "create") {
		t.Errorf("1.0-rc1 row: %q", row)
	}
	if row := rowOf("legacy"); !strings.Contains(row, "would change") || !strings.Contains(row, short("legacy")) || !strings.Contains(row, "update") {
		t.Errorf("legacy row: %q", row)
	}
	if row := rowOf("2.0"); !strings.Contains(row, short("2.0-linux-arm64")+"!") {
		t.Errorf("2.0 row marks no excluded member: %q", row)
	}
	if row := rowOf("3.0"); !strings.Contains(row, short("3.0-linux-amd64")+"*") {
		t.Errorf("3.0 row marks no member index: %q", row)
	}
	for _, want := range []string{
		"2.0: 2.0-linux-arm64 left out: config says linux/amd64, tag says linux/arm64",
		"3.0: 3.0-linux-amd64 is an index, flattened to 1 image and 1 attestation",
		"5 bases, 9 member tags, 2 problems",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table has no %q:\n%s", want, out)
		}
	}

	// The JSON layout scripts rely on.
	buf.Reset()
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Repository string `json:"repository"`
		Groups     []struct {
			Base  string           `json:"base"`
			Bare  string           `json:"bare"`
			Index *json.RawMessage `json:"index"`
			// Members as raw maps, to see that every key is there.
			Members []map[string]any `json:"members"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Repository != reg.Host+"/"+repo || len(doc.Groups) != 5 {
		t.Fatalf("json: %s", buf.Bytes())
	}
	for _, g := range doc.Groups {
		if g.Index == nil {
			t.Errorf("%s: index is null", g.Base)
			continue
		}
		var idx map[string]any
		if err := json.Unmarshal(*g.Index, &idx); err != nil || !strings.HasPrefix(idx["digest"].(string), "sha256:") || idx["mediaType"] == "" {
			t.Errorf("%s: index %s", g.Base, *g.Index)
		}
		for _, mm := range g.Members {
			for _, k := range []string{"tag", "platform", "digest", "included", "problem"} {
				if _, ok := mm[k]; !ok {
					t.Errorf("%s: member %v has no %q", g.Base, mm, k)
				}
			}
		}
	}
	if doc.Groups[3].Bare != "image" || doc.Groups[0].Bare != "absent" {
		t.Errorf("bare: %s, %s", doc.Groups[3].Bare, doc.Groups[0].Bare)
	}
}

func TestInspectErrors(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	_, err := newMigrator(t, reg, migrate.Options{Repository: "no/such"}).Inspect(context.Background())
	if err == nil || err.Error() != reg.Host+"/no/such: repository not found" {
		t.Errorf("unknown repository: %v", err)
	}
	_, err = newMigrator(t, reg, migrate.Options{}).Inspect(context.Background(), "9.9")
	if err == nil || !strings.Contains(err.Error(), `no tag "9.9" and no per-platform tags`) {
		t.Errorf("unknown base: %v", err)
	}
}

func TestMigrateDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	before := reg.Snapshot(t, repo)
	reg.Reset()
	m := newMigrator(t, reg, migrate.Options{})
	s := m.Apply(context.Background(), inspect(t, m), migrate.ApplyOptions{DryRun: true, Prune: true, Force: true})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if n := reg.Count(http.MethodPut, http.MethodDelete, http.MethodPost, http.MethodPatch); n != 0 {
		t.Errorf("a dry run made %d write requests", n)
	}
	if after := reg.Snapshot(t, repo); !maps.Equal(before, after) {
		t.Errorf("a dry run changed the repository:\nbefore %v\nafter  %v", before, after)
	}
	if o := outcome(t, s, "1.0-rc1"); o.Action != migrate.Create || o.Written || len(o.Pruned) != 3 {
		t.Errorf("dry-run outcome %+v", o)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "dry run: nothing is written") || !strings.Contains(out, "would prune: 1.0-rc1-linux-amd64") ||
		!strings.Contains(out, "summary: 4 create, 1 update; 7 tags to prune, 2 kept") {
		t.Errorf("dry-run text:\n%s", out)
	}
}

// TestMigrateMatchesProxy: the indexes migrate writes have the digests the
// proxy served, the proxy serves the same bytes afterwards, and a second
// migration changes nothing.
func TestMigrateMatchesProxy(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, repo)
	bases := []string{"1.0-rc1", "2.0", "3.0", "legacy", "solo"}
	served := map[string][]byte{}
	digests := map[string]string{}
	px := migratetest.StartProxy(t, reg, nil)
	for _, b := range bases {
		d, body, status := px.Get(t, repo, b)
		if status != http.StatusOK {
			t.Fatalf("proxy GET %s: %d", b, status)
		}
		served[b], digests[b] = body, d
	}

	m := newMigrator(t, reg, migrate.Options{})
	s := m.Apply(context.Background(), inspect(t, m), migrate.ApplyOptions{})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for _, b := range bases {
		o := outcome(t, s, b)
		if !o.Written || !o.Verified || o.Digest != digests[b] {
			t.Errorf("%s: %+v, proxy served %s", b, o, digests[b])
		}
		if got := reg.Head(t, repo, b); got != digests[b] {
			t.Errorf("%s: registry holds %s, proxy served %s", b, got, digests[b])
		}
		// A fresh proxy now passes the real index through: same bytes.
		d, body, _ := migratetest.StartProxy(t, reg, nil).Get(t, repo, b)
		if d != digests[b] || !bytes.Equal(body, served[b]) {
			t.Errorf("%s: after migration the proxy serves %s, before %s", b, d, digests[b])
		}
	}
	if o := outcome(t, s, "legacy"); o.Action != migrate.Update {
		t.Errorf("legacy: %+v", o)
	}
	// Nothing was pruned or lost: every member and the former bare image
	// are still there by digest.
	for tag, d := range l.Digests {
		if tag != "legacy" && reg.Head(t, repo, tag) != d {
			t.Errorf("%s moved", tag)
		}
		if reg.Head(t, repo, d) != d {
			t.Errorf("%s (%s) is gone", tag, d)
		}
	}

	// Again (the same Migrator: Inspect takes a fresh snapshot): nothing
	// to do.
	before := reg.Snapshot(t, repo)
	reg.Reset()
	s = m.Apply(context.Background(), inspect(t, m), migrate.ApplyOptions{})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for _, o := range s.Outcomes {
		if o.Action != migrate.Unchanged || o.Written || o.Digest != digests[o.Base] {
			t.Errorf("second run: %+v", o)
		}
	}
	if n := reg.Count(http.MethodPut, http.MethodDelete); n != 0 {
		t.Errorf("second run made %d writes", n)
	}
	if after := reg.Snapshot(t, repo); !maps.Equal(before, after) {
		t.Errorf("second run changed tags")
	}
}

func TestMigratePolicies(t *testing.T) {
	t.Parallel()
	for _, p := range []index.Policy{index.Merge, index.Override, index.Fallback, index.Off} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			reg := regtest.NewRegistry(t)
			l := migratetest.SeedLegacy(t, reg, repo)
			rules := index.Rules{{Pattern: "other/*", Policy: index.Off}, {Pattern: "team/*", Policy: p}}
			d, _, status := migratetest.StartProxy(t, reg, rules).Get(t, repo, "legacy")
			m := newMigrator(t, reg, migrate.Options{Policies: rules})
			r := inspect(t, m, "legacy")
			g := r.Groups[0]
			s := m.Apply(context.Background(), r, migrate.ApplyOptions{})
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			o := s.Outcomes[0]
			switch p {
			case index.Merge, index.Override:
				if o.Action != migrate.Update || reg.Head(t, repo, "legacy") != d || g.Index.Digest != d {
					t.Errorf("%s: %+v; proxy served %s", p, o, d)
				}
				if p == index.Override && strings.Contains(g.Migrate.Notes[0], "listed") {
					t.Errorf("override keeps the bare image: %q", g.Migrate.Notes)
				}
			case index.Fallback, index.Off:
				// The proxy passes the single-platform bare tag through.
				if status != http.StatusOK || d != l.Digests["legacy"] || g.Serves != "upstream" || g.Index != nil {
					t.Errorf("proxy served %s (%d), report %+v", d, status, g)
				}
				if o.Action != migrate.Skip || o.Written || !strings.Contains(o.Reason, "proxy serves upstream's tag") {
					t.Errorf("%s: %+v", p, o)
				}
				if g.State != migrate.StateSinglePlatform || len(g.Members) != 1 {
					t.Errorf("%s: state %q, members %+v", p, g.State, g.Members)
				}
				if reg.Head(t, repo, "legacy") != l.Digests["legacy"] {
					t.Errorf("%s: the bare tag moved", p)
				}
			}
		})
	}
}

func TestMigrateConflict(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	amd := reg.Push(t, repo, "4.0-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	arm := reg.Push(t, repo, "4.0-linux-arm64", regtest.PlatformImage(t, "linux/arm64", false))
	other, err := random.Index(64, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	theirs := reg.Push(t, repo, "4.0", other).String()
	d, _, _ := migratetest.StartProxy(t, reg, nil).Get(t, repo, "4.0")
	if d != theirs {
		t.Fatalf("the proxy should pass the real index through: %s, want %s", d, theirs)
	}

	m := newMigrator(t, reg, migrate.Options{})
	r := inspect(t, m)
	g := group(t, r, "4.0")
	if g.Bare != "index" || g.State != migrate.StateWouldChange || g.Migrate.Action != migrate.Conflict ||
		g.Index == nil || g.Index.Digest != theirs || g.Index.Synthesized || len(g.Members) != 2 {
		t.Fatalf("conflict report: %+v", g)
	}
	if !strings.Contains(g.Migrate.Reason, "only the members have linux/amd64, linux/arm64") {
		t.Errorf("reason %q", g.Migrate.Reason)
	}
	reg.Reset()
	s := m.Apply(context.Background(), r, migrate.ApplyOptions{Prune: true})
	if o := s.Outcomes[0]; s.Err() != nil || o.Action != migrate.Conflict || o.Written || len(o.Pruned) > 0 {
		t.Errorf("unforced conflict: %+v", o)
	}
	if reg.Count(http.MethodPut, http.MethodDelete) != 0 || reg.Head(t, repo, "4.0") != theirs {
		t.Fatal("an unforced conflict wrote something")
	}

	s = m.Apply(context.Background(), r, migrate.ApplyOptions{Force: true})
	o := s.Outcomes[0]
	if s.Err() != nil || o.Action != migrate.Update || !o.Forced || !o.Written || !o.Verified || o.Digest != g.Migrate.Digest {
		t.Fatalf("forced: %+v", o)
	}
	// The forced index is the members' index, as if the bare tag had been absent.
	c := reg.Client(t)
	b, _, err := c.Manifest(context.Background(), repo, mustHash(t, reg.Head(t, repo, "4.0")), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var listed []v1.Hash
	for _, d := range idx.Manifests {
		listed = append(listed, d.Digest)
	}
	if len(listed) != 2 || !slices.Contains(listed, amd) || !slices.Contains(listed, arm) {
		t.Errorf("forced index lists %v", listed)
	}
	// The replaced index is still there by digest.
	if reg.Head(t, repo, theirs) != theirs {
		t.Error("the replaced index is gone")
	}

	m = newMigrator(t, reg, migrate.Options{})
	if s := m.Apply(context.Background(), inspect(t, m), migrate.ApplyOptions{}); s.Outcomes[0].Action != migrate.Unchanged {
		t.Errorf("after force: %+v", s.Outcomes[0])
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestInspectDuplicates(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	arm := reg.Push(t, repo, "5.0-linux-arm64", regtest.PlatformImage(t, "linux/arm64", false)).String()
	loser := reg.Push(t, repo, "5.0-linux-arm64-v8", regtest.PlatformImage(t, "linux/arm64/v8", false)).String()
	amd := reg.Push(t, repo, "5.0-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false)).String()
	bare := reg.Push(t, repo, "5.0", regtest.PlatformImage(t, "linux/amd64", false)).String()
	d, _, _ := migratetest.StartProxy(t, reg, nil).Get(t, repo, "5.0")

	r := inspect(t, newMigrator(t, reg, migrate.Options{}))
	g := group(t, r, "5.0")
	if g.Index == nil || g.Index.Digest != d || g.Migrate.Action != migrate.Update {
		t.Fatalf("report %+v, proxy serves %s", g, d)
	}
	for _, c := range []struct {
		tag, digest string
		included    bool
		problem     string
	}{
		{"5.0", bare, false, "duplicate platform linux/amd64, 5.0-linux-amd64 wins"},
		{"5.0-linux-amd64", amd, true, ""},
		{"5.0-linux-arm64", arm, true, ""},
		{"5.0-linux-arm64-v8", loser, false, "duplicate platform linux/arm64/v8, 5.0-linux-arm64 wins"},
	} {
		m := member(t, g, c.tag)
		if m.Digest != c.digest || m.Included != c.included || m.Problem != c.problem {
			t.Errorf("%s: %+v, want included=%v problem %q", c.tag, m, c.included, c.problem)
		}
	}
	// The bare image is not in the index: migrate says it loses its tag.
	if len(g.Migrate.Notes) != 1 || !strings.Contains(g.Migrate.Notes[0], bare+" is no longer tagged") {
		t.Errorf("notes %q", g.Migrate.Notes)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), strings.TrimPrefix(arm, "sha256:")[:12]+"+") || !strings.Contains(buf.String(), "+ several tags for this platform") {
		t.Errorf("table:\n%s", buf.String())
	}
}

// Partial sets: a base missing a required platform gets no index from the
// proxy, so migrate writes none.
func TestMigrateRequire(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	rules := index.Rules{{Pattern: "team/*", Policy: index.Merge, Require: []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}}}}
	px := migratetest.StartProxy(t, reg, rules)
	m := newMigrator(t, reg, migrate.Options{Policies: rules})
	r := inspect(t, m)
	if want := []string{"linux/amd64", "linux/arm64/v8"}; !slices.Equal(r.Require, want) {
		t.Errorf("require %q", r.Require)
	}
	s := m.Apply(context.Background(), r, migrate.ApplyOptions{})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		base   string
		action migrate.Step
	}{
		{"1.0-rc1", migrate.Create}, {"legacy", migrate.Update}, {"3.0", migrate.Create},
		{"solo", migrate.Skip}, {"2.0", migrate.Skip}, // 2.0's arm64 member is mislabeled
	} {
		g, o := group(t, r, c.base), outcome(t, s, c.base)
		d, _, status := px.Get(t, repo, c.base)
		switch c.action {
		case migrate.Skip:
			if o.Action != migrate.Skip || !strings.Contains(o.Reason, "incomplete") || g.Serves != "nothing" || status != http.StatusNotFound ||
				!slices.Equal(g.Incomplete, []string{"linux/arm64/v8"}) {
				t.Errorf("%s: %+v, incomplete %q, proxy %d", c.base, o, g.Incomplete, status)
			}
			if reg.Head(t, repo, c.base) != "" {
				t.Errorf("%s was written", c.base)
			}
		default:
			if o.Action != c.action || !o.Written || o.Digest != d {
				t.Errorf("%s: %+v, proxy serves %s", c.base, o, d)
			}
		}
	}
}

// Through a manifold proxy, with synthesis turned off per request
// (upstream.HeaderSynthesis), inspect sees what the registry behind it
// holds and migrate writes there: the same report and the same digests as
// when talking to the registry directly.
func TestThroughProxy(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	px := migratetest.StartProxy(t, reg, nil)
	c, err := upstream.New(upstream.Options{URL: px.URL, Header: http.Header{upstream.HeaderSynthesis: {"off"}}})
	if err != nil {
		t.Fatal(err)
	}
	through, err := migrate.New(migrate.Options{Client: c, Repository: repo})
	if err != nil {
		t.Fatal(err)
	}
	viaProxy := inspect(t, through)
	direct := inspect(t, newMigrator(t, reg, migrate.Options{}))
	if len(viaProxy.Groups) != len(direct.Groups) || len(direct.Groups) == 0 {
		t.Fatalf("groups: %d through the proxy, %d direct", len(viaProxy.Groups), len(direct.Groups))
	}
	for i, g := range viaProxy.Groups {
		d := direct.Groups[i]
		if g.Base != d.Base || g.State != d.State || g.Migrate.Action != d.Migrate.Action || (g.Index == nil) != (d.Index == nil) ||
			(g.Index != nil && g.Index.Digest != d.Index.Digest) {
			t.Errorf("%s: through the proxy %+v, direct %+v", g.Base, g, d)
		}
	}
	s := through.Apply(context.Background(), viaProxy, migrate.ApplyOptions{})
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	for _, o := range s.Outcomes {
		if o.Written && reg.Head(t, repo, o.Base) != o.Digest {
			t.Errorf("%s: migrate through the proxy wrote %s, the registry has %s", o.Base, o.Digest, reg.Head(t, repo, o.Base))
		}
	}
}

// A base migrated under merge whose members change afterwards: the proxy
// passes the written index through, so it is a conflict; --force writes
// the members' index and says which image it drops.
func TestMigrateNewMemberAfterMigration(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, repo)
	m := newMigrator(t, reg, migrate.Options{})
	if s := m.Apply(context.Background(), inspect(t, m, "legacy"), migrate.ApplyOptions{}); s.Err() != nil || s.Outcomes[0].Action != migrate.Update {
		t.Fatalf("first run: %+v", s.Outcomes)
	}
	s390x := reg.Push(t, repo, "legacy-linux-s390x", regtest.PlatformImage(t, "linux/s390x", false)).String()
	m = newMigrator(t, reg, migrate.Options{})
	r := inspect(t, m, "legacy")
	g := r.Groups[0]
	if g.Migrate.Action != migrate.Conflict || g.State != migrate.StateWouldChange || !strings.Contains(g.Migrate.Reason, "only the members have linux/s390x") {
		t.Fatalf("after a new member: %+v", g.Migrate)
	}
	if len(g.Migrate.Notes) != 1 || !strings.Contains(g.Migrate.Notes[0], l.Digests["legacy"]+" (linux/amd64)") {
		t.Errorf("notes %q", g.Migrate.Notes)
	}
	s := m.Apply(context.Background(), r, migrate.ApplyOptions{Force: true})
	if o := s.Outcomes[0]; s.Err() != nil || !o.Forced || !o.Written {
		t.Fatalf("forced: %+v", o)
	}
	b, _, err := reg.Client(t).Manifest(context.Background(), repo, mustHash(t, reg.Head(t, repo, "legacy")), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), s390x) || strings.Contains(string(b), l.Digests["legacy"]) {
		t.Errorf("forced index %s", b)
	}
}

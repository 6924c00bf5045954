package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/internal/migratetest"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/migrate"
)

var legacyBases = []string{"1.0-rc1", "2.0", "3.0", "legacy", "solo"}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, "team/app")
	target := reg.Host + "/team/app"
	px := migratetest.StartProxy(t, reg, nil)
	served := map[string]string{}
	for _, b := range legacyBases {
		served[b], _, _ = px.Get(t, "team/app", b)
	}

	// The dry run prints the plan and writes nothing.
	before := reg.Snapshot(t, "team/app")
	reg.Reset()
	out, _, err := execRoot(t, "migrate", target, "--dry-run", "--prune-suffixed")
	if err != nil {
		t.Fatal(err)
	}
	if n := reg.Count(http.MethodPut, http.MethodDelete); n != 0 {
		t.Errorf("dry run: %d writes", n)
	}
	if !maps.Equal(before, reg.Snapshot(t, "team/app")) {
		t.Error("dry run changed tags")
	}
	for _, want := range []string{
		"plan for " + target + " (dry run: nothing is written)",
		"would prune: 1.0-rc1-linux-amd64, 1.0-rc1-linux-arm-v7, 1.0-rc1-linux-arm64",
		"kept 2.0-linux-arm64: not in the index (config says linux/amd64, tag says linux/arm64)",
		"summary: 4 create, 1 update; 7 tags to prune, 2 kept",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run: no %q in\n%s", want, out)
		}
	}
	if row := rowOf(t, out, "update"); row[1] != "legacy" || row[2] != served["legacy"] {
		t.Errorf("dry-run legacy row %q, proxy serves %s", row, served["legacy"])
	}

	// The migration writes what the proxy served.
	out, _, err = execRoot(t, "migrate", target)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range legacyBases {
		if got := reg.Head(t, "team/app", b); got != served[b] {
			t.Errorf("%s: registry holds %s, proxy served %s", b, got, served[b])
		}
		if !hasLine(out, verbFor(b), b, served[b]) {
			t.Errorf("no line %q in\n%s", verbFor(b)+" "+b+" "+served[b], out)
		}
	}
	if !strings.Contains(out, "summary: 4 created, 1 updated") {
		t.Errorf("summary:\n%s", out)
	}

	// Again: unchanged, nothing written.
	reg.Reset()
	out, _, err = execRoot(t, "migrate", target, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s migrate.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(s.Outcomes) != len(legacyBases) {
		t.Fatalf("%d outcomes", len(s.Outcomes))
	}
	for _, o := range s.Outcomes {
		if o.Action != migrate.Unchanged || o.Written || !o.Verified || o.Digest != served[o.Base] {
			t.Errorf("second run: %+v", o)
		}
	}
	if n := reg.Count(http.MethodPut, http.MethodDelete); n != 0 {
		t.Errorf("second run: %d writes", n)
	}
}

// hasLine reports whether out has a line whose words are words.
func hasLine(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if slices.Equal(strings.Fields(line), words) {
			return true
		}
	}
	return false
}

func verbFor(base string) string {
	if base == "legacy" {
		return "updated"
	}
	return "created"
}

func TestMigrateCommandPrune(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, "team/app")
	target := reg.Host + "/team/app"

	_, _, err := execRoot(t, "migrate", target, "--prune-suffixed")
	if err == nil || !strings.Contains(err.Error(), "add --yes to confirm") {
		t.Fatalf("prune without --yes: %v", err)
	}
	if reg.Count(http.MethodPut, http.MethodDelete) != 0 {
		t.Fatal("prune without --yes wrote")
	}
	out, _, err := execRoot(t, "migrate", target, "--tag", "1.0-rc1,solo", "--prune-suffixed", "--yes")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "pruned: 1.0-rc1-linux-amd64, 1.0-rc1-linux-arm-v7, 1.0-rc1-linux-arm64") ||
		!strings.Contains(out, "summary: 2 created; 4 tags pruned, 0 kept") {
		t.Errorf("output:\n%s", out)
	}
	tags := reg.Tags(t, "team/app")
	for _, gone := range []string{"1.0-rc1-linux-amd64", "solo-linux-amd64"} {
		if slices.Contains(tags, gone) {
			t.Errorf("%s is still tagged", gone)
		}
		if reg.Head(t, "team/app", l.Digests[gone]) == "" {
			t.Errorf("%s's manifest is gone", gone)
		}
	}
	// Bases not named are untouched.
	if !slices.Contains(tags, "2.0-linux-amd64") || slices.Contains(tags, "2.0") {
		t.Errorf("--tag touched other bases: %v", tags)
	}
}

func TestMigrateCommandConfigPolicy(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, "team/app")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("policies:\n  - repositories: \"team/*\"\n    bareTag: fallback\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := execRoot(t, "migrate", reg.Host+"/team/app:legacy", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if row := rowOf(t, out, "skipped"); row[1] != "legacy" || !strings.Contains(out, "proxy serves upstream's tag (policy fallback") {
		t.Errorf("output:\n%s", out)
	}
	if reg.Head(t, "team/app", "legacy") != l.Digests["legacy"] {
		t.Error("the bare tag moved")
	}
	// override: the index without the bare image, as the proxy serves it.
	if err := os.WriteFile(cfg, []byte("policies:\n  - repositories: \"team/*\"\n    bareTag: override\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _, _ := migratetest.StartProxy(t, reg, index.Rules{{Pattern: "team/*", Policy: index.Override}}).Get(t, "team/app", "legacy")
	if _, _, err := execRoot(t, "migrate", reg.Host+"/team/app", "--tag", "legacy", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	if got := reg.Head(t, "team/app", "legacy"); got != d {
		t.Errorf("override: registry holds %s, proxy served %s", got, d)
	}
}

func TestMigrateCommandConflict(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	reg.Push(t, "team/app", "4.0-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	idx, err := random.Index(64, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	theirs := reg.Push(t, "team/app", "4.0", idx).String()
	target := reg.Host + "/team/app"

	out, _, err := execRoot(t, "migrate", target)
	if err != nil {
		t.Fatalf("a conflict is not a failure: %v", err)
	}
	if row := rowOf(t, out, "conflict"); row[1] != "4.0" || !strings.Contains(out, "--force replaces it") {
		t.Errorf("output:\n%s", out)
	}
	if reg.Head(t, "team/app", "4.0") != theirs {
		t.Fatal("an unforced conflict was written")
	}
	out, _, err = execRoot(t, "migrate", target, "--force")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "forced: replaces "+theirs) || reg.Head(t, "team/app", "4.0") == theirs {
		t.Errorf("forced:\n%s", out)
	}
}

// A base that fails makes the command fail after the others are done.
func TestMigrateCommandFailure(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, "team/app")
	putSolo := func(r *http.Request) bool {
		return r.Method == http.MethodPut && r.URL.Path == "/v2/team/app/manifests/solo"
	}
	reg.SetFault(regtest.Refuse(putSolo, http.StatusForbidden, "DENIED", "requested access to the resource is denied"))
	out, _, err := execRoot(t, "migrate", reg.Host+"/team/app")
	if err == nil || err.Error() != "1 of 5 bases failed" {
		t.Fatalf("error %v", err)
	}
	if row := rowOf(t, out, "failed"); row[1] != "solo" || !strings.Contains(out, "DENIED") || !strings.Contains(out, "summary: 3 created, 1 updated, 1 failed") {
		t.Errorf("output:\n%s", out)
	}
}

func TestBaseBar(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	b := &baseBar{w: &buf, tty: true, tenth: map[string]int{}}
	b.update(migrate.Progress{Phase: "inspect", Done: 1, Total: 4, Base: "1.0"})
	b.update(migrate.Progress{Phase: "inspect", Done: 4, Total: 4, Base: "2.0"})
	b.finish()
	want := "\r\x1b[Kinspecting [=======>                      ] 1/4 1.0" +
		"\r\x1b[Kinspecting [==============================] 4/4 2.0" + "\r\x1b[K"
	if buf.String() != want {
		t.Errorf("tty bar:\n got %q\nwant %q", buf.String(), want)
	}

	buf.Reset()
	b = &baseBar{w: &buf, tenth: map[string]int{}}
	for i := 1; i <= 5; i++ {
		b.update(migrate.Progress{Phase: "migrate", Done: i, Total: 5})
	}
	if buf.Len() != 0 {
		t.Errorf("plain lines for a short repository: %q", buf.String())
	}
	for i := 1; i <= 40; i++ {
		b.update(migrate.Progress{Phase: "migrate", Done: i, Total: 40})
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 10 || lines[0] != "migrating: 4/40 bases" || lines[9] != "migrating: 40/40 bases" {
		t.Errorf("plain lines %q", lines)
	}
}

func TestParseRepoArg(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, url, repo, base string
		insecure            bool
	}{
		{in: "127.0.0.1:5000/team/app", url: "http://127.0.0.1:5000", repo: "team/app"},
		{in: "localhost:5000/app:1.0-rc1", url: "http://localhost:5000", repo: "app", base: "1.0-rc1"},
		{in: "[::1]:5000/app", url: "http://[::1]:5000", repo: "app"},
		{in: "registry.example.com/team/app:1.4", url: "https://registry.example.com", repo: "team/app", base: "1.4"},
		{in: "10.0.0.7:5000/app", url: "https://10.0.0.7:5000", repo: "app"},
		{in: "10.0.0.7:5000/app", url: "http://10.0.0.7:5000", repo: "app", insecure: true},
		{in: "docker.io/library/ubuntu", url: "https://index.docker.io", repo: "library/ubuntu"},
	} {
		r, base, err := parseRepoArg(c.in, c.insecure)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if u := registryURL(r.Registry, c.insecure); u != c.url || r.RepositoryStr() != c.repo || base != c.base {
			t.Errorf("%s: %s %s %q, want %s %s %q", c.in, u, r.RepositoryStr(), base, c.url, c.repo, c.base)
		}
	}
}

// TestMigrateCommandPlan: inspect --json saved to a file, reviewed, then
// migrate --plan writes it; a plan gone stale writes nothing and fails;
// the flags that contradict a plan are refused.
func TestMigrateCommandPlan(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, "team/app")
	target := reg.Host + "/team/app"
	served, _, _ := migratetest.StartProxy(t, reg, nil).Get(t, "team/app", "1.0-rc1")

	plan, _, err := execRoot(t, "inspect", target+":1.0-rc1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(file, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := execRoot(t, "migrate", "--plan", file)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if row := rowOf(t, out, "created"); row[1] != "1.0-rc1" || row[2] != served || reg.Head(t, "team/app", "1.0-rc1") != served {
		t.Errorf("output:\n%s", out)
	}

	// Saved now, stale after a member moves.
	plan, _, err = execRoot(t, "inspect", target+":solo", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	reg.Push(t, "team/app", "solo-linux-amd64", regtest.PlatformImage(t, "linux/amd64", true))
	out, _, err = execRoot(t, "migrate", "--plan", file)
	if err == nil || err.Error() != "1 of 1 bases failed" || !strings.Contains(out, "stale plan: ") || reg.Head(t, "team/app", "solo") != "" {
		t.Errorf("stale plan: %v\n%s", err, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--plan", file, target}, "--plan names the repository and its bases: give no REGISTRY/REPO"},
		{[]string{"migrate", "--plan", file, "--tag", "solo"}, "--plan names the bases: give no --tag"},
		{[]string{"migrate", "--plan", filepath.Join(t.TempDir(), "none.json")}, "--plan: open "},
		{[]string{"migrate"}, "give REGISTRY/REPO[:BASE], or --plan FILE"},
	} {
		if _, _, err := execRoot(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}

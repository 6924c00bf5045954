package migrate_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/internal/migratetest"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/migrate"
)

// indexIntact checks that every manifest the index under repo:tag lists
// still exists.
func indexIntact(t *testing.T, reg *regtest.Registry, tag string) {
	t.Helper()
	d := reg.Head(t, repo, tag)
	if d == "" {
		t.Fatalf("%s is gone", tag)
	}
	b, _, err := reg.Client(t).Manifest(context.Background(), repo, mustHash(t, d), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if reg.Head(t, repo, m.Digest.String()) == "" {
			t.Errorf("%s lists %s, which is gone", tag, m.Digest)
		}
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, repo)
	m := newMigrator(t, reg, migrate.Options{})
	s := m.Apply(context.Background(), inspect(t, m), migrate.ApplyOptions{Prune: true})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	tags := reg.Tags(t, repo)
	// Left: the bare tags, the mislabeled member and the member index
	// (neither is in an index).
	want := []string{"1.0-rc1", "2.0", "2.0-linux-arm64", "3.0", "3.0-linux-amd64", "legacy", "solo"}
	slices.Sort(tags)
	if !slices.Equal(tags, want) {
		t.Errorf("tags after prune %v, want %v", tags, want)
	}
	for _, b := range []string{"1.0-rc1", "2.0", "3.0", "legacy", "solo"} {
		indexIntact(t, reg, b)
	}
	o := outcome(t, s, "2.0")
	if !slices.Equal(o.Pruned, []string{"2.0-linux-amd64"}) || len(o.Kept) != 1 || !strings.HasPrefix(o.Kept[0], "2.0-linux-arm64: not in the index") {
		t.Errorf("2.0: %+v", o)
	}
	// Untagged, not deleted: the pruned members are there by digest.
	if reg.Head(t, repo, l.Digests["1.0-rc1-linux-arm64"]) == "" {
		t.Error("a pruned member's manifest is gone")
	}

	// A second run with prune: unchanged, nothing left to prune.
	reg.Reset()
	m = newMigrator(t, reg, migrate.Options{})
	s = m.Apply(context.Background(), inspect(t, m), migrate.ApplyOptions{Prune: true})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	for _, o := range s.Outcomes {
		if o.Written || len(o.Pruned) > 0 || (o.Action != migrate.Unchanged && o.Action != migrate.Skip) {
			t.Errorf("second run: %+v", o)
		}
	}
	if n := reg.Count(http.MethodPut, http.MethodDelete); n != 0 {
		t.Errorf("second run made %d writes", n)
	}
}

// A read-back that differs fails the base and prunes nothing.
func TestPruneOnlyAfterVerification(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	reg.SetFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Method != http.MethodGet || r.URL.Path != "/v2/"+repo+"/manifests/solo" {
			return false
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body, _ := io.ReadAll(rec.Body)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.Header().Del("Docker-Content-Digest") // the bytes alone differ
		w.WriteHeader(rec.Code)
		_, _ = w.Write(append(body, ' '))
		return true
	})
	m := newMigrator(t, reg, migrate.Options{})
	r := inspect(t, m, "solo")
	reg.Reset()
	s := m.Apply(context.Background(), r, migrate.ApplyOptions{Prune: true})
	o := s.Outcomes[0]
	if s.Err() == nil || !o.Written || o.Verified || !strings.Contains(o.Error, "differ") || len(o.Pruned) != 0 {
		t.Errorf("outcome %+v", o)
	}
	if n := reg.Count(http.MethodDelete); n != 0 {
		t.Errorf("%d deletes before verification", n)
	}
	if reg.Head(t, repo, "solo-linux-amd64") == "" {
		t.Error("the member was pruned")
	}
	var buf bytes.Buffer
	_ = s.WriteText(&buf)
	if !strings.Contains(buf.String(), "failed  solo") || !strings.Contains(buf.String(), "1 failed") {
		t.Errorf("text:\n%s", buf.String())
	}
}

// A registry that refuses deletes keeps its tags; that is reported, not a
// failure.
func TestPruneRefused(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, repo)
	isDelete := func(r *http.Request) bool { return r.Method == http.MethodDelete }
	reg.SetFault(regtest.Refuse(isDelete, http.StatusMethodNotAllowed, "UNSUPPORTED", "The operation is unsupported."))
	before := len(reg.Tags(t, repo))
	m := newMigrator(t, reg, migrate.Options{})
	s := m.Apply(context.Background(), inspect(t, m), migrate.ApplyOptions{Prune: true})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	o := outcome(t, s, "1.0-rc1")
	if !o.Written || !o.Verified || len(o.Pruned) != 0 || len(o.Kept) != 3 || !strings.Contains(o.Kept[0], "registry cannot untag") {
		t.Errorf("outcome %+v", o)
	}
	if after := len(reg.Tags(t, repo)); after != before+4 {
		t.Errorf("%d tags, want %d (+4 bare tags)", after, before+4)
	}
}

// A registry that deletes the manifest along with its tag would break the
// index: migrate restores the manifest and stops pruning.
func TestPruneRegistryDeletesManifests(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, repo)
	reg.SetFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		tag, ok := strings.CutPrefix(r.URL.Path, "/v2/"+repo+"/manifests/")
		if r.Method != http.MethodDelete || !ok || strings.Contains(tag, ":") {
			return false
		}
		// Delete by digest: the manifest and every tag of it.
		r.URL.Path = "/v2/" + repo + "/manifests/" + l.Digests[tag]
		next.ServeHTTP(w, r)
		return true
	})
	m := newMigrator(t, reg, migrate.Options{Concurrency: 1})
	r := inspect(t, m, "1.0-rc1")
	s := m.Apply(context.Background(), r, migrate.ApplyOptions{Prune: true})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	o := s.Outcomes[0]
	if len(o.Pruned) != 1 || len(o.Kept) != 2 || !strings.Contains(strings.Join(o.Notes, "\n"), "restored by digest; pruning stopped") {
		t.Errorf("outcome %+v", o)
	}
	indexIntact(t, reg, "1.0-rc1")
}

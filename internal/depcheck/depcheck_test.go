// Package depcheck states manifold's whole import graph in one test, as
// go-containerregistry's depcheck does: every package, the manifold
// packages it may import, and what the pure packages must never reach.
package depcheck

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/manifold-proxy/manifold/"

// allowed lists, per package (relative to the module), the manifold
// packages it may import directly. A package missing here fails the test:
// a new package states its place in the graph. Test files are not counted.
var allowed = map[string][]string{
	"platform":          {},
	"index":             {"platform"},
	"store":             {"internal/lru"},
	"content":           {"internal/lru", "store"},
	"upstream":          {"internal/flight"},
	"embedded":          {"upstream"},
	"tlsreload":         {},
	"resolve":           {"index", "internal/flight", "internal/lru", "platform", "store", "upstream"},
	"proxy":             {"content", "index", "platform", "resolve", "store", "upstream"},
	"crossbuild":        {"index", "platform", "resolve", "upstream"},
	"migrate":           {"index", "platform", "resolve", "upstream"},
	"config":            {"content", "index", "platform", "proxy", "resolve", "store", "upstream"},
	"cmd/proxy":         {"config", "content", "crossbuild", "embedded", "index", "migrate", "platform", "proxy", "resolve", "sharedcache", "store", "tlsreload", "ui", "upstream"},
	"ui":                {"migrate", "platform", "proxy", "resolve", "upstream"},
	"sharedcache":       {},
	"internal/flight":   {},
	"internal/lru":      {},
	"internal/depcheck": {},
	"deploy":            {},
	"bench":             {"content", "index", "platform", "proxy", "resolve", "upstream"},
	"e2e":               {},

	// Test fixtures: only tests import them.
	"internal/regtest":     {"embedded", "proxy", "upstream"},
	"internal/migratetest": {"index", "internal/regtest", "proxy", "upstream"},
}

// pure packages do no I/O: synthesis and platform rules are shared by the
// proxy, build and migrate, and must not reach the network.
var pure = map[string][]string{
	"platform": {"net/http", "github.com/google/go-containerregistry/pkg/v1/remote"},
	"index":    {"net/http", "github.com/google/go-containerregistry/pkg/v1/remote"},
}

// libraries never import the configuration, the commands or cobra: they
// take options (STYLE.md).
var notInLibraries = []string{module + "config", module + "cmd/proxy", "github.com/spf13/cobra"}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := map[string]bool{}
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		seen[name] = true
		allow, ok := allowed[name]
		if !ok {
			t.Errorf("package %s is not in the import graph of internal/depcheck: add it with the packages it may import", name)
			continue
		}
		for _, imp := range p.Imports {
			if dep, ok := strings.CutPrefix(imp, module); ok && !slices.Contains(allow, dep) {
				t.Errorf("%s imports %s, which the graph does not allow", name, dep)
			}
		}
		for _, forbidden := range pure[name] {
			for _, d := range p.Deps {
				if d == forbidden || strings.HasPrefix(d, forbidden+"/") {
					t.Errorf("%s depends on %s; it must not do I/O", name, d)
				}
			}
		}
		if name != "cmd/proxy" && !strings.HasPrefix(name, "internal/") && name != "e2e" && name != "deploy" {
			for _, d := range p.Deps {
				if slices.Contains(notInLibraries, d) {
					t.Errorf("library %s depends on %s", name, d)
				}
			}
		}
	}
	for name := range allowed {
		if !seen[name] {
			t.Errorf("internal/depcheck lists %s, which no longer exists", name)
		}
	}
}

package index_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps index free of network code: it is pure synthesis, shared by
// the proxy, build and migrate.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net/http" || strings.HasPrefix(dep, "github.com/google/go-containerregistry/pkg/v1/remote") {
			t.Errorf("index depends on %s; it must not do I/O", dep)
		}
		if strings.HasPrefix(dep, "github.com/manifold-proxy/manifold/") && !strings.HasSuffix(dep, "/index") {
			t.Errorf("index depends on %s; it is the bottom of the dependency graph", dep)
		}
	}
}

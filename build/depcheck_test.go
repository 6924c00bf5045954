package build_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps build a library: it may use index, resolve and upstream,
// never the proxy's configuration or handlers.
func TestDeps(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "github.com/manifold-proxy/manifold/config", "github.com/manifold-proxy/manifold/proxy":
			t.Errorf("build depends on %s", dep)
		}
	}
}

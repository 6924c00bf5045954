package migrate_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps migrate a library: the commands and the proxy's
// configuration depend on it, not the other way round.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case dep == "github.com/spf13/cobra",
			dep == "github.com/manifold-proxy/manifold/config",
			dep == "github.com/manifold-proxy/manifold/proxy",
			strings.HasPrefix(dep, "github.com/manifold-proxy/manifold/cmd/"):
			t.Errorf("migrate depends on %s", dep)
		}
	}
}

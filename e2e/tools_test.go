package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Install hints; the versions are the ones .ci/install-deps pins.
const (
	hintDocker      = "apt-get install --no-install-recommends docker.io"
	hintContainerd  = "apt-get install --no-install-recommends containerd"
	hintPodman      = "apt-get install --no-install-recommends podman"
	hintSkopeo      = "apt-get install --no-install-recommends skopeo"
	hintUnshare     = "apt-get install util-linux"
	hintCurl        = "apt-get install --no-install-recommends curl"
	hintCrane       = "go install github.com/google/go-containerregistry/cmd/crane@v0.22.1"
	hintRegctl      = "go install github.com/regclient/regclient/cmd/regctl@v0.11.7"
	hintOras        = "go install oras.land/oras/cmd/oras@v1.3.6"
	hintConformance = "cd $(mktemp -d) && go mod init x && go get -t github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111 && go test -c -o $(go env GOPATH)/bin/conformance.test github.com/opencontainers/distribution-spec/conformance"
)

// inCI reports whether CI=true: a missing client is then a failure, so
// CI can never go green by skipping.
func inCI() bool {
	ok, _ := strconv.ParseBool(os.Getenv("CI"))
	return ok
}

// skipOrFail skips the test with msg, or fails it under CI=true.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if inCI() {
		t.Fatalf("%s (CI=true: a missing client is a failure, not a skip)", msg)
	}
	t.Skip(msg)
}

// requireTool returns the path of the named client, or skips the test
// (fails it under CI=true) with a message saying how to install it.
func requireTool(t *testing.T, name, hint string) string {
	t.Helper()
	if p := findTool(name); p != "" {
		return p
	}
	skipOrFail(t, name+" not installed: run .ci/install-deps (or "+hint+")")
	return ""
}

// requireRoot skips (fails under CI) when the daemons cannot be run.
func requireRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, what+" needs root (private daemons, vfs storage); run the suite as root")
	}
}

// findTool looks in PATH, then where go install and .ci/install-deps put
// binaries, then the sbin directories (dockerd is in /usr/sbin, which a
// non-login PATH may lack).
func findTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range toolDirs() {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

var toolDirs = sync.OnceValue(func() []string {
	var dirs []string
	if d := os.Getenv("MANIFOLD_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, p := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	return append(dirs, "/usr/local/sbin", "/usr/sbin", "/sbin")
})

package e2e_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMirrorDoc runs the block under "## Try it on one machine" in
// docs/mirror.md as written — openssl makes the CA and the certificate,
// two proxies start (an upstream and the TLS mirror), proxy build pushes
// per-platform tags, ctr pulls registry.example.test/demo/app:1.0 through
// the hosts.toml the block writes, and curl shows the mirror request and
// the 404 for a registry nothing mirrors — with bash and `set -euxo
// pipefail`, in a copy of the repository's tracked files.
//
// As root, the block runs in a network namespace of its own with only a
// loopback interface: its fixed ports are always free, and nothing it
// does can leave the machine (its hosts.toml names the real origin,
// https://registry.example.test, as the docs do). ctr talks to a private
// containerd over its socket (CONTAINERD_ADDRESS) and fetches itself, in
// the namespace (containerd 1.6's ctr pulls client-side). Without root,
// the ctr line is left out and the test says so (under CI=true that is a
// failure).
func TestMirrorDoc(t *testing.T) {
	s := shared(t)
	requireTool(t, "curl", hintCurl)
	requireTool(t, "openssl", "apt-get install openssl")
	root := strings.TrimSpace(string(run(t, command{bin: "git", args: []string{"rev-parse", "--show-toplevel"}})))
	doc, err := os.ReadFile(filepath.Join(root, "docs", "mirror.md"))
	if err != nil {
		t.Fatal(err)
	}
	block, err := shBlock(string(doc), "docs/mirror.md", "Try it on one machine")
	if err != nil {
		t.Fatal(err)
	}
	dir := s.tempDir(t, "mirrordoc")
	clone := filepath.Join(dir, "clone")
	copyTracked(t, root, clone)
	extra := goCacheEnv(t)
	argv := []string{"bash"}
	if why := netnsUnavailable(); why == "" {
		cd := startContainerd(t, s, dir+"/c")
		extra = append(extra, "CONTAINERD_ADDRESS="+cd.sock)
		argv = []string{findTool("unshare"), "--net", "sh", "-c", `ip link set lo up && exec bash "$0"`}
	} else {
		if inCI() {
			t.Fatalf("docs/mirror.md's block pulls with ctr in a network namespace, but %s (CI=true: a missing client is a failure, not a skip)", why)
		}
		block = dropLines(t, block, "ctr ", why)
		for _, a := range []string{"127.0.0.1:5001", "127.0.0.1:5443"} {
			if ln, err := net.Listen("tcp", a); err != nil {
				t.Fatalf("docs/mirror.md's block listens on %s as written, but that address is taken: %v", a, err)
			} else {
				ln.Close()
			}
		}
	}
	script := filepath.Join(dir, "mirror.sh")
	if err := os.WriteFile(script, []byte("set -euxo pipefail\n"+block+quickstartEnd), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runScript(t, clone, s.env(extra...), argv[0], append(argv[1:], script)...)
	t.Logf("docs/mirror.md block stdout:\n%s", stdout)
	if err != nil {
		t.Fatalf("docs/mirror.md's block failed: %v\nstderr (bash -x trace and the proxies' logs):\n%s", err, lastLines(string(stderr), 60))
	}
	out := string(stdout)
	for _, want := range []string{`"architecture":"amd64"`, `"architecture":"arm64"`, `"code":"NAME_UNKNOWN"`} {
		if !strings.Contains(out, want) {
			t.Errorf("docs/mirror.md's block did not print %s", want)
		}
	}
	if len(argv) > 1 && !strings.Contains(out, "unpacking linux/arm64") {
		t.Errorf("ctr did not unpack the linux/arm64 image")
	}
}

// netnsUnavailable says why the block cannot run with ctr in a network
// namespace of its own, or "".
func netnsUnavailable() string {
	switch {
	case os.Geteuid() != 0:
		return "a network namespace and containerd need root"
	case findTool("unshare") == "" || findTool("ip") == "":
		return "unshare or ip is not installed (" + hintUnshare + ", apt-get install iproute2)"
	case findTool("containerd") == "" || findTool("ctr") == "":
		return "containerd is not installed (" + hintContainerd + ")"
	}
	return ""
}

// dropLines removes the lines of block that start with prefix, saying why.
func dropLines(t *testing.T, block, prefix, why string) string {
	t.Helper()
	var kept []string
	for _, l := range strings.Split(block, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			t.Logf("skipping line (%s): %s", why, l)
			continue
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "\n")
}

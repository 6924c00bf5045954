package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

// TestContainerd drives a private containerd (Debian's containerd 1.6,
// CRI off) with ctr through the proxy. containerd resolves a tag with a
// HEAD and one comma-joined Accept header, then GETs the index and the
// child by digest. For every request of the spelling matrix (containerd
// normalizes platforms: every spelling finds its image, also in the real
// index without arm64's variant), in a fresh namespace: `ctr images pull
// --plain-http --platform` (with unpack, native snapshotter), then the namespace's content store must hold the index,
// the member's manifest, config and layer and no other member's manifest;
// the config's platform is read from the store; and /platform is read from
// the unpacked snapshot with `ctr images mount`. containerd 1.6 pulls and
// unpacks windows/amd64 on Linux too (the layer is a plain tar to it), so
// the windows member is checked the same way (Files/platform). Then every
// platform again by the digest a HEAD on proxy A returned, pulled from a
// fresh proxy B.
func TestContainerd(t *testing.T) {
	requireRoot(t, "containerd")
	requireTool(t, "containerd", hintContainerd)
	requireTool(t, "ctr", hintContainerd)
	s := shared(t)
	dir := s.tempDir(t, "containerd")
	cd := startContainerd(t, s, dir+"/c")
	repo := repoFor("containerd")
	t.Logf("%s", strings.TrimSpace(string(run(t, cd.command("version")))))

	idx := map[string]string{} // tag → index digest
	for _, g := range s.fx.groups {
		idx[g.base] = indexDigest(t, s.proxy.host, repo, g)
	}
	for _, ri := range s.fx.multis {
		idx[ri.tag] = ri.digest.String()
	}
	ns := 0
	for _, r := range s.fx.matrix(normalizing) {
		t.Run(r.name, func(t *testing.T) {
			ns++
			ctrPullAndCheck(t, cd, fmt.Sprintf("n%d", ns), dir, r.m, r.s.String(), s.proxy.host+"/"+repo+":"+r.tag, idx[r.tag], "--plain-http")
		})
	}

	t.Run("by-digest-on-second-proxy", func(t *testing.T) {
		b := s.startTestProxy(t, "proxy-b-containerd")
		for _, g := range s.fx.groups {
			// What containerd itself does to resolve: HEAD with its Accept.
			idx := indexDigest(t, s.proxy.host, repo, g)
			for _, m := range g.members {
				ns++
				ctrPullAndCheck(t, cd, fmt.Sprintf("n%d", ns), dir, m, m.arg(), b.host+"/"+repo+"@"+idx, idx, "--plain-http")
			}
		}
	})
}

// indexDigest HEADs repo:base on host the way containerd resolves a tag
// and returns the Docker-Content-Digest.
func indexDigest(t *testing.T, host, repo string, g *group) string {
	t.Helper()
	head, _ := regtest.Get(t, http.MethodHead, "http://"+host+"/v2/"+repo+"/manifests/"+g.base, containerdAccept)
	d := head.Header.Get("Docker-Content-Digest")
	if head.StatusCode != http.StatusOK || d == "" || head.Header.Get("Content-Type") != string(g.indexType()) {
		t.Fatalf("HEAD %s:%s: %d, digest %q, Content-Type %q", repo, g.base, head.StatusCode, d, head.Header.Get("Content-Type"))
	}
	return d
}

// ctrPullAndCheck pulls ref for platform p (a spelling of m's) into
// namespace ns, with pullFlags (--plain-http, --hosts-dir), and checks what
// containerd stored and unpacked.
func ctrPullAndCheck(t *testing.T, cd *containerdDaemon, ns, dir string, m *member, p, ref, idx string, pullFlags ...string) {
	t.Helper()
	ctr := func(args ...string) []byte { return run(t, cd.command(append([]string{"-n", ns}, args...)...)) }
	ctr(append(append([]string{"images", "pull"}, pullFlags...), "--snapshotter", "native", "--platform", p, ref)...)

	content := map[string]bool{}
	for _, d := range strings.Fields(string(ctr("content", "ls", "-q"))) {
		content[d] = true
	}
	for what, d := range map[string]string{"index": idx, "manifest": m.digest.String(), "config": m.configDigest.String(), "layer": m.layer.String()} {
		if !content[d] {
			t.Errorf("ctr pull --platform %s %s: the %s %s is not in containerd's content store (it holds %v)", p, ref, what, d, keys(content))
		}
	}
	for _, o := range m.group.members {
		if o != m && content[o.digest.String()] {
			t.Errorf("ctr pull --platform %s %s: fetched %s's manifest %s too", p, ref, o.arg(), o.digest)
		}
	}
	checkConfig(t, m, "ctr content get <config>", ctr("content", "get", m.configDigest.String()))

	// Mount the unpacked snapshot read-only, read the file, unmount and
	// remove the view (a reused mount key would show a stale view).
	target := filepath.Join(dir, "mnt-"+ns)
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	ctr("images", "mount", "--snapshotter", "native", "--platform", p, ref, target)
	b, err := os.ReadFile(filepath.Join(target, m.file))
	ctr("images", "unmount", "--snapshotter", "native", "--rm", target)
	if err != nil {
		t.Fatalf("reading the unpacked image: %v", err)
	}
	checkContent(t, m, "ctr images mount", string(b))
}

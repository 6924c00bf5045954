package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// demoRepo and demoTag: the name the runtimes pull in mirror mode, as
// registry.example.test/demo/app:1.0 or Docker Hub's demo/app:1.0. Its
// member tags upstream are the docker group's images under 1.0-<suffix>,
// so the proxy serves the docker group's index under it (the same bytes:
// the same members).
const (
	demoRepo = "demo/app"
	demoTag  = "1.0"
)

var demoOnce struct {
	sync.Once
	err error
}

// demo pushes the demo repository upstream (once) and returns the group
// whose images it holds.
func (s *suite) demo(t *testing.T) *group {
	t.Helper()
	g := s.fx.groups[0]
	demoOnce.Do(func() {
		todo := map[name.Reference]remote.Taggable{}
		for _, m := range g.members {
			tag, err := name.NewTag(s.upHost+"/"+demoRepo+":"+demoTag+strings.TrimPrefix(m.tag, g.base), name.Insecure)
			if err != nil {
				demoOnce.err = err
				return
			}
			todo[tag] = m.image
		}
		demoOnce.err = remote.MultiWrite(todo)
	})
	if demoOnce.err != nil {
		t.Fatalf("seeding %s: %v", demoRepo, demoOnce.err)
	}
	return g
}

// closedPort is a loopback address nothing listens on: where the runtimes'
// origins point, so that a fall back to the origin fails at once and never
// leaves the machine.
func closedPort(t *testing.T) string {
	t.Helper()
	a, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writeHostsToml writes containerd's hosts.toml for registry under dir
// (dir/<registry>/hosts.toml): pulls and resolves go to the proxy over
// TLS, trusting its CA; the origin is unreachable.
func writeHostsToml(t *testing.T, dir, registry string, px *tlsProxy, origin string) {
	t.Helper()
	toml := fmt.Sprintf(`server = "https://%s"

[host."https://%s"]
  capabilities = ["pull", "resolve"]
  ca = %q
`, origin, px.host, px.caFile)
	if err := os.MkdirAll(filepath.Join(dir, registry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, registry, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorContainerd: containerd (ctr --hosts-dir) with a hosts.toml
// that sends registry.example.test to the proxy over TLS pulls
// registry.example.test/demo/app:1.0 by its own name, and gets the right
// image for every platform (index, member manifest, config and layer in
// its content store, /platform from the unpacked snapshot); every request
// carried ns=registry.example.test. A registry no upstream mirrors gets
// 404 from the proxy (logged as such, no 5xx), containerd falls back to
// the origin — unreachable here — and the pull fails cleanly.
func TestMirrorContainerd(t *testing.T) {
	requireRoot(t, "containerd")
	requireTool(t, "containerd", hintContainerd)
	requireTool(t, "ctr", hintContainerd)
	s := shared(t)
	g := s.demo(t)
	px := s.startTLSProxy(t, "mirror-containerd", false)
	dir := s.tempDir(t, "mirror-containerd")
	cd := startContainerd(t, s, dir+"/c")
	hosts := filepath.Join(dir, "hosts")
	origin := closedPort(t)
	const unmirrored = "elsewhere.example.test"
	writeHostsToml(t, hosts, mirrorRegistry, px, origin)
	writeHostsToml(t, hosts, unmirrored, px, origin)
	idx := px.indexDigest(t, demoRepo, demoTag, "?ns="+mirrorRegistry)
	mark := len(px.requests())
	ref := mirrorRegistry + "/" + demoRepo + ":" + demoTag
	for i, m := range g.members {
		t.Run(m.slug(), func(t *testing.T) {
			ctrPullAndCheck(t, cd, fmt.Sprintf("m%d", i), dir, m, m.arg(), ref, idx, "--hosts-dir", hosts)
		})
	}
	lines := px.logged(mark, "/v2/"+demoRepo+"/")
	for _, l := range lines {
		if l.NS != mirrorRegistry || l.Status != http.StatusOK {
			t.Errorf("containerd's mirror request %s %s: status %d, ns %q", l.Method, l.Path, l.Status, l.NS)
		}
	}
	t.Logf("containerd: %d mirror requests, all with ns=%s, all 200", len(lines), mirrorRegistry)

	t.Run("unmirrored-registry", func(t *testing.T) {
		mark := len(px.requests())
		_, _, err := cd.command("-n", "unmirrored", "images", "pull", "--hosts-dir", hosts, "--platform", "linux/arm64", unmirrored+"/"+demoRepo+":"+demoTag).output()
		if err == nil || !strings.Contains(err.Error(), origin) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("pull of %s: %v, want it to fail at the unreachable origin %s", unmirrored, err, origin)
		}
		var notFound int
		for _, l := range px.logged(mark, "/") {
			if l.Status >= 500 {
				t.Errorf("the proxy answered %s %s with %d", l.Method, l.Path, l.Status)
			}
			if l.NS == unmirrored && l.Status == http.StatusNotFound {
				notFound++
			}
		}
		if notFound == 0 {
			t.Errorf("the proxy logged no 404 with ns=%s", unmirrored)
		}
	})
}

// TestMirrorDocker: a private dockerd whose registry-mirrors is the proxy
// over TLS (its CA in /etc/docker/certs.d/<proxy>/ca.crt — the daemon's
// own /etc/docker, a directory of the test) pulls Docker Hub names:
// `docker pull --platform linux/arm64 demo/app:1.0` is served by the
// proxy (no ns: dockerd sends Docker Hub names as they are) and is the
// arm64 image; so is linux/amd64's. Docker Hub itself is behind a dead
// HTTPS proxy, so nothing leaves the machine.
func TestMirrorDocker(t *testing.T) {
	requireRoot(t, "dockerd")
	requireTool(t, "dockerd", hintDocker)
	requireTool(t, "containerd", hintContainerd)
	s := shared(t)
	g := s.demo(t)
	px := s.startTLSProxy(t, "mirror-docker", false)
	dir := s.tempDir(t, "mirror-docker")
	etc := filepath.Join(dir, "etc-docker")
	certs := filepath.Join(etc, "certs.d", px.host)
	if err := os.MkdirAll(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	px.ca.WriteCert(t, filepath.Join(certs, "ca.crt"))
	daemon, _ := json.Marshal(map[string]any{"registry-mirrors": []string{"https://" + px.host}})
	dead := "http://" + closedPort(t)
	dk := startDockerd(t, s, dir+"/d", startContainerd(t, s, dir+"/c"), dockerdOpts{
		daemonJSON: string(daemon), etcDocker: etc,
		env: []string{"HTTPS_PROXY=" + dead, "HTTP_PROXY=" + dead, "NO_PROXY=127.0.0.1,localhost"},
	})
	for _, p := range []string{"linux/arm64", "linux/amd64"} {
		m := memberFor(t, g, p)
		mark := len(px.requests())
		dockerPullAndCheck(t, dk, m, p, demoRepo+":"+demoTag, demoRepo+":"+demoTag)
		checkFetchedOnly(t, m, "dockerd (registry-mirrors) --platform "+p, waitFetched(px.proxyProc, demoRepo, mark, m))
		for _, l := range px.logged(mark, "/v2/"+demoRepo+"/") {
			if l.NS != "" || l.Status != http.StatusOK {
				t.Errorf("dockerd's mirror request %s %s: status %d, ns %q", l.Method, l.Path, l.Status, l.NS)
			}
		}
	}
}

// TestMirrorPodman: podman with a registries.conf whose
// registry.example.test has the proxy as its [[registry.mirror]] pulls
// registry.example.test/demo/app:1.0 through the proxy over TLS (the CA in
// a --cert-dir) and gets the right image for each platform.
func TestMirrorPodman(t *testing.T) {
	requireRoot(t, "podman")
	bin := requireTool(t, "podman", hintPodman)
	requireTool(t, "unshare", hintUnshare)
	s := shared(t)
	g := s.demo(t)
	px := s.startTLSProxy(t, "mirror-podman", false)
	dir := s.tempDir(t, "mpod") // short: podman refuses a runroot over 50 characters
	conf := filepath.Join(dir, "registries.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`[[registry]]
prefix = %q
location = %q

[[registry.mirror]]
location = %q
`, mirrorRegistry, mirrorRegistry, px.host)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	pm, root := newPodman(t, s, bin, dir)
	dead := "http://" + closedPort(t)
	pm.env = append(pm.env, "CONTAINERS_REGISTRIES_CONF="+conf, "HTTPS_PROXY="+dead, "HTTP_PROXY="+dead, "NO_PROXY=127.0.0.1,localhost")
	for _, m := range g.members {
		t.Run(m.slug(), func(t *testing.T) {
			mark := len(px.requests())
			podmanPullAndCheck(t, pm, root, m, m.arg(), mirrorRegistry+"/"+demoRepo+":"+demoTag, "--cert-dir", px.certDir)
			checkFetchedOnly(t, m, "podman (registries.conf mirror)", waitFetched(px.proxyProc, demoRepo, mark, m))
		})
	}
}

// memberFor is g's member that a request for platform p (os/arch, such
// as linux/arm64) gets.
func memberFor(t *testing.T, g *group, p string) *member {
	t.Helper()
	for _, m := range g.members {
		if m.want.OS+"/"+m.want.Architecture == p {
			return m
		}
	}
	t.Fatalf("no %s member in group %s", p, g.name)
	return nil
}

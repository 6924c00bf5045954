package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/internal/regtest"
)

// outageRepo holds the fixtures of TestContentCacheOutage, on an upstream
// of its own.
const outageRepo = "e2e/outage"

// faultyUpstream is a distribution v3 registry whose answers a fault
// replaces ("down": the connection is closed; "429": manifest requests get
// 429 with Retry-After, as Docker Hub's pull limit answers), counting the
// requests that reach it.
type faultyUpstream struct {
	reg   *embedded.Registry
	host  string
	fault atomic.Value // string
	mu    sync.Mutex
	reqs  []string
}

func startFaultyUpstream(t *testing.T, s *suite) *faultyUpstream {
	t.Helper()
	u := &faultyUpstream{}
	u.fault.Store("")
	reg, err := embedded.Start(context.Background(), embedded.Options{Dir: s.tempDir(t, "faulty-upstream"), Wrap: u.wrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close(context.Background()) })
	u.reg, u.host = reg, strings.TrimPrefix(reg.URL, "http://")
	if err := s.fx.seed(u.host, []string{"outage"}); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *faultyUpstream) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Method+" "+r.URL.Path)
		u.mu.Unlock()
		switch u.fault.Load().(string) {
		case "down":
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		case "429":
			if strings.Contains(r.URL.Path, "/manifests/") {
				w.Header().Set("Retry-After", "60")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}`))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// contentRequests are the requests for content by digest (blobs and
// manifests by digest) since mark: what a warm cache never needs.
func (u *faultyUpstream) contentRequests(mark int) (n int, all []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.reqs[mark:] {
		if strings.Contains(r, "/blobs/") || strings.Contains(r, "/manifests/sha256:") {
			all = append(all, r)
		}
	}
	return len(u.reqs), all
}

func (u *faultyUpstream) mark() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// outageClient pulls m from ref (a tag or the index digest) whole, with a
// real client starting from empty local state, and checks what it got.
type outageClient struct {
	name string
	pull func(t *testing.T, m *member, ref, idx string)
}

// outageClients sets up every client (daemons included) once for the
// test. A client that is missing is skipped (failed under CI) in its own
// subtest.
func outageClients(t *testing.T, s *suite, host string) []outageClient {
	dir := s.tempDir(t, "outage")
	missing := func(name, hint string) outageClient {
		return outageClient{name: name, pull: func(t *testing.T, _ *member, _, _ string) {
			requireTool(t, name, hint)
		}}
	}
	var cs []outageClient
	if os.Geteuid() != 0 {
		cs = append(cs, outageClient{"dockerd", func(t *testing.T, _ *member, _, _ string) { requireRoot(t, "dockerd") }})
	} else if findTool("dockerd") == "" || findTool("containerd") == "" {
		cs = append(cs, missing("dockerd", hintDocker))
	} else {
		cd := startContainerd(t, s, filepath.Join(dir, "docker-c"))
		dk := startDockerd(t, s, filepath.Join(dir, "docker-d"), cd)
		cs = append(cs, outageClient{"dockerd", func(t *testing.T, m *member, ref, idx string) {
			dockerPullAndCheck(t, dk, m, m.arg(), ref, ref)
			// The next pull starts from nothing: dockerd keeps the
			// manifests it pulled in containerd's content store (namespace
			// moby) after the image is removed.
			run(t, dk.command("rmi", ref))
			_, _, _ = cd.command("-n", "moby", "content", "rm", idx, m.digest.String()).output()
		}})
	}
	if os.Geteuid() == 0 && findTool("containerd") != "" && findTool("ctr") != "" {
		// Isolated: a new namespace fetches content it does not hold
		// although another namespace does.
		cd := startContainerdWith(t, s, filepath.Join(dir, "c"), "[plugins.\"io.containerd.metadata.v1.bolt\"]\n  content_sharing_policy = \"isolated\"\n")
		var ns atomic.Int32
		cs = append(cs, outageClient{"ctr", func(t *testing.T, m *member, ref, idx string) {
			ctrPullAndCheck(t, cd, fmt.Sprintf("outage%d", ns.Add(1)), dir, m, m.arg(), ref, idx, "--plain-http")
		}})
	} else {
		cs = append(cs, missing("ctr", hintContainerd))
	}
	if bin := findTool("podman"); bin != "" && os.Geteuid() == 0 && findTool("unshare") != "" {
		root := filepath.Join(dir, "podman-root")
		pm := newContainersTool(t, s, bin, filepath.Join(dir, "podman"),
			"--root", root, "--runroot", filepath.Join(dir, "podman-run"), "--tmpdir", filepath.Join(dir, "podman-tmp"),
			"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
			"--network-config-dir", filepath.Join(dir, "podman-net"))
		cs = append(cs, outageClient{"podman", func(t *testing.T, m *member, ref, _ string) {
			podmanPullAndCheck(t, pm, root, m, m.arg(), ref, "--tls-verify=false")
			run(t, pm.command("rmi", "-f", m.configDigest.Hex))
		}})
	} else {
		cs = append(cs, missing("podman", hintPodman))
	}
	if bin := findTool("skopeo"); bin != "" {
		sk := newContainersTool(t, s, bin, filepath.Join(dir, "skopeo"), "--insecure-policy")
		cs = append(cs, outageClient{"skopeo", func(t *testing.T, m *member, ref, _ string) {
			skopeoPullAndCheck(t, sk, filepath.Join(dir, "skopeo"), m, "docker://"+ref)
		}})
	} else {
		cs = append(cs, missing("skopeo", hintSkopeo))
	}
	if bin := findTool("crane"); bin != "" {
		c := func(args ...string) command { return command{bin: bin, args: args, env: s.env()} }
		cs = append(cs, outageClient{"crane", func(t *testing.T, m *member, ref, _ string) { cranePullAndCheck(t, c, m, ref) }})
	} else {
		cs = append(cs, missing("crane", hintCrane))
	}
	if bin := findTool("regctl"); bin != "" {
		rc := regctlFor(bin, s.env("REGCTL_CONFIG="+filepath.Join(dir, "regctl.json")), host)
		cs = append(cs, outageClient{"regctl", func(t *testing.T, m *member, ref, _ string) { regctlPullAndCheck(t, rc, m, ref) }})
	} else {
		cs = append(cs, missing("regctl", hintRegctl))
	}
	if bin := findTool("oras"); bin != "" {
		o := &orasTool{bin: bin, env: s.env(), regConfig: filepath.Join(dir, "oras-auth.json"), dir: dir}
		cs = append(cs, outageClient{"oras", func(t *testing.T, m *member, ref, _ string) { orasPullAndCheck(t, o, m, ref) }})
	} else {
		cs = append(cs, missing("oras", hintOras))
	}
	return cs
}

// TestContentCacheOutage: every client pulls two platforms (one of the
// Docker-typed group, one of the OCI group) through a proxy configured as
// an operator would (cache.ttl: 1s, staleIfError: 10m), by tag and by the
// index digest; then the upstream goes down, and every client pulls them
// again whole, by tag and by digest; then the upstream answers 429 to
// every manifest request, and the same again. In both outages the
// upstream gets no request for content the proxy holds, the proxy's log
// shows that it served each pull's manifest, config and layer, and a
// platform never pulled fails cleanly (an OCI error, promptly).
func TestContentCacheOutage(t *testing.T) {
	s := shared(t)
	up := startFaultyUpstream(t, s)
	cfg := filepath.Join(s.tempDir(t, "outage-config"), "manifold.yaml")
	if err := os.WriteFile(cfg, []byte("cache: {ttl: 1s, staleIfError: 10m}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	px, err := s.startProxyOn("proxy-outage", up.reg.URL, "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopInCleanup(t, px.proc)
	docker, oci := s.fx.groups[0], s.fx.groups[1]
	pulled := []*member{docker.members[0], oci.members[1]} // linux/amd64, linux/arm64
	refs := func(m *member) []string {
		idx := indexDigest(t, px.host, outageRepo, m.group)
		return []string{px.host + "/" + outageRepo + ":" + m.group.base, px.host + "/" + outageRepo + "@" + idx}
	}
	clients := outageClients(t, s, px.host)

	for _, phase := range []string{"warm", "down", "429"} {
		up.fault.Store(map[string]string{"warm": "", "down": "down", "429": "429"}[phase])
		if phase != "warm" {
			time.Sleep(1500 * time.Millisecond) // past the TTL: every tag is revalidated, and fails
		}
		mark := up.mark()
		for _, c := range clients {
			t.Run(phase+"/"+c.name, func(t *testing.T) {
				for _, m := range pulled {
					rs := refs(m)
					idx := rs[1][strings.LastIndex(rs[1], "@")+1:]
					for _, ref := range rs {
						logMark := len(px.requests())
						c.pull(t, m, ref, idx)
						checkServedWhole(t, px, m, logMark, c.name+" "+ref)
					}
				}
			})
		}
		if phase == "warm" {
			continue
		}
		if _, got := up.contentRequests(mark); len(got) != 0 {
			t.Errorf("upstream %s: the proxy asked it for content it holds: %v", phase, got)
		}
		neverPulledFails(t, s, px, oci.members[6]) // linux/s390x
	}
}

// checkServedWhole: the proxy's log shows it served m's manifest, config
// and layer (200 or 206) since mark.
func checkServedWhole(t *testing.T, px *proxyProc, m *member, mark int, what string) {
	t.Helper()
	want := map[string]string{
		"/v2/" + outageRepo + "/manifests/" + m.digest.String():   "manifest",
		"/v2/" + outageRepo + "/blobs/" + m.configDigest.String(): "config",
		"/v2/" + outageRepo + "/blobs/" + m.layer.String():        "layer",
	}
	served := map[string]bool{}
	_ = waitFor(nil, 5*time.Second, func() bool {
		for _, r := range px.requests()[mark:] {
			if r.Method == http.MethodGet && (r.Status == http.StatusOK || r.Status == http.StatusPartialContent) && want[r.Path] != "" {
				served[r.Path] = true
			}
		}
		return len(served) == len(want)
	})
	for path, kind := range want {
		if !served[path] {
			t.Errorf("%s: the proxy did not serve the %s (%s) in this pull", what, kind, path)
		}
	}
}

// neverPulledFails: a platform the proxy never served fails with an OCI
// error and without hanging, by HTTP and with crane.
func neverPulledFails(t *testing.T, s *suite, px *proxyProc, m *member) {
	t.Helper()
	start := time.Now()
	resp, body := regtest.Get(t, http.MethodGet, "http://"+px.host+"/v2/"+outageRepo+"/manifests/"+m.digest.String(), string(m.mediaType))
	if resp.StatusCode < 400 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"errors"`) {
		t.Errorf("%s never pulled: %d %s %s; want an OCI error", m.arg(), resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if crane := findTool("crane"); crane != "" {
		c := command{bin: crane, args: []string{"export", "--platform", m.arg(), px.host + "/" + outageRepo + ":" + m.group.base, "-"}, env: s.env(), timeout: time.Minute}
		if _, _, err := c.output(); err == nil {
			t.Errorf("crane export --platform %s succeeded with the upstream failing", m.arg())
		}
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("failing a platform never pulled took %s", took)
	}
}

package e2e_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// containersTool runs podman or skopeo (containers/image) with all their
// state in dir. As root, containers/image keeps its blob-info cache in
// /var/lib/containers/cache whatever --root says (podman 4.3, skopeo 1.9
// have no flag for it), so each command runs in a private mount namespace
// where a directory of the test is bind-mounted over /var/lib: the cache
// lands there and the host's /var/lib is not touched.
type containersTool struct {
	bin    string
	varlib string
	env    []string
	pre    []string // args before the subcommand
}

func newContainersTool(t *testing.T, s *suite, bin, dir string, pre ...string) *containersTool {
	t.Helper()
	c := &containersTool{bin: bin, varlib: filepath.Join(dir, "varlib"), pre: pre}
	// podman and skopeo read $DOCKER_CONFIG/config.json for credentials
	// and fail if DOCKER_CONFIG points to a directory without one.
	cfg := filepath.Join(dir, "docker-config")
	for _, d := range []string{c.varlib, cfg} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.env = s.env("DOCKER_CONFIG="+cfg, "REGISTRY_AUTH_FILE="+filepath.Join(cfg, "config.json"), "TMPDIR="+dir)
	return c
}

func (c *containersTool) command(args ...string) command {
	args = append(append([]string{}, c.pre...), args...)
	unshare := findTool("unshare")
	if os.Geteuid() != 0 || unshare == "" {
		return command{bin: c.bin, args: args, env: c.env}
	}
	script := `mount --bind "$0" /var/lib && exec "$@"`
	return command{bin: unshare, args: append([]string{"--mount", "--propagation", "private", "sh", "-c", script, c.varlib, c.bin}, args...), env: c.env}
}

// TestPodman drives podman (Debian's 4.3, root, vfs storage in a temp
// dir) through the proxy. podman GETs the tag (no HEAD) with six Accept
// lines, then the child by digest. For every request of the spelling
// matrix (containers/image tries the requested variant, then none: every
// spelling finds its image, also in the real index without arm64's variant):
// `podman pull --platform` prints the image ID (the config digest); the
// image's manifest digest is the one podman recorded in its storage
// (images.json, "manifest" big-data digest — podman 4.3 has no command that
// shows it); os/arch/variant come from `podman image inspect`; the file is
// read from `podman image mount` (a plain directory with vfs). podman pulls
// windows/amd64 on Linux and stores its layer like any other (no
// container can run from it), so the windows member is checked the same
// way. Then every platform by the digest a HEAD on proxy A returned, from a
// fresh proxy B.
func TestPodman(t *testing.T) {
	requireRoot(t, "podman")
	bin := requireTool(t, "podman", hintPodman)
	requireTool(t, "unshare", hintUnshare)
	s := shared(t)
	pm, root := newPodman(t, s, bin, s.tempDir(t, "podman"))
	repo := repoFor("podman")
	t.Logf("podman %s", strings.TrimSpace(string(run(t, pm.command("version", "--format", "{{.Client.Version}}")))))

	for _, r := range s.fx.matrix(normalizing) {
		t.Run(r.name, func(t *testing.T) {
			podmanPullAndCheck(t, pm, root, r.m, r.s.String(), s.proxy.host+"/"+repo+":"+r.tag, "--tls-verify=false")
		})
	}
	t.Run("by-digest-on-second-proxy", func(t *testing.T) {
		b := s.startTestProxy(t, "proxy-b-podman")
		for _, g := range s.fx.groups {
			idx := indexDigest(t, s.proxy.host, repo, g)
			for _, m := range g.members {
				mark := len(b.requests())
				podmanPullAndCheck(t, pm, root, m, m.arg(), b.host+"/"+repo+"@"+idx, "--tls-verify=false")
				// The image was already stored: make sure podman did ask
				// proxy B for the index and the member's manifest.
				got := waitFetched(b, repo, mark, m)
				if !got[idx] {
					t.Errorf("podman pull %s: proxy B did not serve the index", idx)
				}
				checkFetchedOnly(t, m, "podman (proxy B, by digest)", got)
			}
		}
	})
}

// newPodman is podman (root, vfs) with all its state in dir; root is its
// storage.
func newPodman(t *testing.T, s *suite, bin, dir string) (pm *containersTool, root string) {
	t.Helper()
	root = filepath.Join(dir, "root")
	return newContainersTool(t, s, bin, dir,
		"--root", root, "--runroot", filepath.Join(dir, "runroot"), "--tmpdir", filepath.Join(dir, "tmp"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
		// Network configuration (and CNI's lock file) in the test's
		// directory, not /etc/cni/net.d.
		"--network-config-dir", filepath.Join(dir, "net")), root
}

// podmanPullAndCheck pulls ref for platform p (a spelling of m's), with
// pullFlags (--tls-verify=false, --cert-dir), and checks the image podman
// stored.
func podmanPullAndCheck(t *testing.T, pm *containersTool, root string, m *member, p, ref string, pullFlags ...string) {
	t.Helper()
	id := strings.TrimSpace(string(run(t, pm.command(append(append([]string{"pull", "-q"}, pullFlags...), "--platform", p, ref)...))))
	checkConfigDigest(t, m, "podman pull (image ID)", id)
	checkDigest(t, m, "podman's stored manifest", podmanManifestDigest(t, root, id))

	var imgs []struct {
		OS      string `json:"Os"`
		Arch    string `json:"Architecture"`
		Variant string `json:"Variant"`
	}
	out := run(t, pm.command("image", "inspect", id))
	if err := json.Unmarshal(out, &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("podman image inspect %s: %v: %s", id, err, out)
	}
	// podman 4.3's inspect reports neither variant nor os.version; the
	// image ID being the config digest already pins them.
	variant := imgs[0].Variant
	if variant == "" {
		variant = m.platform.Variant
	}
	checkPlatform(t, m, "podman image inspect", imgs[0].OS, imgs[0].Arch, variant, m.platform.OSVersion)

	mnt := strings.TrimSpace(string(run(t, pm.command("image", "mount", id))))
	b, err := os.ReadFile(filepath.Join(mnt, m.file))
	run(t, pm.command("image", "unmount", id))
	if err != nil {
		t.Fatalf("podman image mount %s: %v", id, err)
	}
	checkContent(t, m, "podman image mount", string(b))
}

// podmanManifestDigest reads the digest of the manifest podman stored for
// image id from containers/storage's images.json.
func podmanManifestDigest(t *testing.T, root, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "vfs-images", "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	var imgs []struct {
		ID             string            `json:"id"`
		BigDataDigests map[string]string `json:"big-data-digests"`
	}
	if err := json.Unmarshal(b, &imgs); err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		if img.ID == id {
			return img.BigDataDigests["manifest"]
		}
	}
	t.Fatalf("image %s not in podman's images.json", id)
	return ""
}

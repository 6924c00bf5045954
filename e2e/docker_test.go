package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

// dockerdAccept are the Accept header lines dockerd 20.10 sends (as
// separate lines, in random order) when it resolves a tag.
var dockerdAccept = []string{
	"application/json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
}

// windowsRefused is what dockerd on Linux says when the platform it
// resolved is a Windows image: it gets the right manifest and refuses it.
const windowsRefused = `image operating system "windows" cannot be used on this platform`

// TestDocker drives a private dockerd (Debian's docker.io, vfs storage, no
// networking) through the proxy. For every request of the spelling matrix
// (dockerd normalizes platforms as containerd does: every spelling finds
// its image, also in the real index without arm64's variant):
// `docker pull --platform` by tag, then the image ID (the config digest),
// its os/arch/variant from `docker image inspect`, the manifest digest
// dockerd fetched (from the proxy's request log: dockerd does not report
// it; a member dockerd pulled before is not fetched again, and its image
// ID alone pins it), and /platform read with `docker create` + `docker
// cp`. A
// windows/amd64 pull is refused by dockerd on Linux after it resolved the
// windows manifest; the test asserts exactly that. Then pulls by the
// digest a HEAD on proxy A returned, from a fresh proxy B, and the CLI's
// `docker manifest inspect --insecure -v` (no daemon) of both indexes.
func TestDocker(t *testing.T) {
	requireRoot(t, "dockerd")
	requireTool(t, "dockerd", hintDocker)
	requireTool(t, "containerd", hintContainerd)
	s := shared(t)
	dk := startDocker(t, s)
	repo := repoFor("docker")
	t.Logf("docker CLI %s, dockerd %s", dockerVersion(dk.cli), strings.TrimSpace(string(run(t, dk.command("version", "--format", "{{.Server.Version}}")))))

	pulled := map[*member]bool{}
	for _, r := range s.fx.matrix(normalizing) {
		t.Run(r.name, func(t *testing.T) {
			ref, p, m := s.proxy.host+"/"+repo+":"+r.tag, r.s.String(), r.m
			mark := len(s.proxy.requests())
			if m.windows() {
				dockerRefusesWindows(t, dk, m, p, ref)
			} else {
				dockerPullAndCheck(t, dk, m, p, ref, ref)
			}
			what := "dockerd --platform " + p
			if pulled[m] {
				// dockerd keeps the manifests it pulled (in containerd's
				// content store) and does not fetch m's again for another
				// spelling or another index listing it. The image ID it
				// chose is m's config, which no other member has, so it
				// chose m's manifest.
				checkFetchedNoOther(t, m, what, fetched(s.proxy, repo, mark))
				return
			}
			pulled[m] = true
			checkFetchedOnly(t, m, what, waitFetched(s.proxy, repo, mark, m))
		})
	}

	t.Run("by-digest-on-second-proxy", func(t *testing.T) {
		// A fresh dockerd: the first one keeps every manifest it pulled
		// in its content store and would not ask proxy B for them.
		dk := startDocker(t, s)
		b := s.startTestProxy(t, "proxy-b-docker")
		for _, g := range s.fx.groups {
			head, _ := regtest.Get(t, http.MethodHead, "http://"+s.proxy.host+"/v2/"+repo+"/manifests/"+g.base, dockerdAccept...)
			idx := head.Header.Get("Docker-Content-Digest")
			if head.StatusCode != http.StatusOK || idx == "" {
				t.Fatalf("HEAD %s:%s on proxy A: %d, digest %q", repo, g.base, head.StatusCode, idx)
			}
			ref := b.host + "/" + repo + "@" + idx
			for _, m := range g.members {
				mark := len(b.requests())
				if m.windows() {
					dockerRefusesWindows(t, dk, m, m.arg(), ref)
				} else {
					dockerPullAndCheck(t, dk, m, m.arg(), ref, ref)
					// dockerd keeps a digest reference per image; the next
					// platform's pull of the same index digest needs it gone
					// ("Cannot overwrite digest").
					run(t, dk.command("rmi", ref))
				}
				checkFetchedOnly(t, m, "dockerd (proxy B, by digest)", waitFetched(b, repo, mark, m))
			}
		}
	})

	t.Run("manifest-inspect", func(t *testing.T) {
		cli, version := newestDockerCLI(t)
		for _, g := range s.fx.groups {
			ref := s.proxy.host + "/" + repo + ":" + g.base
			c := command{bin: cli, args: []string{"manifest", "inspect", "--insecure", "-v", ref}, env: dk.env}
			out, _, err := c.output()
			if err != nil && g.oci && version < 23 && strings.Contains(err.Error(), "unsupported manifest media type") {
				// The 20.10 CLI cannot read OCI image manifests at all.
				t.Logf("docker CLI %s: manifest inspect of the OCI index is not supported by this CLI version: %v", dockerVersion(cli), err)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			var entries []struct {
				Descriptor struct {
					Digest   string `json:"digest"`
					Platform struct {
						OS        string `json:"os"`
						Arch      string `json:"architecture"`
						Variant   string `json:"variant"`
						OSVersion string `json:"os.version"`
					} `json:"platform"`
				}
				Raw []byte
			}
			if err := json.Unmarshal(out, &entries); err != nil {
				t.Fatalf("docker manifest inspect -v %s: %v\n%s", ref, err, out)
			}
			if len(entries) != len(g.members) {
				t.Errorf("docker manifest inspect %s: %d entries, want %d", ref, len(entries), len(g.members))
			}
			for _, m := range g.members {
				found := false
				for _, e := range entries {
					if e.Descriptor.Digest != m.digest.String() {
						continue
					}
					found = true
					p := e.Descriptor.Platform
					if p.OS != m.want.OS || p.Arch != m.want.Architecture || p.Variant != m.want.Variant || p.OSVersion != m.platform.OSVersion {
						t.Errorf("docker manifest inspect %s: %s listed as %+v", ref, m.arg(), p)
					}
					checkManifest(t, m, "docker manifest inspect", e.Raw)
				}
				if !found {
					t.Errorf("docker manifest inspect %s: no entry for %s (%s)", ref, m.arg(), m.digest)
				}
			}
		}
	})
}

// startDocker starts a private containerd and a dockerd using it, in a
// fresh directory.
func startDocker(t *testing.T, s *suite) *dockerDaemon {
	t.Helper()
	dir := s.tempDir(t, "docker")
	return startDockerd(t, s, dir+"/d", startContainerd(t, s, dir+"/c"))
}

// dockerPullAndCheck pulls ref for platform p (a spelling of m's) and
// checks the image dockerd stored under name (image ID = config digest,
// platform) and the file in its filesystem.
func dockerPullAndCheck(t *testing.T, dk *dockerDaemon, m *member, p, ref, name string) {
	t.Helper()
	run(t, dk.command("pull", "-q", "--platform", p, ref))
	var img struct {
		ID        string `json:"Id"`
		OS        string `json:"Os"`
		Arch      string `json:"Architecture"`
		Variant   string `json:"Variant"`
		OSVersion string `json:"OsVersion"`
	}
	out := run(t, dk.command("image", "inspect", "--format", "{{json .}}", name))
	if err := json.Unmarshal(out, &img); err != nil {
		t.Fatalf("docker image inspect %s: %v: %s", name, err, out)
	}
	checkConfigDigest(t, m, "docker image inspect .Id", img.ID)
	checkPlatform(t, m, "docker image inspect", img.OS, img.Arch, img.Variant, img.OSVersion)

	cid := strings.TrimSpace(string(run(t, dk.command("create", "--platform", p, name, "/platform"))))
	defer run(t, dk.command("rm", cid))
	content, err := fileFromTar(bytes.NewReader(run(t, dk.command("cp", cid+":/"+m.file, "-"))), "platform")
	if err != nil {
		t.Fatalf("docker cp %s:/%s: %v", cid, m.file, err)
	}
	checkContent(t, m, "docker create + docker cp", content)
}

// dockerRefusesWindows: dockerd on Linux resolves the windows/amd64 entry
// and then refuses the image; nothing is stored.
func dockerRefusesWindows(t *testing.T, dk *dockerDaemon, m *member, p, ref string) {
	t.Helper()
	_, _, err := dk.command("pull", "--platform", p, ref).output()
	if err == nil || !strings.Contains(err.Error(), windowsRefused) {
		t.Errorf("docker pull --platform %s %s: want dockerd on Linux to refuse with %q, got %v", p, ref, windowsRefused, err)
	}
}

// waitFetched waits (the proxy logs a request when it has answered it)
// until the log shows m's manifest served after mark, and returns the
// manifests of repo served since mark.
func waitFetched(p *proxyProc, repo string, mark int, m *member) map[string]bool {
	var got map[string]bool
	_ = waitFor(nil, 5*time.Second, func() bool {
		got = fetched(p, repo, mark)
		return got[m.digest.String()]
	})
	return got
}

var dockerVersionRE = regexp.MustCompile(`version (\d+)\.(\d+)\.([0-9A-Za-z.+~-]+)`)

// dockerVersion is the CLI's version ("28.2.2").
func dockerVersion(cli string) string {
	out, _, err := command{bin: cli, args: []string{"--version"}}.output()
	if err != nil {
		return "unknown"
	}
	if m := dockerVersionRE.FindStringSubmatch(string(out)); m != nil {
		return m[1] + "." + m[2] + "." + m[3]
	}
	return strings.TrimSpace(string(out))
}

// newestDockerCLI picks the newest docker CLI installed for `docker
// manifest inspect`, which is client-side only: the 20.10 CLI cannot read
// OCI image manifests, newer ones can.
func newestDockerCLI(t *testing.T) (string, int) {
	t.Helper()
	best, bestMajor := "", -1
	for _, c := range []string{findTool("docker"), "/usr/local/bin/docker", "/usr/bin/docker"} {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err != nil {
			continue
		}
		major, _ := strconv.Atoi(strings.SplitN(dockerVersion(c), ".", 2)[0])
		if major > bestMajor {
			best, bestMajor = c, major
		}
	}
	if best == "" {
		best = requireTool(t, "docker", hintDocker)
	}
	t.Logf("docker manifest inspect with %s (%s)", best, dockerVersion(best))
	return best, bestMajor
}

package e2e_test

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestRegctl drives regctl (regclient; seven Accept lines, HEAD then GET)
// through the proxy, with its configuration in a temp file (REGCTL_CONFIG)
// and the proxy marked plain HTTP with --host. Per group: `manifest get
// --format raw-body` is the index the proxy serves. Per request of the
// spelling matrix (regclient normalizes platforms, so every spelling finds
// its image, also in the real index without arm64's variant): `image
// digest --platform`, `manifest get --platform --format raw-body` (the
// member's bytes), `image config --platform --format raw-body`, and `image
// get-file --platform` for the baked file (regctl reads it from the layers
// itself).
func TestRegctl(t *testing.T) {
	bin := requireTool(t, "regctl", hintRegctl)
	s := shared(t)
	dir := s.tempDir(t, "regctl")
	env := s.env("REGCTL_CONFIG=" + filepath.Join(dir, "config.json"))
	repo := repoFor("regctl")
	rc := regctlFor(bin, env, s.proxy.host)
	t.Logf("regctl %s", bytes.TrimSpace(run(t, rc("version", "--format", "{{.VCSTag}}"))))

	for _, g := range s.fx.groups {
		ref := s.proxy.host + "/" + repo + ":" + g.base
		index, _ := fetchIndex(t, s.proxy.host, repo, g)
		if got := run(t, rc("manifest", "get", "--format", "raw-body", ref)); !bytes.Equal(got, index) {
			t.Errorf("regctl manifest get %s: not the index the proxy serves:\n%s", ref, got)
		}
	}
	for _, r := range s.fx.matrix(normalizing) {
		t.Run(r.name, func(t *testing.T) {
			ref, p, m := s.proxy.host+"/"+repo+":"+r.tag, r.s.String(), r.m
			checkDigest(t, m, "regctl image digest --platform "+p, string(run(t, rc("image", "digest", "--platform", p, ref))))
			checkManifest(t, m, "regctl manifest get --platform "+p, run(t, rc("manifest", "get", "--platform", p, "--format", "raw-body", ref)))
			checkConfig(t, m, "regctl image config --platform "+p, run(t, rc("image", "config", "--platform", p, "--format", "raw-body", ref)))
			checkContent(t, m, "regctl image get-file --platform "+p, string(run(t, rc("image", "get-file", "--platform", p, ref, "/"+m.file))))
		})
	}
}

// regctlFor runs regctl with host marked plain HTTP.
func regctlFor(bin string, env []string, host string) func(args ...string) command {
	return func(args ...string) command {
		return command{bin: bin, args: append([]string{"--host", "reg=" + host + ",tls=disabled"}, args...), env: env}
	}
}

// regctlPullAndCheck checks, with regctl, m's digest, manifest, config and
// baked file (read from the layers) as ref serves them.
func regctlPullAndCheck(t *testing.T, rc func(args ...string) command, m *member, ref string) {
	t.Helper()
	checkDigest(t, m, "regctl image digest --platform "+ref, string(run(t, rc("image", "digest", "--platform", m.arg(), ref))))
	checkManifest(t, m, "regctl manifest get --platform "+ref, run(t, rc("manifest", "get", "--platform", m.arg(), "--format", "raw-body", ref)))
	checkConfig(t, m, "regctl image config --platform "+ref, run(t, rc("image", "config", "--platform", m.arg(), "--format", "raw-body", ref)))
	checkContent(t, m, "regctl image get-file --platform "+ref, string(run(t, rc("image", "get-file", "--platform", m.arg(), ref, "/"+m.file))))
}

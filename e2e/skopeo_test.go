package e2e_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSkopeo drives skopeo (Debian's 1.9, containers/image like podman:
// GET by tag, six Accept lines) through the proxy. Per group: `inspect
// --raw` gives the index bytes the proxy serves, and `copy --all` to dir:
// stores that index and every member's manifest byte-identical. Per
// request of the spelling matrix, selected with
// --override-os/--override-arch/--override-variant (containers/image tries
// the requested variant, then none, so every spelling finds its image):
// `inspect --config --raw` gives the member's config bytes, and `copy` to
// dir: stores the member's manifest (so its digest), config and layer, from
// which the file is read.
func TestSkopeo(t *testing.T) {
	bin := requireTool(t, "skopeo", hintSkopeo)
	s := shared(t)
	dir := s.tempDir(t, "skopeo")
	sk := newContainersTool(t, s, bin, dir, "--insecure-policy")
	repo := repoFor("skopeo")
	t.Logf("%s", strings.TrimSpace(string(run(t, sk.command("--version")))))

	for _, g := range s.fx.groups {
		ref := "docker://" + s.proxy.host + "/" + repo + ":" + g.base
		index, _ := fetchIndex(t, s.proxy.host, repo, g)
		if got := run(t, sk.command("inspect", "--raw", "--tls-verify=false", ref)); !bytes.Equal(got, index) {
			t.Errorf("skopeo inspect --raw %s: not the index the proxy serves:\n%s", ref, got)
		}
		all := filepath.Join(dir, "all-"+g.name)
		run(t, sk.command("copy", "-q", "--all", "--src-tls-verify=false", ref, "dir:"+all))
		if got, err := os.ReadFile(filepath.Join(all, "manifest.json")); err != nil || !bytes.Equal(got, index) {
			t.Errorf("skopeo copy --all %s: stored index differs from the served one (%v)", ref, err)
		}
		for _, m := range g.members {
			if got, err := os.ReadFile(filepath.Join(all, m.digest.Hex+".manifest.json")); err != nil {
				t.Errorf("skopeo copy --all: %s's manifest: %v", m.arg(), err)
			} else {
				checkManifest(t, m, "skopeo copy --all", got)
			}
		}

	}
	for i, r := range s.fx.matrix(normalizing) {
		t.Run(r.name, func(t *testing.T) {
			ref, m := "docker://"+s.proxy.host+"/"+repo+":"+r.tag, r.m
			override := []string{"--override-os", r.s.os, "--override-arch", r.s.arch}
			if r.s.variant != "" {
				override = append(override, "--override-variant", r.s.variant)
			}
			what := "skopeo " + strings.Join(override, " ")
			sub := func(args ...string) command { return sk.command(append(append([]string{}, override...), args...)...) }
			checkConfig(t, m, what+" inspect --config --raw", run(t, sub("inspect", "--config", "--raw", "--tls-verify=false", ref)))

			out := filepath.Join(dir, fmt.Sprintf("one-%d", i))
			run(t, sub("copy", "-q", "--src-tls-verify=false", ref, "dir:"+out))
			got, err := os.ReadFile(filepath.Join(out, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			checkManifest(t, m, what+" copy", got)
			cfg, err := os.ReadFile(filepath.Join(out, m.configDigest.Hex))
			if err != nil {
				t.Fatalf("skopeo copy: config blob: %v", err)
			}
			checkConfig(t, m, what+" copy: config blob", cfg)
			content, err := fileFromLayerFile(filepath.Join(out, m.layer.Hex), m.file)
			if err != nil {
				t.Fatalf("skopeo copy: layer: %v", err)
			}
			checkContent(t, m, what+" copy: layer", content)
		})
	}
}

// skopeoPullAndCheck checks, with skopeo selecting m's platform with
// --override-*, m's config as ref serves it, and copies it to a fresh dir:
// manifest, config and the baked file from the layer.
func skopeoPullAndCheck(t *testing.T, sk *containersTool, dir string, m *member, ref string) {
	t.Helper()
	override := []string{"--override-os", m.want.OS, "--override-arch", m.want.Architecture}
	if m.want.Variant != "" {
		override = append(override, "--override-variant", m.want.Variant)
	}
	sub := func(args ...string) command { return sk.command(append(append([]string{}, override...), args...)...) }
	checkConfig(t, m, "skopeo inspect --config --raw "+ref, run(t, sub("inspect", "--config", "--raw", "--tls-verify=false", ref)))

	out, err := os.MkdirTemp(dir, "one-"+m.group.name+"-"+m.slug()+"-")
	if err != nil {
		t.Fatal(err)
	}
	run(t, sub("copy", "-q", "--src-tls-verify=false", ref, "dir:"+out))
	got, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, m, "skopeo copy --override-* "+ref, got)
	cfg, err := os.ReadFile(filepath.Join(out, m.configDigest.Hex))
	if err != nil {
		t.Fatalf("skopeo copy: config blob: %v", err)
	}
	checkConfig(t, m, "skopeo copy: config blob", cfg)
	content, err := fileFromLayerFile(filepath.Join(out, m.layer.Hex), m.file)
	if err != nil {
		t.Fatalf("skopeo copy: layer: %v", err)
	}
	checkContent(t, m, "skopeo copy: layer", content)
}

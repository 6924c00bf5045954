package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestOras drives oras (GET by tag with one comma-joined Accept header,
// then the child with exactly the media type its descriptor names — so
// the synthesized index must carry each child's true media type; oras
// also checks that the manifest it gets is for the platform it asked for)
// through the proxy. Per group: `manifest fetch` is the index the proxy
// serves. Per request of the spelling matrix: `manifest fetch --platform
// --descriptor` (digest), `manifest fetch --platform` (bytes), `manifest
// fetch-config --platform`, and `copy --platform` into an OCI layout, whose
// layer is read for the file; a spelling oras' exact-variant matcher cannot
// find must fail with its "no matching manifest".
func TestOras(t *testing.T) {
	bin := requireTool(t, "oras", hintOras)
	s := shared(t)
	dir := s.tempDir(t, "oras")
	env := s.env()
	o := &orasTool{bin: bin, env: env, regConfig: filepath.Join(dir, "auth.json"), dir: dir}
	regConfig, or := o.regConfig, o.command
	repo := repoFor("oras")
	t.Logf("%s", bytes.TrimSpace(run(t, command{bin: bin, args: []string{"version"}, env: env})))

	for _, g := range s.fx.groups {
		ref := s.proxy.host + "/" + repo + ":" + g.base
		index, _ := fetchIndex(t, s.proxy.host, repo, g)
		if got := run(t, o.command("manifest", "fetch", "--plain-http", ref)); !bytes.Equal(got, index) {
			t.Errorf("oras manifest fetch %s: not the index the proxy serves:\n%s", ref, got)
		}
	}
	for i, r := range s.fx.matrix(exactVariant) {
		t.Run(r.name, func(t *testing.T) {
			ref, p, m := s.proxy.host+"/"+repo+":"+r.tag, r.s.String(), r.m
			if !r.found {
				checkNoMatch(t, r, or("manifest", "fetch", "--plain-http", "--platform", p, "--descriptor", ref), "no matching manifest was found")
				return
			}
			var desc v1.Descriptor
			out := run(t, or("manifest", "fetch", "--plain-http", "--platform", p, "--descriptor", ref))
			if err := json.Unmarshal(out, &desc); err != nil {
				t.Fatalf("oras manifest fetch --descriptor: %v: %s", err, out)
			}
			checkDigest(t, m, "oras manifest fetch --platform "+p+" --descriptor", desc.Digest.String())
			if desc.MediaType != m.mediaType {
				t.Errorf("oras: descriptor media type %s, pushed %s", desc.MediaType, m.mediaType)
			}
			checkManifest(t, m, "oras manifest fetch --platform "+p, run(t, or("manifest", "fetch", "--plain-http", "--platform", p, ref)))
			checkConfig(t, m, "oras manifest fetch-config --platform "+p, run(t, or("manifest", "fetch-config", "--plain-http", "--platform", p, ref)))

			// A layout per request: one that already holds the member's
			// blobs from another spelling would prove nothing.
			layout := filepath.Join(dir, fmt.Sprintf("layout-%d", i))
			run(t, command{bin: bin, args: []string{"copy", "--from-plain-http", "--from-registry-config", regConfig, "--platform", p, ref, "--to-oci-layout", layout + ":" + r.tag}, env: env})
			blob := func(h v1.Hash) string { return filepath.Join(layout, "blobs", h.Algorithm, h.Hex) }
			b, err := os.ReadFile(blob(m.digest))
			if err != nil {
				t.Fatalf("oras copy: the member's manifest is not in the layout: %v", err)
			}
			checkManifest(t, m, "oras copy --platform "+p, b)
			content, err := fileFromLayerFile(blob(m.layer), m.file)
			if err != nil {
				t.Fatalf("oras copy: layer: %v", err)
			}
			checkContent(t, m, "oras copy --platform "+p+": layer", content)
		})
	}
}

// orasTool runs oras with its registry configuration in a temp file and
// copies into OCI layouts under dir.
type orasTool struct {
	bin, regConfig, dir string
	env                 []string
}

func (o *orasTool) command(args ...string) command {
	return command{bin: o.bin, args: append(args, "--registry-config", o.regConfig), env: o.env}
}

// orasPullAndCheck checks, with oras, m's descriptor, manifest and config
// as ref serves them, and copies the platform into a fresh OCI layout
// whose layer is read for the baked file.
func orasPullAndCheck(t *testing.T, o *orasTool, m *member, ref string) {
	t.Helper()
	var desc v1.Descriptor
	out := run(t, o.command("manifest", "fetch", "--plain-http", "--platform", m.arg(), "--descriptor", ref))
	if err := json.Unmarshal(out, &desc); err != nil {
		t.Fatalf("oras manifest fetch --descriptor: %v: %s", err, out)
	}
	checkDigest(t, m, "oras manifest fetch --platform --descriptor "+ref, desc.Digest.String())
	if desc.MediaType != m.mediaType {
		t.Errorf("oras: descriptor media type %s, pushed %s", desc.MediaType, m.mediaType)
	}
	checkManifest(t, m, "oras manifest fetch --platform "+ref, run(t, o.command("manifest", "fetch", "--plain-http", "--platform", m.arg(), ref)))
	checkConfig(t, m, "oras manifest fetch-config --platform "+ref, run(t, o.command("manifest", "fetch-config", "--plain-http", "--platform", m.arg(), ref)))

	layout, err := os.MkdirTemp(o.dir, "layout-")
	if err != nil {
		t.Fatal(err)
	}
	run(t, command{bin: o.bin, args: []string{"copy", "--from-plain-http", "--from-registry-config", o.regConfig, "--platform", m.arg(), ref, "--to-oci-layout", layout + ":" + m.group.name + "-" + m.slug()}, env: o.env})
	blob := func(h v1.Hash) string { return filepath.Join(layout, "blobs", h.Algorithm, h.Hex) }
	b, err := os.ReadFile(blob(m.digest))
	if err != nil {
		t.Fatalf("oras copy: the member's manifest is not in the layout: %v", err)
	}
	checkManifest(t, m, "oras copy --platform "+ref, b)
	content, err := fileFromLayerFile(blob(m.layer), m.file)
	if err != nil {
		t.Fatalf("oras copy: layer: %v", err)
	}
	checkContent(t, m, "oras copy --platform "+ref, content)
}

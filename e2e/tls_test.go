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

// tlsPuller is one client pulling over TLS: setup tells it to trust the
// proxy's CA the way its users do, and returns the function that pulls
// one member from ref and checks what it got.
type tlsPuller struct {
	name, hint string
	// proto is the HTTP version the client ends up speaking: Go clients
	// whose transport asks for HTTP/2 negotiate it; containers/image
	// (skopeo, podman) offers only HTTP/1.1 in its ALPN list.
	proto string
	setup func(t *testing.T, s *suite, px *tlsProxy, bin, dir string) func(t *testing.T, m *member, ref string)
}

var tlsPullers = []tlsPuller{
	{"crane", hintCrane, "HTTP/2.0", craneTLS},
	{"regctl", hintRegctl, "HTTP/2.0", regctlTLS},
	{"oras", hintOras, "HTTP/2.0", orasTLS},
	{"skopeo", hintSkopeo, "HTTP/1.1", skopeoTLS},
	{"podman", hintPodman, "HTTP/1.1", podmanTLS},
}

// TestTLSClients: crane, regctl, oras, skopeo and podman pull every
// platform of both groups through a proxy serving HTTPS, each trusting
// only the test's CA in its users' way (crane: SSL_CERT_FILE, the Go
// system pool; regctl: `registry set --cacert`; oras: --ca-file; skopeo
// and podman: a --cert-dir holding ca.crt), and get the member's manifest
// and its /platform file. Every request of the Go clients is HTTP/2;
// containers/image's are HTTP/1.1 (what it offers), asserted as such.
func TestTLSClients(t *testing.T) {
	s := shared(t)
	px := s.startTLSProxy(t, "tls-clients", false)
	for _, c := range tlsPullers {
		t.Run(c.name, func(t *testing.T) {
			bin := requireTool(t, c.name, c.hint)
			if c.name == "podman" {
				requireRoot(t, "podman")
			}
			repo := repoFor(c.name)
			mark := len(px.requests())
			// The client's name alone: podman refuses a runroot path
			// over 50 characters.
			pull := c.setup(t, s, px, bin, s.tempDir(t, c.name))
			for _, m := range s.fx.members() {
				t.Run(m.group.name+"/"+m.slug(), func(t *testing.T) { pull(t, m, px.host+"/"+repo+":"+m.group.base) })
			}
			lines := px.logged(mark, "/v2/"+repo+"/")
			protos := map[string]int{}
			for _, l := range lines {
				protos[l.Proto]++
			}
			if len(lines) == 0 || protos[c.proto] != len(lines) {
				t.Errorf("%s over TLS: protocols %v, want %s for all %d requests", c.name, protos, c.proto, len(lines))
			}
			t.Logf("%s: %d requests over TLS, %v", c.name, len(lines), protos)
		})
	}
}

func craneTLS(t *testing.T, s *suite, px *tlsProxy, bin, _ string) func(*testing.T, *member, string) {
	env := s.env("SSL_CERT_FILE=" + px.caFile)
	crane := func(args ...string) command { return command{bin: bin, args: args, env: env} }
	return func(t *testing.T, m *member, ref string) {
		checkDigest(t, m, "crane digest --platform (TLS)", string(run(t, crane("digest", "--platform", m.arg(), ref))))
		content, err := fileFromTar(bytes.NewReader(run(t, crane("export", "--platform", m.arg(), ref, "-"))), m.file)
		if err != nil {
			t.Fatalf("crane export over TLS: %v", err)
		}
		checkContent(t, m, "crane export --platform (TLS)", content)
	}
}

func regctlTLS(t *testing.T, s *suite, px *tlsProxy, bin, dir string) func(*testing.T, *member, string) {
	env := s.env("REGCTL_CONFIG=" + filepath.Join(dir, "config.json"))
	rc := func(args ...string) command { return command{bin: bin, args: args, env: env} }
	run(t, rc("registry", "set", px.host, "--cacert", string(px.ca.PEM)))
	return func(t *testing.T, m *member, ref string) {
		checkDigest(t, m, "regctl image digest --platform (TLS)", string(run(t, rc("image", "digest", "--platform", m.arg(), ref))))
		checkContent(t, m, "regctl image get-file --platform (TLS)", string(run(t, rc("image", "get-file", "--platform", m.arg(), ref, "/"+m.file))))
	}
}

func orasTLS(t *testing.T, s *suite, px *tlsProxy, bin, dir string) func(*testing.T, *member, string) {
	env := s.env()
	regConfig := filepath.Join(dir, "auth.json")
	n := 0
	return func(t *testing.T, m *member, ref string) {
		var desc v1.Descriptor
		out := run(t, command{bin: bin, args: []string{"manifest", "fetch", "--ca-file", px.caFile, "--registry-config", regConfig, "--platform", m.arg(), "--descriptor", ref}, env: env})
		if err := json.Unmarshal(out, &desc); err != nil {
			t.Fatalf("oras manifest fetch --descriptor over TLS: %v: %s", err, out)
		}
		checkDigest(t, m, "oras manifest fetch --platform --descriptor (TLS)", desc.Digest.String())
		n++
		layout := filepath.Join(dir, fmt.Sprintf("layout-%d", n))
		run(t, command{bin: bin, args: []string{"copy", "--from-ca-file", px.caFile, "--from-registry-config", regConfig, "--platform", m.arg(), ref, "--to-oci-layout", layout + ":x"}, env: env})
		content, err := fileFromLayerFile(filepath.Join(layout, "blobs", m.layer.Algorithm, m.layer.Hex), m.file)
		if err != nil {
			t.Fatalf("oras copy over TLS: layer: %v", err)
		}
		checkContent(t, m, "oras copy --platform (TLS)", content)
	}
}

func skopeoTLS(t *testing.T, s *suite, px *tlsProxy, bin, dir string) func(*testing.T, *member, string) {
	sk := newContainersTool(t, s, bin, dir, "--insecure-policy")
	n := 0
	return func(t *testing.T, m *member, ref string) {
		args := []string{"--override-os", m.want.OS, "--override-arch", m.want.Architecture}
		if m.want.Variant != "" {
			args = append(args, "--override-variant", m.want.Variant)
		}
		n++
		out := filepath.Join(dir, fmt.Sprintf("copy-%d", n))
		run(t, sk.command(append(args, "copy", "-q", "--src-cert-dir", px.certDir, "docker://"+ref, "dir:"+out)...))
		got, err := os.ReadFile(filepath.Join(out, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		checkManifest(t, m, "skopeo copy --src-cert-dir (TLS)", got)
		content, err := fileFromLayerFile(filepath.Join(out, m.layer.Hex), m.file)
		if err != nil {
			t.Fatalf("skopeo copy over TLS: layer: %v", err)
		}
		checkContent(t, m, "skopeo copy (TLS)", content)
	}
}

func podmanTLS(t *testing.T, s *suite, px *tlsProxy, bin, dir string) func(*testing.T, *member, string) {
	requireTool(t, "unshare", hintUnshare)
	pm, root := newPodman(t, s, bin, dir)
	return func(t *testing.T, m *member, ref string) {
		podmanPullAndCheck(t, pm, root, m, m.arg(), ref, "--cert-dir", px.certDir)
	}
}

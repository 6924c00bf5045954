package e2e_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

func sha256Of(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// checkDigest compares a manifest digest a client reported with the
// digest of the member's manifest as pushed.
func checkDigest(t *testing.T, m *member, what, got string) {
	t.Helper()
	if got = strings.TrimSpace(got); got != m.digest.String() {
		t.Errorf("%s: manifest digest %q, want %s (%s %s)", what, got, m.digest, m.group.name, m.arg())
	}
}

// checkManifest compares manifest bytes a client fetched with the bytes
// pushed.
func checkManifest(t *testing.T, m *member, what string, got []byte) {
	t.Helper()
	if !bytes.Equal(got, m.manifest) {
		t.Errorf("%s: manifest (digest %s, %d bytes) is not the pushed %s manifest %s:\n%s", what, sha256Of(got), len(got), m.arg(), m.digest, got)
	}
}

// checkConfig compares config bytes a client fetched with the config
// pushed: same digest, and (said explicitly) the platform asked for.
func checkConfig(t *testing.T, m *member, what string, got []byte) {
	t.Helper()
	var cf v1.ConfigFile
	if err := json.Unmarshal(got, &cf); err != nil {
		t.Errorf("%s: config is not JSON: %v: %q", what, err, got)
		return
	}
	checkPlatform(t, m, what, cf.OS, cf.Architecture, cf.Variant, cf.OSVersion)
	if d := sha256Of(got); d != m.configDigest {
		t.Errorf("%s: config digest %s, want %s", what, d, m.configDigest)
	}
}

// checkConfigDigest compares a config digest (an image ID) a client
// reported.
func checkConfigDigest(t *testing.T, m *member, what, got string) {
	t.Helper()
	got = strings.TrimSpace(got)
	if !strings.Contains(got, ":") {
		got = "sha256:" + got
	}
	if got != m.configDigest.String() {
		t.Errorf("%s: config digest (image ID) %s, want %s (%s %s)", what, got, m.configDigest, m.group.name, m.arg())
	}
}

// checkPlatform compares the platform a client reports for the image it
// got with the platform pushed.
func checkPlatform(t *testing.T, m *member, what, os, arch, variant, osVersion string) {
	t.Helper()
	p := m.platform
	if os != p.OS || arch != p.Architecture || variant != p.Variant || osVersion != p.OSVersion {
		t.Errorf("%s: platform os=%q arch=%q variant=%q os.version=%q, want os=%q arch=%q variant=%q os.version=%q",
			what, os, arch, variant, osVersion, p.OS, p.Architecture, p.Variant, p.OSVersion)
	}
}

// checkContent compares the baked file's content.
func checkContent(t *testing.T, m *member, what, got string) {
	t.Helper()
	if got != m.content {
		t.Errorf("%s: %s holds %q, want %q", what, m.file, got, m.content)
	}
}

// fileFromTar reads the file named want from a tar stream; names are
// compared without leading "./" or "/".
func fileFromTar(r io.Reader, want string) (string, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s not in the archive", want)
		}
		if err != nil {
			return "", err
		}
		if strings.TrimPrefix(path.Clean("/"+h.Name), "/") == want {
			b, err := io.ReadAll(tr)
			return string(b), err
		}
	}
}

// fileFromLayerFile reads want from a gzipped layer tar on disk.
func fileFromLayerFile(layer, want string) (string, error) {
	f, err := os.Open(layer)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", layer, err)
	}
	return fileFromTar(zr, want)
}

// fetchIndex GETs repo:tag from host asking for every manifest type and
// checks that it is the group's index: the media type the members call for,
// and exactly one entry per member with the member's digest, media type,
// size and platform (normalized; os.version from the config).
func fetchIndex(t *testing.T, host, repo string, g *group) ([]byte, v1.Hash) {
	t.Helper()
	resp, body := regtest.Get(t, http.MethodGet, "http://"+host+"/v2/"+repo+"/manifests/"+g.base, regtest.AllManifestTypes...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/%s:%s: %d %s", host, repo, g.base, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != string(g.indexType()) {
		t.Errorf("%s:%s: Content-Type %q, want %q", repo, g.base, ct, g.indexType())
	}
	d := sha256Of(body)
	if got := resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("%s:%s: Docker-Content-Digest %q, body hashes to %s", repo, g.base, got, d)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s:%s: %v", repo, g.base, err)
	}
	if im.MediaType != g.indexType() {
		t.Errorf("%s:%s: mediaType %q, want %q", repo, g.base, im.MediaType, g.indexType())
	}
	byDigest := map[v1.Hash]v1.Descriptor{}
	for _, e := range im.Manifests {
		byDigest[e.Digest] = e
	}
	if len(im.Manifests) != len(g.members) {
		t.Errorf("%s:%s: %d entries, want %d", repo, g.base, len(im.Manifests), len(g.members))
	}
	for _, m := range g.members {
		e, ok := byDigest[m.digest]
		if !ok {
			t.Errorf("%s:%s: no entry for %s (%s)", repo, g.base, m.arg(), m.digest)
			continue
		}
		want := m.want
		want.OSVersion = m.platform.OSVersion
		if e.Platform == nil || !e.Platform.Equals(want) {
			t.Errorf("%s:%s: entry %s has platform %+v, want %+v", repo, g.base, m.digest, e.Platform, want)
		}
		if e.MediaType != m.mediaType || e.Size != int64(len(m.manifest)) {
			t.Errorf("%s:%s: entry %s is %s, %d bytes; pushed %s, %d bytes", repo, g.base, m.digest, e.MediaType, e.Size, m.mediaType, len(m.manifest))
		}
	}
	return body, d
}

// fetched returns the digests of the manifests of repo that p served by
// digest (GET, status 200) in the log lines after skip.
func fetched(p *proxyProc, repo string, skip int) map[string]bool {
	reqs := p.requests()
	out := map[string]bool{}
	prefix := "/v2/" + repo + "/manifests/sha256:"
	for _, r := range reqs[min(skip, len(reqs)):] {
		if r.Method == http.MethodGet && r.Status == http.StatusOK && strings.HasPrefix(r.Path, prefix) {
			out[strings.TrimPrefix(r.Path, "/v2/"+repo+"/manifests/")] = true
		}
	}
	return out
}

// checkFetchedOnly checks that, of the group's members, the client fetched
// exactly m's manifest.
func checkFetchedOnly(t *testing.T, m *member, what string, got map[string]bool) {
	t.Helper()
	if !got[m.digest.String()] {
		t.Errorf("%s: the proxy did not serve %s's manifest %s; it served %v", what, m.arg(), m.digest, keys(got))
	}
	checkFetchedNoOther(t, m, what, got)
}

// checkFetchedNoOther checks that, of the group's members, the client
// fetched no other manifest than m's.
func checkFetchedNoOther(t *testing.T, m *member, what string, got map[string]bool) {
	t.Helper()
	for _, o := range m.group.members {
		if o != m && got[o.digest.String()] {
			t.Errorf("%s: asked for %s, but fetched %s's manifest %s too", what, m.arg(), o.arg(), o.digest)
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

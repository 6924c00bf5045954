package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

// TestCachePurgeCommand: `proxy serve` in front of an upstream keeps what
// it serves under <dataDir>/content; `proxy cache purge` drops a digest
// from it, as a user the rules let delete.
func TestCachePurgeCommand(t *testing.T) {
	backend := runServe(t, "--data-dir", t.TempDir())
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	htpasswd := regtest.Htpasswd(t, map[string]string{"ci": "pw", "dev": "pw"})
	conf := "auth: {htpasswd: " + htpasswd + ", anonymousRead: true, rules: [{repositories: 'x', read: ['*'], write: [ci]}]}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	front := runServe(t, "--upstream", "http://"+backend, "--config", cfg, "--data-dir", dir)
	img := regtest.PlatformImage(t, "linux/arm64", false)
	r, _ := name.NewTag(backend+"/x:1-linux-arm64", name.Insecure)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	dref, err := name.NewDigest(front+"/x@"+ld.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	l, err := remote.Layer(dref, remote.WithAuth(&authn.Basic{Username: "dev", Password: "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := l.Compressed()
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	stored := filepath.Join(dir, "content/manifold/content/v1/blobs/sha256", ld.Hex[:2], ld.Hex)
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(stored); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(stored); err != nil {
		t.Fatalf("the blob was not stored under the data dir: %v", err)
	}

	purge := func(user string, args ...string) (string, error) {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&bytes.Buffer{})
		root.SetIn(strings.NewReader("pw\n"))
		root.SetArgs(append([]string{"cache", "purge", "--url", "http://" + front, "--username", user, "--password-stdin"}, args...))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	if _, err := purge("dev", "x", "--digest", ld.String()); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Errorf("a user who may not delete purged: %v", err)
	}
	out, err := purge("ci", "x", "--digest", ld.String())
	if err != nil || !strings.Contains(out, "purged x@"+ld.String()) {
		t.Fatalf("purge: %q %v", out, err)
	}
	if _, err := os.Stat(stored); err == nil {
		t.Error("the purged blob is still stored")
	}
	if out, err := purge("ci", "x"); err != nil || !strings.Contains(out, "purged x") {
		t.Errorf("purge of a repository: %q %v", out, err)
	}
}

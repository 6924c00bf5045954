package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/config"
	"github.com/manifold-proxy/manifold/internal/regtest"
)

// TestServeTLS: `proxy serve --tls-cert --tls-key` serves the registry
// over HTTPS with HTTP/2: per-platform tags pushed through it, the bare
// tag pulled for each platform, by a client that trusts only the test's
// CA.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	ca := regtest.NewCA(t)
	dir := t.TempDir()
	cert, key, _ := ca.Issue(t, dir, "server", "127.0.0.1", "localhost")
	client := &http.Client{Transport: ca.Transport()}
	addr, logs := serveWith(t, "https://", client, "--tls-cert", cert, "--tls-key", key, "--data-dir", filepath.Join(dir, "data"))

	resp, err := client.Get("https://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("GET /v2/ over TLS: %s, want HTTP/2.0", resp.Proto)
	}
	if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %d, want 400", resp.StatusCode)
		}
	}
	want := map[string]v1.Hash{}
	for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} {
		img := regtest.PlatformImage(t, p, false)
		ref, _ := name.NewTag(addr + "/demo/app:1.0-" + strings.ReplaceAll(p, "/", "-"))
		if err := remote.Write(ref, img, remote.WithTransport(ca.Transport())); err != nil {
			t.Fatalf("push over TLS: %v", err)
		}
		want[p] = mustDigest(img)
	}
	bare, _ := name.NewTag(addr + "/demo/app:1.0")
	for p, d := range want {
		pl, _ := v1.ParsePlatform(p)
		img, err := remote.Image(bare, remote.WithPlatform(*pl), remote.WithTransport(ca.Transport()))
		if err != nil {
			t.Fatalf("pull %s over TLS: %v", p, err)
		}
		if got := mustDigest(img); got != d {
			t.Errorf("%s: pulled %s, pushed %s", p, got, d)
		}
	}
	if !strings.Contains(logs.String(), "TLS certificate loaded") || !strings.Contains(logs.String(), "tls=true") {
		t.Errorf("the log does not say TLS is on:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "plain HTTP") {
		t.Errorf("a warning about plain HTTP with TLS on:\n%s", logs.String())
	}
}

// TestServeTLSRefusesBadPair: a missing, unreadable or mismatched pair
// stops serve at start, in one line naming the field and the file, before
// the embedded registry creates its data dir.
func TestServeTLSRefusesBadPair(t *testing.T) {
	t.Parallel()
	ca := regtest.NewCA(t)
	dir := t.TempDir()
	cert, key, _ := ca.Issue(t, dir, "a", "127.0.0.1")
	_, otherKey, _ := ca.Issue(t, dir, "b", "127.0.0.1")
	missing := filepath.Join(dir, "missing.crt")
	data := filepath.Join(dir, "data")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", missing, "--tls-key", key}, "tls.certificate: stat " + missing + ": no such file or directory"},
		{[]string{"--tls-cert", cert, "--tls-key", dir}, "tls.key: read " + dir + ": is a directory"},
		{[]string{"--tls-cert", cert, "--tls-key", otherKey}, "tls.key: " + otherKey + " is not the key of certificate " + cert},
		{[]string{"--tls-cert", cert}, "tls.key: required with tls.certificate"},
		{[]string{"--tls-client-cas", cert}, "tls.clientCAs: needs tls.certificate"},
	} {
		root := newRoot()
		root.SetErr(io.Discard)
		root.SetArgs(append([]string{"serve", "--listen", freeAddr(t), "--data-dir", data}, c.args...))
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line containing %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("a refused TLS pair still created the data dir")
	}
}

// TestPlainHTTPWarning: plain HTTP on an address other hosts can reach is
// warned about once, saying what their clients will need; loopback is not.
func TestPlainHTTPWarning(t *testing.T) {
	t.Parallel()
	for addr, warn := range map[string]bool{
		":5000": true, "0.0.0.0:5000": true, "[::]:5000": true, "10.1.2.3:5000": true, "registry.internal:5000": true,
		"127.0.0.1:5000": false, "127.0.0.2:5000": false, "[::1]:5000": false, "localhost:5000": false,
	} {
		var logs bytes.Buffer
		cfg := config.Default()
		cfg.Listen = config.Address(addr)
		if c, err := serverTLS(cfg, slog.New(slog.NewTextHandler(&logs, nil))); c != nil || err != nil {
			t.Fatalf("%s: %v, %v", addr, c, err)
		}
		n := strings.Count(logs.String(), "\n")
		switch {
		case warn && (n != 1 || !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "insecure")):
			t.Errorf("%s: want one warning naming what clients need, got:\n%s", addr, logs.String())
		case !warn && n != 0:
			t.Errorf("%s (loopback): want no warning, got:\n%s", addr, logs.String())
		}
	}
}

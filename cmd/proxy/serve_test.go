package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runServe runs `proxy serve args...` until the test ends and waits until
// GET /v2/ answers 200.
func runServe(t *testing.T, args ...string) string {
	t.Helper()
	addr, _ := serveWith(t, "http://", http.DefaultClient, args...)
	return addr
}

// serveWith runs `proxy serve args...` until the test ends and waits until
// GET <scheme><addr>/v2/ with client answers 200; it returns the address
// and the command's log.
func serveWith(t *testing.T, scheme string, client *http.Client, args ...string) (string, *regtest.Log) {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	root := newRoot()
	logs := &regtest.Log{}
	root.SetErr(logs)
	if !slices.Contains(args, "--data-dir") {
		// The content cache of a proxy with an upstream lives there.
		args = append(args, "--data-dir", t.TempDir())
	}
	root.SetArgs(append([]string{"serve", "--listen", addr}, args...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve did not shut down cleanly: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not shut down")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(scheme + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, logs
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve never answered /v2/\n%s", logs.String())
	return "", nil
}

// TestServeEmbedded: `proxy serve` with no upstream is a working
// multi-platform registry: push per-platform tags through it, pull the bare
// tag for each platform, restart on the same data dir and find them again.
func TestServeEmbedded(t *testing.T) {
	dir := t.TempDir()
	addr := runServe(t, "--data-dir", dir)
	want := map[string]v1.Hash{}
	for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} {
		img := regtest.PlatformImage(t, p, false)
		tag := "1.0-" + strings.ReplaceAll(p, "/", "-")
		r, _ := name.NewTag(addr+"/demo/app:"+tag, name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("push %s: %v", tag, err)
		}
		d, _ := img.Digest()
		want[p] = d
	}
	bare, _ := name.NewTag(addr+"/demo/app:1.0", name.Insecure)
	for p, d := range want {
		pl, _ := v1.ParsePlatform(p)
		img, err := remote.Image(bare, remote.WithPlatform(*pl))
		if err != nil {
			t.Fatalf("pull %s: %v", p, err)
		}
		if got, _ := img.Digest(); got != d {
			t.Errorf("%s: pulled %s, pushed %s", p, got, d)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "docker", "registry", "v2", "repositories", "demo", "app")); err != nil {
		t.Errorf("embedded registry did not store under --data-dir: %v", err)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, body := regtest.Get(t, http.MethodGet, "http://"+addr+path); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}

// TestServeUpstreamFlag: --upstream puts the proxy in front of another
// registry (here: a second proxy serving its own embedded registry).
func TestServeUpstreamFlag(t *testing.T) {
	backend := runServe(t, "--data-dir", t.TempDir())
	front := runServe(t, "--upstream", "http://"+backend, "--read-only")
	img := regtest.PlatformImage(t, "linux/s390x", false)
	r, _ := name.NewTag(backend+"/x:2-linux-s390x", name.Insecure)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	bare, _ := name.NewTag(front+"/x:2", name.Insecure)
	got, err := remote.Image(bare, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "s390x"}))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := got.Digest(); a != mustDigest(img) {
		t.Errorf("through two proxies: %s", a)
	}
	w, _ := name.NewTag(front+"/x:3-linux-s390x", name.Insecure)
	if err := remote.Write(w, img); err == nil || !strings.Contains(err.Error(), "UNSUPPORTED") {
		t.Errorf("--read-only accepted a push: %v", err)
	}
}

func mustDigest(img v1.Image) v1.Hash {
	d, _ := img.Digest()
	return d
}

// TestServeHtpasswd: auth in the configuration file protects the proxy.
func TestServeHtpasswd(t *testing.T) {
	dir := t.TempDir()
	htpasswd := regtest.Htpasswd(t, map[string]string{"ci": "pw"})
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("auth: {htpasswd: "+htpasswd+", anonymousRead: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := runServe(t, "--config", cfg, "--data-dir", filepath.Join(dir, "data"))
	r, _ := name.NewTag(addr+"/x:1-linux-amd64", name.Insecure)
	img := regtest.PlatformImage(t, "linux/amd64", false)
	if err := remote.Write(r, img); err == nil {
		t.Error("anonymous push accepted")
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: "pw"})); err != nil {
		t.Fatalf("push with login: %v", err)
	}
	bare, _ := name.NewTag(addr+"/x:1", name.Insecure)
	if _, err := remote.Index(bare); err != nil {
		t.Errorf("anonymous read: %v", err)
	}
	root := newRoot()
	root.SetErr(&bytes.Buffer{})
	os.WriteFile(cfg, []byte("auth: {htpasswd: "+filepath.Join(dir, "missing")+"}\n"), 0o644)
	root.SetArgs([]string{"serve", "--config", cfg, "--listen", freeAddr(t)})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "auth.htpasswd") {
		t.Errorf("missing htpasswd file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing htpasswd file was created")
	}
	if _, err := os.Stat("manifold-data"); err == nil {
		t.Error("a refused configuration still created the default data dir")
	}
}

// TestServeBadConfig: configuration errors are one line naming the field.
func TestServeBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("upstreams: [{url: 'ftp://x'}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"serve", "--config", cfg},
		{"serve", "--upstream", "registry.example.com"},
		{"serve", "--listen", "nowhere"},
		{"serve", "--config", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		root := newRoot()
		root.SetArgs(args)
		root.SetErr(&bytes.Buffer{})
		err := root.ExecuteContext(context.Background())
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %q, want one line", args, err)
		}
	}
}

func TestVersion(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil || !strings.HasPrefix(out.String(), "manifold ") {
		t.Errorf("version: %q %v", out.String(), err)
	}
}

// TestMetricsListenAndAuth (issue 13 H2): /metrics can be moved to an
// address of its own, or put behind client authentication, never
// anonymous.
func TestMetricsListenAndAuth(t *testing.T) {
	t.Parallel()
	status := func(url, user, pw string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	dir := t.TempDir()
	metricsAddr := freeAddr(t)
	cfg := filepath.Join(dir, "own.yaml")
	if err := os.WriteFile(cfg, []byte("metrics:\n  listen: "+metricsAddr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := runServe(t, "--config", cfg, "--data-dir", filepath.Join(dir, "a"))
	if got := status("http://"+addr+"/metrics", "", ""); got != http.StatusNotFound {
		t.Errorf("/metrics on the proxy's listener with metrics.listen set: %d", got)
	}
	if got := status("http://"+metricsAddr+"/metrics", "", ""); got != http.StatusOK {
		t.Errorf("/metrics on its own listener: %d", got)
	}

	htpasswd := regtest.Htpasswd(t, map[string]string{"ops": "pw"})
	cfg = filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(cfg, []byte("metrics:\n  auth: true\nauth:\n  htpasswd: "+htpasswd+"\n  anonymousRead: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr = runServe(t, "--config", cfg, "--data-dir", filepath.Join(dir, "b"))
	if got := status("http://"+addr+"/metrics", "", ""); got != http.StatusUnauthorized {
		t.Errorf("anonymous /metrics with metrics.auth: %d", got)
	}
	if got := status("http://"+addr+"/metrics", "ops", "pw"); got != http.StatusOK {
		t.Errorf("authenticated /metrics: %d", got)
	}
}

// TestServeSharedRedis: two `proxy serve` replicas configured with one
// Redis: a cold burst spread over both lists the upstream's tags once, and
// a push through one is seen by the other at once.
func TestServeSharedRedis(t *testing.T) {
	t.Parallel()
	redis := regtest.StartRedis(t)
	up := regtest.NewRegistry(t)
	up.Push(t, "app", "1.0-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	up.Push(t, "app", "1.0-linux-arm64", regtest.PlatformImage(t, "linux/arm64/v8", false))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("redis:\n  addrs: ["+redis.Addr+"]\ncache:\n  ttl: 10m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := runServe(t, "--config", cfg, "--upstream", up.URL)
	b := runServe(t, "--config", cfg, "--upstream", up.URL)
	up.Reset()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			host := []string{a, b}[i%2]
			if resp, body := regtest.Get(t, http.MethodGet, "http://"+host+"/v2/app/manifests/1.0"); resp.StatusCode != 200 {
				t.Errorf("%s: %d %s", host, resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if n := up.CountPath("/tags/list"); n != 1 {
		t.Errorf("a cold burst over 2 replicas listed the tags %d times, want 1", n)
	}
	// Push an arm/v7 member through replica a; replica b serves it.
	img := regtest.PlatformImage(t, "linux/arm/v7", false)
	ref, _ := name.ParseReference(a+"/app:1.0-linux-arm-v7", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := regtest.Get(t, http.MethodGet, "http://"+b+"/v2/app/manifests/1.0")
		if strings.Count(string(body), `"architecture"`) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica b still serves %s after a push through replica a", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeUI: `proxy serve` serves the status page under /ui/, unless
// ui.enabled is false.
func TestServeUI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := runServe(t, "--data-dir", filepath.Join(dir, "a"))
	if resp, body := regtest.Get(t, http.MethodGet, "http://"+addr+"/ui/"); resp.StatusCode != 200 || !strings.Contains(string(body), "<h1>Repositories</h1>") {
		t.Errorf("/ui/: %d %s", resp.StatusCode, body)
	}
	cfg := filepath.Join(dir, "off.yaml")
	if err := os.WriteFile(cfg, []byte("ui:\n  enabled: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	off := runServe(t, "--config", cfg, "--data-dir", filepath.Join(dir, "b"))
	if resp, _ := regtest.Get(t, http.MethodGet, "http://"+off+"/ui/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/ui/ with ui.enabled false: %d", resp.StatusCode)
	}
}

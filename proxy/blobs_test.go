package proxy_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

func TestBlobRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	content := make([]byte, 100000)
	_, _ = rand.Read(content)
	layer := static.NewLayer(content, types.DockerLayer)
	d, _ := layer.Digest()
	if err := remote.WriteLayer(regtest.Ref(t, e.reg.Host+"/app:x").Context(), layer); err != nil {
		t.Fatal(err)
	}
	path := "/v2/app/blobs/" + d.String()

	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+path)
	if resp.StatusCode != 200 || !bytes.Equal(body, content) || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("GET blob: %d, %d bytes", resp.StatusCode, len(body))
	}
	head, hb := regtest.Get(t, http.MethodHead, e.proxy.URL+path)
	if head.StatusCode != 200 || len(hb) != 0 || head.Header.Get("Content-Length") != "100000" {
		t.Errorf("HEAD blob: %d, Content-Length %s", head.StatusCode, head.Header.Get("Content-Length"))
	}

	req, _ := http.NewRequest(http.MethodGet, e.proxy.URL+path, nil)
	req.Header.Set("Range", "bytes=1000-1999")
	r2, part := regtest.Do(t, req)
	if r2.StatusCode != http.StatusPartialContent || !bytes.Equal(part, content[1000:2000]) || r2.Header.Get("Content-Range") != "bytes 1000-1999/100000" {
		t.Errorf("Range: %d %q, %d bytes", r2.StatusCode, r2.Header.Get("Content-Range"), len(part))
	}

	// A suffix range (the last 500 bytes) passes through too.
	req.Header.Set("Range", "bytes=-500")
	r4, tail := regtest.Do(t, req)
	if r4.StatusCode != http.StatusPartialContent || !bytes.Equal(tail, content[len(content)-500:]) || r4.Header.Get("Content-Range") != "bytes 99500-99999/100000" {
		t.Errorf("suffix Range: %d %q, %d bytes", r4.StatusCode, r4.Header.Get("Content-Range"), len(tail))
	}

	req.Header.Set("Range", "lines=1-2")
	r3, body3 := regtest.Do(t, req)
	if r3.StatusCode != 416 && (r3.StatusCode != 400 || ociError(t, body3) != "RANGE_INVALID") {
		t.Errorf("bad Range: %d %s", r3.StatusCode, body3)
	}

	resp, body = regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/blobs/sha256:"+strings.Repeat("0", 64))
	if resp.StatusCode != 404 || ociError(t, body) != "BLOB_UNKNOWN" {
		t.Errorf("unknown blob: %d %s", resp.StatusCode, body)
	}
	resp, body = regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/blobs/sha256:xyz")
	if resp.StatusCode != 400 || ociError(t, body) != "DIGEST_INVALID" {
		t.Errorf("bad digest: %d %s", resp.StatusCode, body)
	}
}

// TestBlobStreamingMemory: a 64 MiB blob through the proxy allocates a
// small, fixed amount: the proxy streams, it does not buffer.
func TestBlobStreamingMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a 64 MiB blob")
	}
	const size = 64 << 20
	alloc := streamBlob(t, size)
	t.Logf("streaming %d MiB allocated %d KiB in total", size>>20, alloc>>10)
	if alloc > 8<<20 {
		t.Errorf("streaming %d MiB allocated %d MiB: the proxy buffers", size>>20, alloc>>20)
	}
}

// streamBlob serves a blob of size bytes from go-containerregistry's
// registry (which keeps blobs in memory and serves them without copying),
// downloads it through the proxy, and returns the bytes allocated meanwhile.
func streamBlob(t testing.TB, size int) uint64 {
	content := bytes.Repeat([]byte{0x5a}, size)
	up := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer up.Close()
	layer := static.NewLayer(content, types.DockerLayer)
	d, _ := layer.Digest()
	host := strings.TrimPrefix(up.URL, "http://")
	repo, err := name.NewRepository(host+"/big", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, layer); err != nil {
		t.Fatal(err)
	}
	c, _ := upstream.New(upstream.Options{URL: up.URL})
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}})
	// Warm the token/transport path with a HEAD, then measure the GET.
	if resp, err := http.Head(srv.URL + "/v2/big/blobs/" + d.String()); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := http.Get(srv.URL + "/v2/big/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if err != nil || n != int64(size) {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return after.TotalAlloc - before.TotalAlloc
}

// TestRedirects: blob redirects from the upstream are followed to storage
// it names, but never to a link-local address.
func TestRedirects(t *testing.T) {
	t.Parallel()
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("credentials sent to the redirect target")
		}
		_, _ = w.Write([]byte("blob-bytes"))
	}))
	defer storage.Close()
	var target atomic.Value
	target.Store(storage.URL + "/data")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
		case strings.Contains(r.URL.Path, "/blobs/"):
			http.Redirect(w, r, target.Load().(string), http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	c, _ := upstream.New(upstream.Options{URL: up.URL})
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}})
	path := "/v2/app/blobs/sha256:" + strings.Repeat("c", 64)
	resp, body := regtest.Get(t, http.MethodGet, srv.URL+path)
	if resp.StatusCode != 200 || string(body) != "blob-bytes" {
		t.Errorf("redirect to storage: %d %q", resp.StatusCode, body)
	}
	target.Store("http://169.254.169.254/latest/meta-data/")
	resp, body = regtest.Get(t, http.MethodGet, srv.URL+path)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "link-local") {
		t.Errorf("redirect to the metadata service: %d %s", resp.StatusCode, body)
	}
	// With followRedirects off the client gets the redirect itself.
	off := false
	srv2 := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}, FollowRedirects: &off})
	target.Store(storage.URL + "/data")
	req, _ := http.NewRequest(http.MethodGet, srv2.URL+path, nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != storage.URL+"/data" {
		t.Errorf("followRedirects false: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestL4_NoSignaturesInErrors: a presigned redirect URL that fails reached
// the ERROR log and the client's error body with its signature. Both carry
// the URL without its query now.
func TestL4_NoSignaturesInErrors(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			// Port 1 on loopback: nothing listens, the follow fails.
			http.Redirect(w, r, "http://127.0.0.1:1/data?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIAEXAMPLE", http.StatusTemporaryRedirect)
		}
	}))
	defer up.Close()
	var logs bytes.Buffer
	c, _ := upstream.New(upstream.Options{URL: up.URL})
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	resp, body := regtest.Get(t, http.MethodGet, srv.URL+"/v2/app/blobs/sha256:"+strings.Repeat("c", 64))
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for what, text := range map[string]string{"error body": string(body), "log": logs.String()} {
		if strings.Contains(text, "deadbeef") || strings.Contains(text, "AKIAEXAMPLE") {
			t.Errorf("the %s carries the signature: %s", what, text)
		}
	}
}

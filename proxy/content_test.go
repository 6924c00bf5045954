package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/resolve"
)

// newContent opens a content cache on the filesystem driver rooted at dir.
func newContent(t testing.TB, dir string, maxBytes int64) *content.Cache {
	t.Helper()
	d, err := filesystem.FromParameters(map[string]any{"rootdirectory": dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := content.New(context.Background(), content.Options{Driver: d, LocalRoot: dir, MaxBytes: maxBytes, IdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Fills commit after their clients are served: let them end before
	// dir is removed.
	t.Cleanup(func() { waitFills(c) })
	return c
}

func waitFills(c *content.Cache) {
	for i := 0; i < 500 && c.Stats.FillsInFlight.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// clock is a test clock for the resolver's cache.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// contentEnv is an env whose proxy has a content cache and a test clock:
// TTL 30s, stale-if-error 10m.
func contentEnv(t testing.TB, maxBytes int64, opts ...func(*proxy.Options)) (*env, *content.Cache, *clock) {
	t.Helper()
	dir := t.TempDir()
	c := newContent(t, dir, maxBytes)
	clk := newClock()
	e := newEnv(t, append([]func(*proxy.Options){func(o *proxy.Options) {
		o.Content = c
		o.Cache = resolve.CacheOptions{TTL: 30 * time.Second, StaleIfError: 10 * time.Minute, Now: clk.now}
	}}, opts...)...)
	return e, c, clk
}

// pull pulls ref for platform p through host as a client does (index,
// manifest, config, every layer, each checked against its digest by
// go-containerregistry) and returns the image's digest.
func pull(host, repoRef, p string) (v1.Hash, error) {
	r, err := name.ParseReference(host+"/"+repoRef, name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	pl, err := v1.ParsePlatform(p)
	if err != nil {
		return v1.Hash{}, err
	}
	img, err := remote.Image(r, remote.WithPlatform(*pl))
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return v1.Hash{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return v1.Hash{}, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return v1.Hash{}, err
		}
	}
	return img.Digest()
}

// contentRequests are the upstream requests for content by digest (blobs,
// manifests by digest): what a warm cache must never need.
func contentRequests(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if strings.Contains(r, "/blobs/") || strings.Contains(r, "/manifests/sha256:") {
			out = append(out, r)
		}
	}
	return out
}

// faults an upstream can have, by wrapping the real registry's ServeHTTP.
var faults = map[string]func(w http.ResponseWriter, r *http.Request) bool{
	"down": func(w http.ResponseWriter, _ *http.Request) bool {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return true
	},
	"5xx": func(w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return true
	},
	// Docker Hub's pull limit answers manifest requests, not blobs.
	"429-manifests": func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		w.Header().Set("Retry-After", "60")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}`))
		return true
	},
	"slow": func(_ http.ResponseWriter, r *http.Request) bool {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		return false
	},
}

// TestContentSurvivesUpstreamFailure: two platforms pulled through the
// proxy keep pulling whole — by tag and by the index digest — when the
// upstream is down, failing, rate-limited or slow, without one upstream
// request for the content held; a platform never pulled fails cleanly.
func TestContentSurvivesUpstreamFailure(t *testing.T) {
	t.Parallel()
	for name, fault := range faults {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var opts []func(*proxy.Options)
			if name == "slow" {
				// A slow upstream is waited for only where nothing is held:
				// the tag is revalidated in the background.
				opts = append(opts, func(o *proxy.Options) { o.Cache.StaleWhileRevalidate = 10 * time.Minute })
			}
			e, _, clk := contentEnv(t, 0, opts...)
			seed(e, "app", "1")
			head, _ := e.get(http.MethodHead, "/v2/app/manifests/1", string(types.DockerManifestList))
			byDigest := "app@" + head.Header.Get("Docker-Content-Digest")
			pulled := []string{"linux/amd64", "linux/arm64/v8"}
			want := map[string]v1.Hash{}
			for _, p := range pulled {
				for _, r := range []string{"app:1", byDigest} {
					d, err := pull(e.host, r, p)
					if err != nil {
						t.Fatalf("warm pull %s %s: %v", r, p, err)
					}
					want[p] = d
				}
			}

			e.setFault(fault)
			clk.advance(time.Minute) // past the TTL: tags are revalidated
			e.reg.Reset()
			for _, p := range pulled {
				for _, r := range []string{"app:1", byDigest} {
					start := time.Now()
					d, err := pull(e.host, r, p)
					if err != nil || d != want[p] {
						t.Fatalf("pull %s %s with the upstream %s: %v (digest %s, want %s)", r, p, name, err, d, want[p])
					}
					if took := time.Since(start); took > 10*time.Second { // the tag's revalidation retries first
						t.Errorf("pull %s %s with the upstream %s took %s", r, p, name, took)
					}
				}
			}
			if got := contentRequests(e.reg.Requests()); len(got) != 0 {
				t.Errorf("content already held was asked of the upstream: %v", got)
			}
			if name != "slow" {
				neverPulled(t, e, byDigest)
			}
		})
	}
}

// neverPulled: a platform that was never pulled fails with an OCI error,
// promptly.
func neverPulled(t *testing.T, e *env, byDigest string) {
	t.Helper()
	start := time.Now()
	if _, err := pull(e.host, byDigest, "linux/s390x"); err == nil {
		t.Fatal("a platform never pulled was pulled with the upstream failing")
	}
	resp, body := e.get(http.MethodGet, "/v2/"+strings.Replace(byDigest, "@", "/manifests/", 1), string(types.DockerManifestList))
	var idx v1.IndexManifest
	if err := json.Unmarshal(body, &idx); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the index by digest: %d %v", resp.StatusCode, err)
	}
	for _, m := range idx.Manifests {
		if m.Platform.Architecture != "s390x" {
			continue
		}
		resp, body := e.get(http.MethodGet, "/v2/app/manifests/"+m.Digest.String(), string(m.MediaType))
		if resp.StatusCode < 400 || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("child never pulled: %d %s", resp.StatusCode, body)
		}
		ociError(t, body)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("failing took %s", took)
	}
}

func pushLayer(t testing.TB, e *env, repo string, size int) (v1.Hash, []byte) {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	l := static.NewLayer(b, types.DockerLayer)
	if err := remote.WriteLayer(regtest.Ref(t, e.reg.Host+"/"+repo+":x").Context(), l); err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	return d, b
}

func countRequests(reqs []string, want string) int {
	n := 0
	for _, r := range reqs {
		if r == want {
			n++
		}
	}
	return n
}

// TestContentConcurrentColdBlob: 50 clients asking for one cold 32 MiB
// blob at once cost one upstream fetch, and all get every byte.
func TestContentConcurrentColdBlob(t *testing.T) {
	t.Parallel()
	e, c, _ := contentEnv(t, 0)
	d, _ := pushLayer(t, e, "app", 32<<20)
	e.reg.Reset()
	e.reg.SetDelay(200 * time.Millisecond) // they all arrive before the first byte
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			resp, err := http.Get(e.proxy.URL + "/v2/app/blobs/" + d.String())
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			_, err = io.Copy(h, resp.Body)
			if err == nil && (resp.StatusCode != 200 || hex.EncodeToString(h.Sum(nil)) != d.Hex) {
				err = errors.New("wrong bytes: " + resp.Status)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// (Besides the /v2/ ping of the first token exchange.)
	reqs := contentRequests(e.reg.Requests())
	if n := len(reqs); n != 1 || countRequests(reqs, "GET /v2/app/blobs/"+d.String()) != 1 {
		t.Errorf("50 cold GETs made %d upstream requests for content, want 1 GET: %v", n, reqs)
	}
	waitStoredBlob(t, c, d)
}

func waitStoredBlob(t testing.TB, c *content.Cache, d v1.Hash) {
	t.Helper()
	for range 300 {
		if _, ok := c.Stat(context.Background(), content.Blob, d); ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("blob %s was never stored", d)
}

// corrupting flips one byte of the blob bodies it passes on.
type corrupting struct{ http.ResponseWriter }

func (c corrupting) Write(b []byte) (int, error) {
	if len(b) > 0 {
		b = append([]byte(nil), b...)
		b[0] ^= 0xff
	}
	return c.ResponseWriter.Write(b)
}

func uploadsLeft(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(dir, "manifold/content/v1/_uploads"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestContentCorruptUpstream: an upstream that sends other bytes than the
// digest: the client's transfer breaks (it never gets a complete answer),
// nothing is stored, and the next request fetches again.
func TestContentCorruptUpstream(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newContent(t, dir, 0)
	e := newEnv(t, func(o *proxy.Options) { o.Content = c })
	d, want := pushLayer(t, e, "app", 4<<20)
	e.reg.SetFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			next.ServeHTTP(corrupting{w}, r)
			return true
		}
		return false
	})
	// The connection breaks: before the headers when the fill failed
	// before this client read anything, else short of the last byte.
	if resp, err := http.Get(e.proxy.URL + "/v2/app/blobs/" + d.String()); err == nil {
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || int64(len(got)) >= resp.ContentLength {
			t.Fatalf("corrupted blob: read %d of %d bytes, error %v; want a broken transfer", len(got), resp.ContentLength, err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if _, ok := c.Stat(context.Background(), content.Blob, d); ok {
		t.Error("corrupted bytes were stored")
	}
	if u := uploadsLeft(t, dir); len(u) != 0 {
		t.Errorf("left behind: %v", u)
	}
	if c.Stats.DigestMismatches.Load() != 1 {
		t.Errorf("digest mismatches: %d", c.Stats.DigestMismatches.Load())
	}
	e.setFault(nil)
	resp2, body := e.get(http.MethodGet, "/v2/app/blobs/"+d.String())
	if resp2.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Errorf("after the upstream healed: %d, %d bytes", resp2.StatusCode, len(body))
	}
}

// TestContentClientDisconnects: the only client of a cold blob hangs up
// mid-transfer: nothing half-written remains, nothing is served later
// from it, and the next client gets the whole blob.
func TestContentClientDisconnects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newContent(t, dir, 0)
	e := newEnv(t, func(o *proxy.Options) { o.Content = c })
	d, want := pushLayer(t, e, "app", 4<<20)
	e.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			return false
		}
		// Half the blob, then nothing until the proxy gives up on it.
		w.Header().Set("Content-Length", "4194304")
		_, _ = w.Write(want[:2<<20])
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
		return true
	})
	resp, err := http.Get(e.proxy.URL + "/v2/app/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // hang up
	deadline := time.Now().Add(5 * time.Second)
	for (len(uploadsLeft(t, dir)) > 0 || c.Stats.FillsInFlight.Load() > 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if u := uploadsLeft(t, dir); len(u) != 0 || c.Stats.FillsInFlight.Load() != 0 {
		t.Errorf("a fill nobody waits for is still there: %v", u)
	}
	if _, ok := c.Stat(context.Background(), content.Blob, d); ok {
		t.Fatal("a partial blob was stored")
	}
	e.setFault(nil)
	if resp, body := e.get(http.MethodGet, "/v2/app/blobs/"+d.String()); resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Errorf("next GET: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestContentEviction: the store stays under cache.content.maxBytes; what
// was evicted is fetched again.
func TestContentEviction(t *testing.T) {
	t.Parallel()
	e, c, _ := contentEnv(t, 3<<20+1000)
	var ds []v1.Hash
	for range 5 {
		d, _ := pushLayer(t, e, "app", 1<<20)
		if resp, _ := e.get(http.MethodGet, "/v2/app/blobs/"+d.String()); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
		waitStoredBlob(t, c, d)
		ds = append(ds, d)
	}
	if c.Bytes() > c.MaxBytes() || c.Len() != 3 || c.Stats.Evictions.Load() != 2 {
		t.Errorf("%d entries, %d bytes (max %d), %d evictions", c.Len(), c.Bytes(), c.MaxBytes(), c.Stats.Evictions.Load())
	}
	e.reg.Reset()
	e.get(http.MethodGet, "/v2/app/blobs/"+ds[4].String())
	e.get(http.MethodGet, "/v2/app/blobs/"+ds[0].String())
	reqs := contentRequests(e.reg.Requests())
	if len(reqs) != 1 || !strings.Contains(reqs[0], ds[0].Hex) {
		t.Errorf("upstream requests %v; want only the evicted blob", reqs)
	}
}

// TestContentRangeAndHeaders: a cached blob answers Range with 206, HEAD
// like GET, If-None-Match with 304; a cold Range streams its part.
func TestContentRangeAndHeaders(t *testing.T) {
	t.Parallel()
	e, c, _ := contentEnv(t, 0)
	d, want := pushLayer(t, e, "app", 100000)
	path := "/v2/app/blobs/" + d.String()
	rangeGet := func(rg string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, e.proxy.URL+path, nil)
		req.Header.Set("Range", rg)
		return regtest.Do(t, req)
	}
	// Cold: the first request is a Range.
	r0, part := rangeGet("bytes=1000-1999")
	if r0.StatusCode != 206 || !bytes.Equal(part, want[1000:2000]) || r0.Header.Get("Content-Range") != "bytes 1000-1999/100000" {
		t.Fatalf("cold Range: %d %q, %d bytes", r0.StatusCode, r0.Header.Get("Content-Range"), len(part))
	}
	waitStoredBlob(t, c, d)
	e.reg.Reset()
	get, body := e.get(http.MethodGet, path)
	head, hb := e.get(http.MethodHead, path)
	if get.StatusCode != 200 || !bytes.Equal(body, want) || head.StatusCode != 200 || len(hb) != 0 {
		t.Fatalf("GET %d (%d bytes), HEAD %d", get.StatusCode, len(body), head.StatusCode)
	}
	for _, h := range []string{"Content-Length", "Content-Type", "Docker-Content-Digest", "Etag"} {
		if get.Header.Get(h) == "" || get.Header.Get(h) != head.Header.Get(h) {
			t.Errorf("%s: GET %q, HEAD %q", h, get.Header.Get(h), head.Header.Get(h))
		}
	}
	for rg, want := range map[string][]byte{"bytes=1000-1999": want[1000:2000], "bytes=-500": want[len(want)-500:], "bytes=99990-": want[99990:]} {
		r, got := rangeGet(rg)
		if r.StatusCode != 206 || !bytes.Equal(got, want) {
			t.Errorf("cached Range %s: %d, %d bytes", rg, r.StatusCode, len(got))
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.proxy.URL+path, nil)
	req.Header.Set("If-None-Match", get.Header.Get("Etag"))
	if r, _ := regtest.Do(t, req); r.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", r.StatusCode)
	}
	if r, _ := rangeGet("bytes=200000-"); r.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: %d", r.StatusCode)
	}
	if reqs := e.reg.Requests(); len(reqs) != 0 {
		t.Errorf("a cached blob went upstream: %v", reqs)
	}
}

// TestContentRestart: a proxy started again on the same directory serves
// what the previous one stored, with the upstream down.
func TestContentRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newContent(t, dir, 0)
	e := newEnv(t, func(o *proxy.Options) { o.Content = c })
	img := regtest.PlatformImage(t, "linux/arm64", true)
	d := e.push("app:1-linux-arm64", img)
	if _, err := pull(e.host, "app@"+d.String(), "linux/arm64"); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	waitStoredBlob(t, c, ld)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	c2 := newContent(t, dir, 0)
	srv := e.newProxy(func(o *proxy.Options) { o.Content = c2 })
	e.setFault(faults["down"])
	e.reg.Reset()
	if _, err := pull(strings.TrimPrefix(srv.URL, "http://"), "app@"+d.String(), "linux/arm64"); err != nil {
		t.Fatalf("after a restart, with the upstream down: %v", err)
	}
	if reqs := e.reg.Requests(); len(reqs) != 0 {
		t.Errorf("the restarted proxy asked the upstream: %v", reqs)
	}
}

// TestContentStalledReaderEnds: a blob served from the store goes out with
// sendfile, and a client that stops reading it still ends the request
// after ProgressTimeout (each chunk of the sendfile has a write deadline),
// instead of holding the connection and the open file forever; a client
// that reads slowly, for longer than ProgressTimeout in all, gets every
// byte.
func TestContentStalledReaderEnds(t *testing.T) {
	t.Parallel()
	const size = 16 << 20 // well over the loopback socket buffers of a connection that was never read
	c := newContent(t, t.TempDir(), 0)
	e := newEnv(t, func(o *proxy.Options) { o.Content = c; o.ProgressTimeout = 300 * time.Millisecond })
	d, _ := pushLayer(t, e, "app", size)
	path := "/v2/app/blobs/" + d.String()
	if resp, body := e.get(http.MethodGet, path); resp.StatusCode != http.StatusOK || len(body) != size {
		t.Fatalf("warm GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	waitFills(c)

	conn, err := net.Dial("tcp", e.host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, e.host); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stalled GET: %v %v", resp, err)
	}
	time.Sleep(2 * time.Second) // the client stops reading
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, resp.Body)
	if n >= size || err == nil {
		t.Errorf("after the client stalled for 2s (progressTimeout 300ms) it still read %d of %d bytes (err %v): the answer was not ended", n, size, err)
	}

	resp, err = http.Get(e.proxy.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start, buf, got := time.Now(), make([]byte, 1<<20), 0
	for got < size {
		n, err := io.ReadFull(resp.Body, buf[:min(len(buf), size-got)])
		got += n
		if err != nil {
			t.Fatalf("slow reader: %v after %d of %d bytes", err, got, size)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Errorf("the slow read took %v: not longer than the progress timeout, so it proves nothing", took)
	}
}

// sendfileListener's connections record what the server copies to them
// with ReadFrom, the path sendfile takes.
type sendfileListener struct {
	net.Listener
	mu    sync.Mutex
	files int64 // bytes handed to ReadFrom straight from an *os.File
	other int64 // bytes handed to ReadFrom from anything else
}

type sendfileConn struct {
	*net.TCPConn
	l *sendfileListener
}

func (l *sendfileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sendfileConn{c.(*net.TCPConn), l}, nil
}

func (c *sendfileConn) ReadFrom(r io.Reader) (int64, error) {
	_, file := r.(*os.File)
	if lr, ok := r.(*io.LimitedReader); ok {
		_, file = lr.R.(*os.File)
	}
	n, err := c.TCPConn.ReadFrom(r)
	c.l.mu.Lock()
	if file {
		c.l.files += n
	} else {
		c.l.other += n
	}
	c.l.mu.Unlock()
	return n, err
}

// TestContentSendfile: a blob served from the content cache reaches the
// connection as the file itself (where the kernel's sendfile takes over),
// not copied through the process, progress deadlines and all.
func TestContentSendfile(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	c := newContent(t, t.TempDir(), 0)
	e := newEnv(t, func(o *proxy.Options) { o.Content = c })
	d, _ := pushLayer(t, e, "app", size)
	path := "/v2/app/blobs/" + d.String()
	if resp, body := e.get(http.MethodGet, path); resp.StatusCode != http.StatusOK || len(body) != size {
		t.Fatalf("cold GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	waitFills(c)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := &sendfileListener{Listener: ln}
	srv := httptest.NewUnstartedServer(e.proxy.Config.Handler)
	srv.Listener = sl
	srv.Start()
	t.Cleanup(srv.Close)
	resp, body := regtest.Get(t, http.MethodGet, srv.URL+path)
	if resp.StatusCode != http.StatusOK || len(body) != size {
		t.Fatalf("cached GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	sl.mu.Lock()
	defer sl.mu.Unlock()
	// http.ServeContent sniffs the first 512 bytes through a buffer.
	if sl.files < size-512 || sl.other > 512 {
		t.Errorf("of a %d-byte cached blob, %d bytes went to the connection from the file and %d otherwise: sendfile is not used", size, sl.files, sl.other)
	}
}

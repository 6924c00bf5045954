package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// tokenRegistry is an upstream with Docker-style bearer tokens that the
// test can expire, recording the request bodies it receives. It answers
// only what these tests need.
type tokenRegistry struct {
	srv      *httptest.Server
	mu       sync.Mutex
	issued   int
	valid    map[string]bool
	tokDelay atomic.Int64
	bodies   []int
}

func newTokenRegistry(t *testing.T) *tokenRegistry {
	f := &tokenRegistry{valid: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			time.Sleep(time.Duration(f.tokDelay.Load()))
			f.mu.Lock()
			f.issued++
			tok := fmt.Sprintf("t%d", f.issued)
			f.valid[tok] = true
			f.mu.Unlock()
			fmt.Fprintf(w, `{"token":%q}`, tok)
			return
		}
		f.mu.Lock()
		ok := f.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		f.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake"`, f.srv.URL))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPut || r.Method == http.MethodPatch {
			b, _ := io.ReadAll(r.Body)
			f.mu.Lock()
			f.bodies = append(f.bodies, len(b))
			f.mu.Unlock()
			w.WriteHeader(http.StatusCreated)
			return
		}
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *tokenRegistry) expire() {
	f.mu.Lock()
	f.valid = map[string]bool{}
	f.mu.Unlock()
}

func (f *tokenRegistry) proxy(t *testing.T) *httptest.Server {
	c, err := upstream.New(upstream.Options{URL: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}})
}

// TestWriteAfterTokenExpiry: a manifest PUT after the upstream token
// expired is resent whole with a new token (Docker Hub tokens last 5 min).
func TestWriteAfterTokenExpiry(t *testing.T) {
	t.Parallel()
	f := newTokenRegistry(t)
	s := f.proxy(t)
	body := bytes.Repeat([]byte("x"), 1000)
	put := func() int {
		req, _ := http.NewRequest(http.MethodPut, s.URL+"/v2/r/manifests/t", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp, b := regtest.Do(t, req)
		if resp.StatusCode != http.StatusCreated {
			t.Logf("PUT: %d %s", resp.StatusCode, b)
		}
		return resp.StatusCode
	}
	if put() != http.StatusCreated {
		t.Fatal("first PUT failed")
	}
	f.expire()
	if put() != http.StatusCreated {
		t.Error("PUT after the token expired failed")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.bodies {
		if n != len(body) {
			t.Errorf("upstream received bodies of %v bytes, want %d each", f.bodies, len(body))
			break
		}
	}
}

// TestTokenExchangeSurvivesImpatientClient: one client giving up during
// the token exchange does not fail the others waiting on it.
func TestTokenExchangeSurvivesImpatientClient(t *testing.T) {
	t.Parallel()
	f := newTokenRegistry(t)
	f.tokDelay.Store(int64(300 * time.Millisecond))
	s := f.proxy(t)
	path := "/v2/r/blobs/sha256:" + strings.Repeat("1", 64)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(20 * time.Millisecond)
	resp, body := regtest.Get(t, http.MethodGet, s.URL+path)
	if resp.StatusCode == 499 || strings.Contains(string(body), "canceled") {
		t.Errorf("patient client failed with the impatient one: %d %s", resp.StatusCode, body)
	}
}
